"""Per-tile seconds of ours with this tree's norm against an older ``cpu_inference.py``'s, in one
process, interleaved, beside ``fastest`` (decided on ours) and OpenVINO (session 10, small tiles).

``python -m benchlib.norm_ab CONFIGS ROUNDS MODES [REPS] [--old FILE]`` from ``bench/``, with
``OMP_WAIT_POLICY=PASSIVE`` and 2 threads as ``bench/run`` sets them. CONFIGS: a JSON list of
``[task, depth]`` (``"large"``: the 16..256 network, random weights, 96^3); MODES: any of
``old`` (``_norm_act_`` of FILE, e.g. ``git show main:UNetPlusPlus/UNetPlusPlusLib/engine/
cpu_inference.py > /tmp/old_ci.py``), ``ours``, ``fastest``, ``ov``. Each round runs every mode
REPS times per config and keeps the median; prints medians over rounds and the median of the
rounds' ratios mode / ours (one JSON line).
"""

from __future__ import annotations

import importlib.util
import json
import sys

import torch
from UNetPlusPlusLib.engine import cpu_inference, executors

from . import interleave, workload
from .executor_worker import _shipped


def _build(task: str) -> dict:
    if task != "large":
        return _shipped(task, 2, [1])
    from UNetPlusPlusLib.engine.network import UNetPlusPlus3D

    torch.manual_seed(0)
    model = UNetPlusPlus3D(workload.IN_CHANNELS, workload.OUT_CHANNELS, workload.FEATURES)
    volume = workload.synthetic_volume((96,) * 3)
    return {"model": model.eval(), "tile": torch.from_numpy(volume)[None]}


def _old_norm(path: str):
    spec = importlib.util.spec_from_file_location("UNetPlusPlusLib.engine._old_ci", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module._norm_act_


def main(argv: list[str]) -> int:
    old_path = argv[argv.index("--old") + 1] if "--old" in argv else None
    argv = [a for a in argv if a not in ("--old", old_path)]
    configs, rounds, modes = json.loads(argv[0]), int(argv[1]), argv[2].split(",")
    reps = int(argv[3]) if len(argv) > 3 else 5
    torch.set_num_threads(2)
    new_norm = cpu_inference.norm_act_
    old_norm = _old_norm(old_path) if "old" in modes else None
    built = {task: _build(task) for task in {task for task, _ in configs}}
    cache = "/tmp/norm_ab_graphs"
    with torch.inference_mode(), cpu_inference.reuse_buffers():
        plan = []
        for task, depth in configs:
            model, tile = built[task]["model"], built[task]["tile"]
            graphs = f"{cache}/{task}"
            runners = {"ours": executors.make_executor("ours", model, "cpu", 2)}
            runners["old"] = runners["ours"]
            runners["fastest"] = executors.make_executor(
                "fastest", model, "cpu", 2, cache_dir=graphs, busy=lambda: True
            )  # busy: decided on ours at once
            if "ov" in modes:
                runners["ov"] = executors.make_executor(
                    "openvino", model, "cpu", 2, cache_dir=graphs
                )
            for _ in range(1 if task == "large" else 3):  # warm-up
                for mode in modes:
                    runners[mode].run(tile, depth)
            plan.append((f"{task}:L{depth}", depth, tile, runners))
        cells = {key: (depth, tile, runners) for key, depth, tile, runners in plan}

        def select(mode: str) -> None:
            cpu_inference.norm_act_ = old_norm if mode == "old" else new_norm

        times = interleave.time_cells(rounds, cells, modes, reps, select)
        cpu_inference.norm_act_ = new_norm
    result = interleave.summarize(times, "ours")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
