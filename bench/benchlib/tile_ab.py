"""Per-tile seconds of this tree's ``cpu_inference.py`` against an older copy of the whole file,
in one process, interleaved, beside OpenVINO fp32 (session 11, issue 14: the nodule tile).

``python -m benchlib.tile_ab CONFIGS ROUNDS MODES [REPS] [--old FILE]`` from ``bench/``, with
``OMP_WAIT_POLICY=PASSIVE`` and 2 threads as ``bench/run`` sets them. CONFIGS: a JSON list of
``[task, depth]`` (``"large"``: the 16..256 network, random weights, 96^3); MODES: any of
``old`` (the forward of FILE, e.g. ``git show main:UNetPlusPlus/UNetPlusPlusLib/engine/
cpu_inference.py > /tmp/old_ci.py``), ``ours``, ``ov``. Each round runs every mode REPS times per
config and keeps the median; prints medians over rounds and the median of the rounds' ratios
mode / ours (one JSON line), and the load average before and after.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys

import torch
from UNetPlusPlusLib.engine import cpu_inference, executors, network

from . import interleave
from .norm_ab import _build


def _old_module(path: str):
    """FILE loaded as a sibling module of ``cpu_inference`` (its relative imports resolve)."""
    spec = importlib.util.spec_from_file_location("UNetPlusPlusLib.engine._old_ci", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    old_path = argv[argv.index("--old") + 1] if "--old" in argv else None
    argv = [a for a in argv if a not in ("--old", old_path)]
    configs, rounds, modes = json.loads(argv[0]), int(argv[1]), argv[2].split(",")
    reps = int(argv[3]) if len(argv) > 3 else 5
    torch.set_num_threads(2)
    load_before = os.getloadavg()[0]
    old = _old_module(old_path) if "old" in modes else cpu_inference
    built = {task: _build(task) for task in {task for task, _ in configs}}
    with torch.inference_mode(), cpu_inference.reuse_buffers(), old.reuse_buffers():
        plan = []
        for task, depth in configs:
            model, tile = built[task]["model"], built[task]["tile"]
            runners = {"ours": executors.make_executor("ours", model, "cpu", 2)}
            runners["old"] = runners["ours"]
            if "ov" in modes:
                runners["ov"] = executors.make_executor(
                    "openvino", model, "cpu", 2, cache_dir=f"/tmp/tile_ab_graphs/{task}"
                )
            for _ in range(1 if task == "large" else 3):  # warm-up
                for mode in modes:
                    network.cpu_inference = old if mode == "old" else cpu_inference
                    runners[mode].run(tile, depth)
            plan.append((f"{task}:L{depth}", depth, tile, runners))
        cells = {key: (depth, tile, runners) for key, depth, tile, runners in plan}

        def select(mode: str) -> None:
            network.cpu_inference = old if mode == "old" else cpu_inference

        times = interleave.time_cells(rounds, cells, modes, reps, select)
        network.cpu_inference = cpu_inference
    result: dict = {"load": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
    result.update(interleave.summarize(times, "ours"))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
