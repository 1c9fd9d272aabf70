"""Nodule clicks in series on warm ``unetpp serve`` processes of two code trees, interleaved.

``python -m benchlib.click_series --code main=PATH,new=PATH [--clicks 7] [--rounds 2]
[--gap 3] [--busy 0] [--home DIR]``: per round, a fresh server per tree (each with its own
``UNETPP_HOME``, empty or a copy of ``--home`` without its probe memory, so no tree finds the
other's decisions), then ``--clicks`` clicks
at the centre of an LIDC crop (``e2e.cases``), the trees alternating and their order flipping
every click, ``--gap`` seconds of think time before each. Click 1 is timed from starting its
process, right before it (``warm.WarmServer``). Prints each click's seconds and inference
split, then per click index the median over rounds of second / first tree. Used for issue
14's serve idle probe (it runs in the think time; docs/BENCHMARK.md).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def main(argv=None) -> None:
    from UNetPlusPlusLib.engine import runtime_env

    from .e2e import cases
    from .load import competing_load
    from .warm import WarmServer

    parser = argparse.ArgumentParser(prog="python -m benchlib.click_series")
    parser.add_argument("--code", required=True, help="NAME=PATH,NAME=PATH: UNetPlusPlus folders")
    parser.add_argument("--clicks", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--gap", type=float, default=3.0, help="think time before each click, s")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--busy", type=int, default=0, help="competing busy processes")
    parser.add_argument(
        "--home",
        default="",
        help="a UNETPP_HOME to copy for every server (graphs already exported, as after a "
        "first use; its probe.json files are removed); default: an empty one",
    )
    args = parser.parse_args(argv)
    trees = dict(item.split("=", 1) for item in args.code.split(","))
    case = cases(("nodule",))["nodule"]
    times: dict = {}
    busy = competing_load(args.busy) if args.busy else contextlib.nullcontext()
    with busy:
        for round_ in range(args.rounds):
            with contextlib.ExitStack() as stack:
                servers = {}
                for name, path in trees.items():
                    env = runtime_env.child_env()
                    env.update(OMP_NUM_THREADS=str(args.threads), PYTHONPATH=str(Path(path)))
                    home = stack.enter_context(tempfile.TemporaryDirectory())
                    if args.home:
                        shutil.copytree(args.home, home, dirs_exist_ok=True)
                        for memory in Path(home).rglob("probe.json"):
                            memory.unlink()
                    env["UNETPP_HOME"] = home
                    env.pop("UNETPP_EXECUTOR", None)
                    servers[name] = env
                order = list(trees) if round_ % 2 == 0 else list(trees)[::-1]
                for click in range(1, args.clicks + 1):
                    turn = order if click % 2 else order[::-1]
                    for name in turn:
                        time.sleep(args.gap)
                        if click == 1:  # started right before: click 1 includes the start
                            servers[name] = stack.enter_context(WarmServer(servers[name]))
                        result = servers[name].request(case, args.threads)
                        times.setdefault((click, name), []).append(result["seconds"])
                        print(f"r{round_} click {click} {name}: {result['seconds']:.3f} s "
                              f"(infer {result['split']['infer']:.3f}; "
                              f"load {os.getloadavg()[0]:.2f})", flush=True)  # fmt: skip
    first, second = list(trees)
    for click in range(1, args.clicks + 1):
        a, b = times[(click, first)], times[(click, second)]
        ratio = statistics.median(y / x for x, y in zip(a, b))
        print(f"click {click}: {first} {statistics.median(a):.3f} s, {second} "
              f"{statistics.median(b):.3f} s, median {second}/{first} {ratio:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
