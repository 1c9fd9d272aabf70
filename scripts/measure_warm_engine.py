#!/usr/bin/env python
"""Request-to-result seconds for a BraTS case: one-shot ``unetpp segment`` vs ``unetpp serve``.

Each round runs, one after another (so both see the same load):

- one-shot ``python -m UNetPlusPlusLib.cli segment FLAIR T1 T1CE T2 --task brain-tumor --depth N
  --threads 2 --labelmap OUT`` at depth 1 and 4, timed from the start of the process to its exit;
- a fresh ``unetpp serve`` whose first request is depth 1 ("cold": timed from the start of the
  process to the result line, so it includes Python, ``import torch`` and the model), then warm
  requests at depth 4, 1, 4 on the same inputs (timed from the request line to the result line);
- a second fresh server whose first request is depth 4 (cold at depth 4).

The load average (``/proc/loadavg``, 1 minute) is printed next to every figure; the summary gives
the median per kind and the L4/L1 ratios, cold and warm. Nothing here asserts a speed.

    PYTHONPATH=$PWD/UNetPlusPlus python scripts/measure_warm_engine.py [--rounds 3]
        [--case ../shared/data/brain-tumor/brats2018/Brats18_2013_11_1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CASE = REPO.parent / "shared/data/brain-tumor/brats2018/Brats18_2013_11_1"
CLI = [sys.executable, "-m", "UNetPlusPlusLib.cli"]


def load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def inputs(case: Path) -> list[str]:
    return [str(next(case.glob(f"*_{name}.nii.gz"))) for name in ("flair", "t1", "t1ce", "t2")]


def request_argv(files: list[str], depth: int, out: Path) -> list[str]:
    return [*files, "--task", "brain-tumor", "--depth", str(depth), "--threads", "2",
            "--labelmap", str(out)]  # fmt: skip


def one_shot(files: list[str], depth: int, out: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run([*CLI, "segment", *request_argv(files, depth, out)], capture_output=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr.decode(errors="replace"))
    return time.perf_counter() - started


class Server:
    """A ``unetpp serve`` process; ``ask`` sends one request and waits for its end."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [*CLI, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        self.ident = 0

    def ask(self, argv: list[str], since: float) -> float:
        self.ident += 1
        self.process.stdin.write(json.dumps({"id": self.ident, "argv": argv}) + "\n")
        self.process.stdin.flush()
        for line in self.process.stdout:
            reply = json.loads(line)
            if reply.get("id") == self.ident and "error" in reply:
                raise SystemExit(reply["error"])
            if reply.get("id") == self.ident and "result" in reply:
                return time.perf_counter() - since
        raise SystemExit("the server stopped")

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--case", type=Path, default=CASE)
    args = parser.parse_args()
    files = inputs(args.case)
    times: dict[str, list[float]] = {}

    def note(kind: str, seconds: float, before: float) -> None:
        times.setdefault(kind, []).append(seconds)
        print(f"{kind:14s} {seconds:6.2f} s   load {before:.2f} -> {load():.2f}", flush=True)

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "labels.nrrd"
        for round_ in range(1, args.rounds + 1):
            print(f"round {round_}", flush=True)
            for depth in (1, 4):
                before = load()
                note(f"one-shot L{depth}", one_shot(files, depth, out), before)
            server = Server()
            before = load()
            note("serve cold L1", server.ask(request_argv(files, 1, out), server.started), before)
            for depth in (4, 1, 4):
                before = load()
                seconds = server.ask(request_argv(files, depth, out), time.perf_counter())
                note(f"serve warm L{depth}", seconds, before)
            server.close()
            server = Server()
            before = load()
            note("serve cold L4", server.ask(request_argv(files, 4, out), server.started), before)
            server.close()
    median = {kind: statistics.median(values) for kind, values in times.items()}
    print("median: " + ", ".join(f"{k} {v:.2f} s" for k, v in median.items()))
    for kind in ("one-shot", "serve cold", "serve warm"):
        ratio = median[f"{kind} L4"] / median[f"{kind} L1"]
        print(f"L4/L1 {kind}: {ratio:.2f}")


if __name__ == "__main__":
    main()
