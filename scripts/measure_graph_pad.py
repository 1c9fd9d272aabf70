"""OpenVINO seconds per 48^3 tile of the shipped liver model: the ONNX graph traced without the
odd-size pad (export format 1) against the graph with it (format 2, engine/network.py records
the pad while tracing so that a tile of 47 runs). Interleaved rounds, 2 threads, best and median.

    PYTHONPATH=UNetPlusPlus python scripts/measure_graph_pad.py [rounds]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from UNetPlusPlusLib.engine.executors import OpenVinoExecutor
from UNetPlusPlusLib.engine.manifest import load_weights
from UNetPlusPlusLib.engine.network import UNetPlusPlus3D
from UNetPlusPlusLib.engine.registry import find_model

DEPTHS = (3, 4)


def main(rounds: int = 15) -> None:
    manifest = find_model("liver")
    model = UNetPlusPlus3D.from_config(manifest.network)
    model.load_state_dict(load_weights(manifest))
    model.eval()
    tracing = torch.jit.is_tracing
    executors = {}
    for name, hook in (("without pad", lambda: False), ("with pad", tracing)):
        torch.jit.is_tracing = hook  # the export sees the old or the new network
        try:
            executor = OpenVinoExecutor(model, 2, cache_dir=Path(tempfile.mkdtemp()))
            for depth in DEPTHS:  # export and compile now, with this hook
                executor.run(torch.zeros(1, 1, 48, 48, 48), depth)
        finally:
            torch.jit.is_tracing = tracing
        executors[name] = executor
    tile = torch.randn(1, 1, 48, 48, 48)
    times: dict = {(name, depth): [] for name in executors for depth in DEPTHS}
    for _ in range(rounds):
        for depth in DEPTHS:
            for name, executor in executors.items():
                started = time.perf_counter()
                executor.run(tile, depth)
                times[(name, depth)].append(time.perf_counter() - started)
    print(f"load average {os.getloadavg()[0]:.2f}, {rounds} interleaved rounds")
    for (name, depth), seconds in times.items():
        best, median = min(seconds), sorted(seconds)[len(seconds) // 2]
        print(f"L{depth} {name}: best {best:.4f} s, median {median:.4f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 15)
