"""Per-operation overhead of ours with this tree's norm against an older one: CPU ms per tiny
tile (4^3 at L1, 16x16x32 at L4: no arithmetic to speak of), one process, interleaved, the order
swapped every round (session 14, issue 14).

``python -m benchlib.tiny_ab OLD_CPU_NORM [ROUNDS] [THREADS]`` from ``bench/`` (``PYTHONPATH``
with ``../UNetPlusPlus``), OLD_CPU_NORM as ``norm_ab --old``. Prints one JSON line: per depth the
median CPU ms per tile of each and the median of the rounds' ratios old / new, and the load
average before and after.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

import torch
from UNetPlusPlusLib.engine import cpu_inference

from .executor_worker import _shipped
from .norm_ab import _old_norm

TILES = {1: (4, 4, 4), 4: (16, 16, 32)}


def main(argv: list[str]) -> int:
    rounds = int(argv[1]) if len(argv) > 1 else 20
    torch.set_num_threads(int(argv[2]) if len(argv) > 2 else 1)
    load_before = os.getloadavg()[0]
    model = _shipped("lung-nodule", 1, [1])["model"]
    norms = {"old": _old_norm(argv[0]), "new": cpu_inference.norm_act_}
    times: dict = {depth: {name: [] for name in norms} for depth in TILES}
    with torch.inference_mode(), cpu_inference.reuse_buffers():
        try:
            for r in range(rounds):
                for depth, shape in TILES.items():
                    tile = torch.randn(1, 1, *shape)
                    for name in list(norms) if r % 2 == 0 else list(norms)[::-1]:
                        cpu_inference.norm_act_ = norms[name]
                        model(tile, depth=depth)  # warm: buffers, packed weights
                        started = time.process_time()
                        for _ in range(30):
                            model(tile, depth=depth)
                        times[depth][name].append((time.process_time() - started) / 30 * 1e3)
        finally:
            cpu_inference.norm_act_ = norms["new"]
    out: dict = {"load": [round(load_before, 1), round(os.getloadavg()[0], 1)]}
    for depth, by_name in times.items():
        ratios = [a / b for a, b in zip(by_name["old"], by_name["new"])]
        out[f"L{depth}"] = {name: round(statistics.median(v), 2) for name, v in by_name.items()}
        out[f"L{depth}"]["old/new"] = round(statistics.median(ratios), 3)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
