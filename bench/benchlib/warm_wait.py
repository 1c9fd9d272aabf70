"""How long each warm request waits before the server starts on it (issue 14, session 17).

``cd bench && PYTHONPATH=$PWD/../UNetPlusPlus python -m benchlib.warm_wait [--case nodule]
[--depth rec] [--rounds 5]``: one ``unetpp serve`` (``warm.WarmServer``), its first request,
then ``--rounds`` rounds of an idle and a loaded request timed exactly as ``warm.warm_runs``
times them (``warm._timed``: the loaded one after ``warm.LOAD_RAMP_S`` of ``competing_load(2)``,
the idle one right after the previous reply). Prints each request's seconds and its ``start``
share: from sending it to its first progress line, i.e. time the server spent on something
else. ``UNETPP_EXECUTOR=ours`` in the environment runs the server without the ``fastest``
executor's probe, for comparison.

Why: ``unetpp serve`` runs the ``fastest`` executor's idle probe ``cli_serve.IDLE_PROBE_AFTER_S``
(0.5 s) after a reply, and its library step (OpenVINO's import and compile) cannot stop midway.
``warm_runs`` sends each loaded request 0.5 s after the previous reply, so until the probe has
decided, the loaded requests (never the idle ones, sent at once) wait for it
(docs/BENCHMARK_LOAD.md).
"""

from __future__ import annotations

import argparse
import os


def main(argv=None) -> None:
    from UNetPlusPlusLib.engine import runtime_env

    from . import e2e, warm

    parser = argparse.ArgumentParser(prog="python -m benchlib.warm_wait")
    parser.add_argument("--case", default="nodule", help="an e2e case: nodule, brain, liver_512")
    parser.add_argument("--depth", default="rec")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    case = e2e.cases((args.case,))[args.case]
    env = runtime_env.child_env()
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(args.threads)
    executor = os.environ.get("UNETPP_EXECUTOR", "fastest (default)")
    print(f"{args.case} at depth {args.depth}, executor {executor}, load {os.getloadavg()[0]:.2f}")
    with warm.WarmServer(env) as server:
        first = server.request(case, args.threads, args.depth)
        print(f"first request {first['seconds']:.2f} s (starts the server)")
        for round_ in range(args.rounds):
            for condition in ("idle", "loaded"):
                run = warm._timed(server, case, args.threads, args.depth, condition == "loaded")
                split = run["split"]
                print(f"r{round_} {condition:6s} {run['seconds']:.3f} s, waited "
                      f"{split['start']:.3f} s before its first progress line "
                      f"(load {run['load']})", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
