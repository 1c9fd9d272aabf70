"""Seconds per tile for every executor, idle and under a competing load, in one process.

Job ``executors`` (``python -m benchlib.worker``): for each network configuration

- ``shipped``: the liver model (features 8..128, its 48^3 tile) at the asked depths, every
  executor; ``shipped:nodule`` and ``shipped:brain``: the lung-nodule model on its own 16x48x48
  tile and the brain-tumour model (4 channels in and out, 48^3), at the same depths, with the
  executors in ``model_executors`` (all but MONAI unless given); the other executors run on
  the liver model only at ``other_depths`` when given;
- ``large``: the issue-6 network (features 16..256, 96^3 tile, ``large_tile`` to change it)
  with the MONAI weights, at L4;

it runs each executor (ours, torch eager, ONNX Runtime, OpenVINO fp32 and bf16, the default
``fastest``, MONAI at L4; ``skip`` leaves some out) once to warm up (graph export and
compilation, oneDNN kernels), then times single-tile forwards in interleaved rounds, first on
the machine as it is ("idle"), then with ``load.competing_load`` running ("loaded"), keeping the
best time of each (``rows``) and every round's (``samples``). The default executor
(``default``, else ``engine.executors.default_executor``) and OpenVINO run side by side on each
shipped model's tile (``pairing.py``: back to back, ABBA, each after an untimed settle tile);
``paired`` keeps every round's OpenVINO / default ratio per cell. The argmax agreement of
every executor with ours is computed on the same tile. ``fastest`` forgets its choice when a
condition starts and probes again in untimed calls, as a fresh ``unetpp segment`` under that
condition would; its picks are reported.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Collection, Optional

import numpy as np
import torch
from UNetPlusPlusLib.engine.cpu_inference import reuse_buffers
from UNetPlusPlusLib.engine.probe import MAX_PAIRS

from . import pairing, workload
from .load import competing_load

SHIPPED_FEATURES = (8, 16, 32, 64, 128, 8)
EXECUTORS = ("ours", "torch", "onnxruntime", "openvino", "openvino-bf16", "fastest", "monai")


class _Monai:
    def __init__(self, net) -> None:
        self.net = net

    def run(self, x, depth):
        return self.net(x)[0]


def _runner(name: str, model, monai_net, threads: int, cache: Path):
    """An object with run(tile, depth) -> logits for one executor, or None if not installed."""
    from UNetPlusPlusLib.engine import executors

    if name == "monai":
        return _Monai(monai_net)
    library = "openvino" if name.startswith("openvino") else name
    if library not in executors.available_executors():
        return None
    options = {"precision": "bf16"} if name == "openvino-bf16" else {}
    # fastest compiles the same graphs as openvino: one cache, not a second export and compile
    folder = cache / ("openvino" if name == "fastest" else name)
    return executors.make_executor(library, model, "cpu", threads, cache_dir=folder, **options)


#: the other shipped models measured beside the liver one: config name -> task
OTHER_SHIPPED = {"shipped:nodule": "lung-nodule", "shipped:brain": "brain-tumor"}
#: configs where the default and OpenVINO are timed side by side (job key ``paired``): the
#: shipped models, which the last line's keys compare; not the large network (2-3 s a tile)
PAIRED = ("shipped", *OTHER_SHIPPED)


def _tile(model, tile_zyx: tuple, seed: int) -> torch.Tensor:
    """A (1, C, z, y, x) synthetic tile for ``model``'s input channels (one volume a channel)."""
    channels = int(model.in_channels)
    arrays = [workload.synthetic_volume(tile_zyx, seed=seed + c)[0] for c in range(channels)]
    return torch.from_numpy(np.stack(arrays))[None]


def _shipped(task: str, threads: int, depths: list, batch: Optional[int] = None) -> dict:
    """One shipped model on its manifest's own inference tile (``tile_size_zyx``), as many
    tiles per pass as ``unetpp segment`` runs by default (``tile_run.auto_tile_batch``: 2 on
    the CPU since session 16; ``batch`` overrides). Every executor runs the same batch; the
    rows are seconds per tile (``_record`` divides by the batch)."""
    from UNetPlusPlusLib.engine.predictor import Predictor
    from UNetPlusPlusLib.engine.tile_run import auto_tile_batch

    predictor = Predictor.from_task(task, device="cpu", threads=threads)
    tile_zyx = tuple(int(n) for n in predictor.manifest.tile_size_zyx)
    batch = auto_tile_batch("cpu", tile_zyx) if batch is None else int(batch)
    return {
        "model": predictor.model,
        "tile": _tile(predictor.model, tile_zyx, seed=1).repeat(batch, 1, 1, 1, 1),
        "tile_zyx": tile_zyx,
        "depths": [int(d) for d in depths],
    }


def _configurations(job: dict, weights: Path) -> list[dict]:
    from UNetPlusPlusLib.engine.monai_weights import load_monai_weights
    from UNetPlusPlusLib.engine.network import UNetPlusPlus3D

    threads = int(job["threads"])
    batch = job.get("tile_batch")  # None: the engine's default per tile size
    configs = [{"name": "shipped", **_shipped("liver", threads, job["shipped_depths"], batch)}]
    configs[0]["monai"] = workload.monai_network(SHIPPED_FEATURES)
    for name, task in OTHER_SHIPPED.items() if job.get("other_shipped", True) else ():
        shipped = _shipped(task, threads, job["shipped_depths"], batch)
        config = {"name": name, "monai": None, **shipped}
        config["executors"] = job.get("model_executors") or [e for e in EXECUTORS if e != "monai"]
        configs.append(config)
    if job.get("large", True):
        large = UNetPlusPlus3D(workload.IN_CHANNELS, workload.OUT_CHANNELS, workload.FEATURES)
        load_monai_weights(large, workload.load_weights(weights))
        side = int(job.get("large_tile", workload.TILE))
        volume = workload.synthetic_volume((side,) * 3)
        configs.append(
            {
                "name": "large",
                "tile_zyx": (side,) * 3,
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
            entry["tile"] = "x".join(str(n) for n in config["tile_zyx"])
            if config["tile"].shape[0] > 1:  # seconds per tile of a pass of several
                entry["tile"] += f", {config['tile'].shape[0]} tiles per pass"
            for name in config.get("executors", EXECUTORS):
                if name in job.get("skip", ()):
                    continue
                runner = _runner(name, model, config["monai"], threads, cache / config["name"])
                if runner is None:
                    entry["rows"][name] = "not installed"
                    continue
                core = job.get("model_executors") or EXECUTORS
                for depth in config["depths"]:
                    if name == "monai" and depth != 4:
                        continue  # MONAI has no pruned inference: the full network only
                    if name not in core and depth not in job.get("other_depths", [depth]):
                        continue  # --quick: torch eager and ONNX Runtime at fewer depths
                    plan.append((config["name"], depth, name, runner, config["tile"]))
            # warm-up and agreement against ours, on the same tile
            reference = {}
            for cname, depth, name, runner, tile in plan:
                if cname != config["name"]:
                    continue
                logits = runner.run(tile, depth)
                labels = logits.argmax(dim=1)
                if name == "ours":
                    reference[depth] = labels
                entry["agree"][f"{name}:L{depth}"] = float(
                    (labels == reference[depth]).float().mean()
                )
        default = job.get("default") or _default_cpu()
        paired = set(job.get("paired", PAIRED))  # side by side there (the keys' configs)
        for condition in ("idle", "loaded"):
            load = competing_load(2) if condition == "loaded" else _nothing()
            with load:
                time.sleep(0.5 if condition == "loaded" else 0.0)  # let the load start
                _probe_fastest(plan, condition)
                time_rounds(results, plan, default, condition, rounds[condition], paired=paired)
                more = int(job.get("paired_rounds", 0))
                paired_only_rounds(
                    results, plan, default, condition, more, rounds[condition], paired=paired
                )
    for entry in results.values():
        picks = entry.get("fastest_picks", {})
        entry["fastest_picks"] = {key: sorted(names) for key, names in picks.items()}
    return {"configs": results}


def _default_cpu() -> str:
    from UNetPlusPlusLib.engine.executors import default_executor

    return default_executor("cpu")


def time_rounds(
    results: dict,
    plan: list,
    default: str,
    condition: str,
    rounds: int,
    clock: Callable[[], float] = time.perf_counter,
    paired: Optional[Collection[str]] = None,
) -> None:
    """Time ``rounds`` rounds of ``plan`` (``pairing.run_round``: ``default`` and OpenVINO side
    by side in the configs named in ``paired``, None: all) under ``condition`` into
    ``results[config]``: ``rows`` (best of rounds), ``samples`` (every round's seconds),
    ``paired`` (every round's OpenVINO / default ratio, ``paired_with`` = ``default``) and
    ``fastest_picks``. Keys are ``"L{depth}:{condition}"``."""
    for index in range(rounds):
        timings = pairing.run_round(plan, default, index, clock, paired)
        _record(results, plan, timings, condition)
        ratios = pairing.round_ratios(plan, default, timings, paired)
        _record_ratios(results, ratios, condition, default)


def paired_only_rounds(
    results: dict,
    plan: list,
    default: str,
    condition: str,
    rounds: int,
    first_round: int,
    clock: Callable[[], float] = time.perf_counter,
    paired: Optional[Collection[str]] = None,
) -> None:
    """``rounds`` more rounds of the side-by-side pairs alone (the default and OpenVINO on each
    paired config's tile, as in :func:`time_rounds`, ABBA continuing from round
    ``first_round``): their OpenVINO / default ratios are appended to ``paired``; ``rows`` and
    ``samples`` are left as the full rounds made them, so that every executor's row is a best
    of as many rounds. The last line's keys are medians of these ratios, and each more round
    narrows them for a few seconds, where a full round times every executor."""
    if not pairing.pairs(plan, default, paired):  # OpenVINO the default, or no pair at all
        return
    names = (default, pairing.OPENVINO)
    pairs_only = [e for e in plan if e[2] in names and (paired is None or e[0] in paired)]
    for index in range(first_round, first_round + rounds):
        timings = pairing.run_round(pairs_only, default, index, clock, paired)
        ratios = pairing.round_ratios(pairs_only, default, timings)
        _record_ratios(results, ratios, condition, default)


def _record_ratios(results: dict, ratios: dict, condition: str, default: str) -> None:
    """One round's {(config, depth): OpenVINO / ``default``} into ``results[config]``:
    ``paired`` (per cell, every round's) and ``paired_with``."""
    for (cname, depth), ratio in ratios.items():
        per_round = results[cname].setdefault("paired", {})
        per_round.setdefault(f"L{depth}:{condition}", []).append(round(ratio, 5))
        results[cname]["paired_with"] = default


def _record(results: dict, plan: list, timings: list, condition: str) -> None:
    """One round's seconds into the rows (best of rounds) and ``samples`` (every round)."""
    for index, took in timings:
        cname, depth, name, runner, tile = plan[index]
        took = took / (int(tile.shape[0]) if tile is not None else 1)  # seconds per tile
        rows = results[cname]["rows"].setdefault(name, {})
        key = f"L{depth}:{condition}"
        rows[key] = min(rows.get(key, float("inf")), took)
        samples = results[cname].setdefault("samples", {}).setdefault(name, {})
        samples.setdefault(key, []).append(round(took, 5))  # per round
        if name == "fastest":
            picks = results[cname].setdefault("fastest_picks", {})
            picks.setdefault(key, set()).add(runner.chosen)


def _probe_fastest(plan: list, condition: str) -> None:
    """``fastest`` starts afresh under this condition: forget, then probe in untimed calls."""
    for _cname, depth, name, runner, tile in plan:
        if name == "fastest":
            runner.forget()
            for _ in range(runner.OURS_FIRST + 1 + 2 * MAX_PAIRS):  # ours alone, warm-up, pairs
                runner.run(tile, depth)
                if runner.decided(tuple(tile.shape), depth):
                    break


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
