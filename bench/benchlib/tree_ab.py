"""The fast path's per-tile module-tree check, walked every tile (before) or cached (now), in one
process, interleaved (session 13, issue 14: the nodule tile's per-tile overhead).

``python -m benchlib.tree_ab CONFIGS ROUNDS [THREADS]`` from ``bench/`` (``PYTHONPATH`` with
``../UNetPlusPlus``); CONFIGS as in ``tile_ab`` (shipped tasks). Each round runs both variants
(order rotated) 5 tiles per config; prints per config the median wall and CPU ms per tile
(``time.process_time``) and the median of the rounds' ratios to "walk" (< 1: faster now).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

import torch
from torch import nn
from UNetPlusPlusLib.engine import cpu_inference, network

from . import interleave
from .executor_worker import _shipped


def _walk_every_tile(self, x) -> bool:
    """``_fast_cpu_path`` as it was before the cache: one ``modules()`` walk per call."""
    if self.training or network._plain() or not cpu_inference.available(x):
        return False
    if network._global_hooks():
        return False
    for m in self.modules():
        if m._forward_hooks or m._forward_pre_hooks:
            return False
        if isinstance(m, nn.BatchNorm3d) and m.running_var is None:
            return False
    return True


def main(argv: list[str]) -> int:
    configs, rounds = json.loads(argv[0]), int(argv[1])
    threads = int(argv[2]) if len(argv) > 2 else 2
    torch.set_num_threads(threads)
    load_before = os.getloadavg()[0]
    cached = network.UNetPlusPlus3D._fast_cpu_path
    variants = {"walk": _walk_every_tile, "cached": cached}
    built = {task: _shipped(task, threads, [1]) for task in {task for task, _ in configs}}

    def measure(cell: tuple) -> tuple:
        (task, depth), name = cell
        network.UNetPlusPlus3D._fast_cpu_path = variants[name]
        model, tile = built[task]["model"], built[task]["tile"]
        wall, cpu = [], []
        for _ in range(5):
            started, cpu_started = time.perf_counter(), time.process_time()
            model(tile, depth=depth)
            wall.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)
        return statistics.median(wall), statistics.median(cpu)

    groups = [[((task, depth), name) for name in variants] for task, depth in configs]
    with torch.inference_mode(), cpu_inference.reuse_buffers():
        for group in groups:  # warm-up: packed weights, buffers
            for cell in group:
                measure(cell)
        try:
            samples = interleave.collect(rounds, groups, measure, rotate=True)
        finally:
            network.UNetPlusPlus3D._fast_cpu_path = cached
    times: dict = {}
    for ((task, depth), name), values in samples.items():
        times.setdefault(f"{task}:L{depth}", {})[name] = [wall for wall, _ in values]
        times.setdefault(f"{task}:L{depth}:cpu", {})[name] = [cpu for _, cpu in values]
    out = {"threads": threads, "load": [round(load_before, 1), round(os.getloadavg()[0], 1)]}
    out.update(interleave.summarize(times, "walk", scale=1e3, digits=2))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
