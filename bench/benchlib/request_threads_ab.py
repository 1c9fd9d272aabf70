"""Warm requests in one process, idle and loaded, at two thread counts, interleaved (issue 14).

``cd bench && PYTHONPATH=$PWD/../UNetPlusPlus python -m benchlib.request_threads_ab [--case
nodule] [--depth rec] [--rounds 8] [--variants idle:2,loaded:2,loaded:1,idle:1] [--profile]``:
the requests of ``unetpp serve`` (``cli_serve.handle`` on one ``WarmCache``, OpenMP threads
sleeping as in the server), after two that load the model and volume. Each variant is a
condition ("loaded": under ``load.competing_load(2)``, started ``warm.LOAD_RAMP_S`` before the
request) and torch's thread count for that request (``torch.set_num_threads``, set back after
it); the order rotates every round and reverses every other one. Prints each request's wall
and CPU seconds with the load average, then per variant the median and best; ``--profile``
adds the wall milliseconds per request of the functions that take more than 4 ms
(``cProfile``; it inflates Python-heavy functions several times: read it for where, not how
much). Used for docs/BENCHMARK_LOAD.md.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import io
import json
import os
import pstats
import statistics
import sys
import tempfile
import time


def _name(key: tuple) -> str:
    return f"{key[0].split('/')[-1]}:{key[1]}({key[2]})"


def _profile_table(profiles: dict, variants: list, rounds: int, top: int) -> list[str]:
    stats = {v: pstats.Stats(p).stats for v, p in profiles.items()}  # type: ignore[attr-defined]
    keys = {k for st in stats.values() for k, val in st.items() if val[3] / rounds > 0.004}
    rows = sorted(keys, key=lambda k: -stats[variants[0]].get(k, (0, 0, 0, 0))[3])[:top]
    lines = ["ms per request (cumulative wall): " + " | ".join(f"{c}:{t}" for c, t in variants)]
    for key in rows:
        cells = " ".join(
            f"{1e3 * stats[v].get(key, (0, 0, 0, 0))[3] / rounds:8.1f}" for v in variants
        )
        lines.append(f"{_name(key)[:70]:70s} {cells}")
    return lines


def main(argv=None) -> None:
    from UNetPlusPlusLib.engine import runtime_env

    runtime_env.apply()
    runtime_env.prefer_passive()  # as `unetpp serve`: OpenMP's threads sleep
    parser = argparse.ArgumentParser(prog="python -m benchlib.request_threads_ab")
    parser.add_argument("--case", default="nodule", help="an e2e case: nodule, brain, liver_512")
    parser.add_argument("--depth", default="rec")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="the model's thread count")
    parser.add_argument("--variants", default="idle:2,loaded:2,loaded:1,idle:1")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args(argv)

    import torch
    from UNetPlusPlusLib import cli, cli_serve
    from UNetPlusPlusLib.warm_cache import WarmCache

    from .e2e import cases
    from .load import competing_load
    from .warm import LOAD_RAMP_S

    case = cases((args.case,))[args.case]
    cache, folder = WarmCache(), tempfile.mkdtemp(prefix="unetpp-threads-ab-")
    build = functools.cache(cli.build_parser)  # as serve: one parser

    def request(ident: int) -> dict:
        argv = [*case["inputs"], *case["args"], "--threads", str(args.threads)]
        argv += (["--depth", args.depth] if args.depth != "rec" else []) + [
            "-o",
            f"{folder}/r.seg.nrrd",
        ]
        replies = io.StringIO()
        with contextlib.redirect_stdout(sys.stderr):
            cli_serve.handle({"id": ident, "argv": argv}, cache, replies, build)
        last = json.loads(replies.getvalue().splitlines()[-1])
        if "result" not in last:
            raise RuntimeError(f"request failed: {last}")
        return last["result"]

    for ident in range(2):  # the model, the volume and its checks: kept from then on
        request(ident)
    variants = [tuple(v.split(":")) for v in args.variants.split(",")]
    profiles = {v: cProfile.Profile() for v in variants}
    walls: dict = {v: [] for v in variants}
    for round_ in range(args.rounds):
        shift = round_ % len(variants)
        order = variants[shift:] + variants[:shift]
        for variant in order if round_ % 2 == 0 else order[::-1]:
            condition, threads = variant
            time.sleep(0.5)
            busy = competing_load(2) if condition == "loaded" else contextlib.nullcontext()
            with busy:
                if condition == "loaded":
                    time.sleep(LOAD_RAMP_S)
                torch.set_num_threads(int(threads))
                cpu, wall = time.process_time(), time.perf_counter()
                if args.profile:
                    profiles[variant].enable()
                request(100 + round_)
                if args.profile:
                    profiles[variant].disable()
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                torch.set_num_threads(args.threads)
            walls[variant].append(wall)
            load = os.getloadavg()[0]
            print(f"r{round_} {condition:6s} {threads} thread(s): {wall:.3f} s, CPU {cpu:.3f} s, "
                  f"load {load:.2f}", flush=True)  # fmt: skip
    for variant in variants:
        seen = walls[variant]
        print(f"{variant[0]}:{variant[1]}: median {statistics.median(seen):.3f} s, "
              f"best {min(seen):.3f} s ({len(seen)} requests)")  # fmt: skip
    if args.profile:
        print("\n".join(_profile_table(profiles, variants, args.rounds, args.top)))


if __name__ == "__main__":
    main()
