"""Per-tile CPU and wall time of ours with this tree's norm against an older norm, in one process,
interleaved, beside ``fastest`` (decided on ours) and OpenVINO (sessions 10 and 14).

``python -m benchlib.norm_ab CONFIGS ROUNDS MODES [REPS] [--old FILE] [--threads N]`` from
``bench/``, with ``OMP_WAIT_POLICY=PASSIVE`` as ``bench/run`` sets it (default 2 threads).
CONFIGS: a JSON list of ``[task, depth]`` (``"large"``: the 16..256 network, random weights,
96^3); MODES: any of ``old`` (the ``norm_act_`` of FILE, an older ``cpu_norm.py``, e.g.
``git show main:UNetPlusPlus/UNetPlusPlusLib/engine/cpu_norm.py > /tmp/old_norm.py``; or the
``_norm_act_`` of an older ``cpu_inference.py``), ``ours``, ``fastest``, ``ov``. Each round runs
every mode REPS times per config (the order rotated from round to round) and keeps the median
wall and CPU time (``time.process_time``: all threads, robust to other programs' load) per tile.
Prints one JSON line: per config the medians over rounds in ms (``KEY`` wall, ``KEY:cpu`` CPU)
and the median of the rounds' ratios mode / ours, the thread count and the load average before
and after.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import sys
import time

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
    """The norm of FILE, loaded as a sibling module of ``cpu_norm`` (relative imports resolve)."""
    spec = importlib.util.spec_from_file_location("UNetPlusPlusLib.engine._old_norm", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    own = getattr(module, "norm_act_", None)  # an old cpu_inference.py imports today's
    if getattr(own, "__module__", None) == module.__name__:
        return own
    if not hasattr(module, "_norm_act_"):
        raise SystemExit(f"{path} defines no norm of its own (norm_act_ or _norm_act_)")
    return module._norm_act_


def _option(argv: list[str], name: str) -> tuple[list[str], str | None]:
    if name not in argv:
        return argv, None
    value = argv[argv.index(name) + 1]
    return [a for a in argv if a not in (name, value)], value


def main(argv: list[str]) -> int:
    argv, old_path = _option(argv, "--old")
    argv, threads = _option(argv, "--threads")
    configs, rounds, modes = json.loads(argv[0]), int(argv[1]), argv[2].split(",")
    reps = int(argv[3]) if len(argv) > 3 else 5
    threads = int(threads or 2)
    torch.set_num_threads(threads)
    load_before = os.getloadavg()[0]
    new_norm = cpu_inference.norm_act_
    old_norm = _old_norm(old_path) if "old" in modes else None
    built = {task: _build(task) for task in {task for task, _ in configs}}
    cache = "/tmp/norm_ab_graphs"

    def select(mode: str) -> None:
        cpu_inference.norm_act_ = old_norm if mode == "old" else new_norm

    def measure(cell: tuple) -> tuple[float, float]:
        key, mode = cell
        depth, tile, runners = cells[key]
        select(mode)
        wall, cpu = [], []
        for _ in range(reps):
            started, cpu_started = time.perf_counter(), time.process_time()
            runners[mode].run(tile, depth)
            wall.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)
        return statistics.median(wall), statistics.median(cpu)

    with torch.inference_mode(), cpu_inference.reuse_buffers():
        cells = {}
        for task, depth in configs:
            model, tile = built[task]["model"], built[task]["tile"]
            graphs = f"{cache}/{task}"
            runners = {"ours": executors.make_executor("ours", model, "cpu", threads)}
            runners["old"] = runners["ours"]
            if "fastest" in modes:  # busy: decided on ours at once
                runners["fastest"] = executors.make_executor(
                    "fastest", model, "cpu", threads, cache_dir=graphs, busy=lambda: True
                )
            if "ov" in modes:
                runners["ov"] = executors.make_executor(
                    "openvino", model, "cpu", threads, cache_dir=graphs
                )
            cells[f"{task}:L{depth}"] = (depth, tile, runners)
        groups = [[(key, mode) for mode in modes] for key in cells]
        try:
            for group in groups:  # warm-up: packed weights, buffers, compiled graphs
                for cell in group:
                    measure(cell)
            samples = interleave.collect(rounds, groups, measure, rotate=True)
        finally:
            select("ours")
    times: dict = {}
    for (key, mode), values in samples.items():
        times.setdefault(key, {})[mode] = [wall for wall, _ in values]
        times.setdefault(f"{key}:cpu", {})[mode] = [cpu for _, cpu in values]
    out = {"threads": threads, "load": [round(load_before, 1), round(os.getloadavg()[0], 1)]}
    out.update(interleave.summarize(times, "ours", scale=1e3, digits=2))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
