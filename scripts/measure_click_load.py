#!/usr/bin/env python
"""Warm nodule clicks idle and under the bench's load, per thread count and OpenMP wait policy.

One ``unetpp serve`` process per configuration (``--policies`` x ``--threads``; the wait policy
is read when torch loads, so it needs its own process), each warmed up with two clicks, then
rounds of: every server clicked once idle, then every server once under
``benchlib.load.competing_load(2)`` (the bench's two busy processes), the servers' order rotated
from round to round. A click is the bench's nodule case (``benchlib.e2e.cases``: an LIDC crop,
the point at its centre, the shipped nodule model), timed from the request to its result line
(``benchlib.warm.WarmServer``). The 1-minute load average is printed with every click; the
summary gives the median per configuration and condition, and loaded / idle. Nothing here
asserts a speed.

    PYTHONPATH=$PWD/UNetPlusPlus python scripts/measure_click_load.py [--rounds 5]
        [--threads 2,1] [--policies PASSIVE,ACTIVE] [--case nodule]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from benchlib import e2e  # noqa: E402
from benchlib.load import competing_load  # noqa: E402
from benchlib.warm import LOAD_RAMP_S, WarmServer  # noqa: E402


def load() -> float:
    return os.getloadavg()[0]


def server_env(policy: str, threads: int) -> dict:
    env = dict(os.environ)
    env["OMP_WAIT_POLICY"] = policy
    env["KMP_BLOCKTIME"] = "0" if policy == "PASSIVE" else "200"
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "UNetPlusPlus"), *filter(None, [env.get("PYTHONPATH")])]
    )
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", default="2,1")
    parser.add_argument("--policies", default="PASSIVE,ACTIVE")
    parser.add_argument("--case", default="nodule", help="a case of benchlib.e2e.cases")
    parser.add_argument("--depth", default="rec", help="rec (the model's) or 1..4")
    args = parser.parse_args()
    case = e2e.cases((args.case,)).get(args.case)
    if case is None:
        raise SystemExit(f"case {args.case} is not available (../shared/data, installed models)")
    configs = [
        (policy, int(n)) for policy in args.policies.split(",") for n in args.threads.split(",")
    ]
    servers = {}
    times: dict[tuple, list[float]] = {}
    try:
        for policy, threads in configs:
            server = WarmServer(server_env(policy, threads))
            servers[(policy, threads)] = server
            for _ in range(2):  # the first click loads the model and reads the CT
                server.request(case, threads, args.depth)
        print(f"servers warm; load {load():.2f}", flush=True)
        for round_ in range(args.rounds):
            order = configs[round_ % len(configs) :] + configs[: round_ % len(configs)]
            for condition in ("idle", "loaded"):
                busy = competing_load(2) if condition == "loaded" else None
                if busy is not None:
                    busy.__enter__()
                    time.sleep(LOAD_RAMP_S)
                try:
                    for policy, threads in order:
                        run = servers[(policy, threads)].request(case, threads, args.depth)
                        times.setdefault((policy, threads, condition), []).append(run["seconds"])
                        split = " ".join(f"{k} {v:.3f}" for k, v in run["split"].items())
                        print(
                            f"round {round_ + 1} {condition:6s} {policy:7s} threads {threads}: "
                            f"{run['seconds']:.3f} s ({split}) load {load():.2f}",
                            flush=True,
                        )
                finally:
                    if busy is not None:
                        busy.__exit__(None, None, None)
    finally:
        for server in servers.values():
            server.close()
    print("median seconds (idle, loaded, loaded/idle):")
    for policy, threads in configs:
        idle = statistics.median(times[(policy, threads, "idle")])
        loaded = statistics.median(times[(policy, threads, "loaded")])
        print(f"  {policy:7s} threads {threads}: {idle:.3f} {loaded:.3f} {loaded / idle:.2f}")


if __name__ == "__main__":
    main()
