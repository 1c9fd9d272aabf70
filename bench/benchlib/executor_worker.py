"""Seconds per tile for every executor, idle and under a competing load, in one process.

Job ``executors`` (``python -m benchlib.worker``): for each network configuration

- ``shipped``: the shipped models' network (features 8..128, 48^3 tile) with the liver model's
  weights, at the asked depths;
- ``large``: the issue-6 network (features 16..256, 96^3 tile) with the MONAI weights, at L4;

it runs each executor (ours, torch eager, ONNX Runtime, OpenVINO fp32 and bf16, MONAI at L4)
once to warm up (graph export and compilation, oneDNN kernels), then times single-tile
forwards in interleaved rounds, first on the machine as it is ("idle"), then with
``load.competing_load`` running ("loaded"), keeping the best time of each. The argmax agreement
of every executor with ours is computed on the same tile.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from UNetPlusPlusLib.engine.cpu_inference import reuse_buffers

from . import workload
from .load import competing_load

SHIPPED_FEATURES = (8, 16, 32, 64, 128, 8)
EXECUTORS = ("ours", "torch", "onnxruntime", "openvino", "openvino-bf16", "monai")


def _runner(name: str, model, monai_net, threads: int, cache: Path):
    """A function tile, depth -> logits for one executor, or None when it is not installed."""
    from UNetPlusPlusLib.engine import executors

    if name == "monai":
        return lambda x, depth: monai_net(x)[0]
    library = "openvino" if name.startswith("openvino") else name
    if library not in executors.available_executors():
        return None
    options = {"precision": "bf16"} if name == "openvino-bf16" else {}
    executor = executors.make_executor(
        library, model, "cpu", threads, cache_dir=cache / name, **options
    )
    return executor.run


def _configurations(job: dict, weights: Path) -> list[dict]:
    from UNetPlusPlusLib.engine.monai_weights import load_monai_weights
    from UNetPlusPlusLib.engine.network import UNetPlusPlus3D
    from UNetPlusPlusLib.engine.predictor import Predictor

    configs = []
    shipped = Predictor.from_task("liver", device="cpu", threads=job["threads"]).model
    tile = 48
    configs.append(
        {
            "name": "shipped",
            "model": shipped,
            "monai": workload.monai_network(SHIPPED_FEATURES),
            "tile": torch.from_numpy(workload.synthetic_volume((tile,) * 3, seed=1))[None],
            "depths": [int(d) for d in job["shipped_depths"]],
        }
    )
    if job.get("large", True):
        large = UNetPlusPlus3D(workload.IN_CHANNELS, workload.OUT_CHANNELS, workload.FEATURES)
        load_monai_weights(large, workload.load_weights(weights))
        volume = workload.synthetic_volume((workload.TILE,) * 3, seed=0)
        configs.append(
            {
                "name": "large",
                "model": large.eval(),
                "monai": workload.monai_network().eval(),
                "tile": torch.from_numpy(volume)[None],
                "depths": [4],
            }
        )
        configs[-1]["monai"].load_state_dict(workload.load_weights(weights))
    return configs


def executors_job(job: dict) -> dict:
    threads = int(job["threads"])
    cache = Path(job["cache"])
    rounds = {"idle": int(job["rounds"]), "loaded": int(job["rounds"])}
    results: dict = {}
    plan = []  # (config name, depth, executor name, callable, tile)
    # one workspace for the whole job, as one sliding window keeps one (engine/cpu_inference.py)
    configs = _configurations(job, Path(job["weights"]))  # weights outside inference mode
    with torch.inference_mode(), reuse_buffers():
        for config in configs:
            model = config["model"]
            entry = results.setdefault(config["name"], {"rows": {}, "agree": {}})
            for name in EXECUTORS:
                run = _runner(name, model, config["monai"], threads, cache / config["name"])
                if run is None:
                    entry["rows"][name] = "not installed"
                    continue
                for depth in config["depths"]:
                    if name == "monai" and depth != 4:
                        continue  # MONAI has no pruned inference: the full network only
                    plan.append((config["name"], depth, name, run, config["tile"]))
            # warm-up and agreement against ours, on the same tile
            reference = {}
            for cname, depth, name, run, tile in plan:
                if cname != config["name"]:
                    continue
                logits = run(tile, depth)
                labels = logits.argmax(dim=1)
                if name == "ours":
                    reference[depth] = labels
                entry["agree"][f"{name}:L{depth}"] = float(
                    (labels == reference[depth]).float().mean()
                )
        for condition in ("idle", "loaded"):
            load = competing_load(2) if condition == "loaded" else _nothing()
            with load:
                time.sleep(0.5 if condition == "loaded" else 0.0)  # let the load start
                for _ in range(rounds[condition]):
                    for cname, depth, name, run, tile in plan:
                        started = time.perf_counter()
                        run(tile, depth)
                        took = time.perf_counter() - started
                        rows = results[cname]["rows"].setdefault(name, {})
                        key = f"L{depth}:{condition}"
                        rows[key] = min(rows.get(key, float("inf")), took)
    return {"configs": results}


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
