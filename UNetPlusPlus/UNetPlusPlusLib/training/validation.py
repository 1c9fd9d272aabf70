"""Validation at every depth L1..L4 and for the ensemble, and the pruning rule.

UNet++ (Zhou et al., IEEE TMI 2019, Sec. III-C/D) trained with deep supervision can be pruned
at inference: the depth-k sub-network (nodes i + j <= k) is exact and cheaper. The paper picks
the pruned level on validation data; here the recommended depth is the *shallowest* depth whose
mean Dice is within ``tolerance`` of the best result (any depth or the ensemble).

Each depth is run as inference runs it (``model(tiles, depth=k)``, softmax, Gaussian-blended
sliding window from the engine), on the preprocessed validation cases (the model's canonical
grid), and timed, so the manifest records Dice per label and seconds per volume for each depth.

Untimed validations (the ones during training) get every depth from ONE pass per tile: the full
network's heads 1..4 are exactly the pruned networks' outputs (head k reads nodes i + j <= k
only, computed by the same operations in eval mode), and the ensemble is formed from the same
heads as ``forward(depth="ensemble")`` forms it; the blended probabilities, label maps and Dice
are therefore identical, for a fifth to a quarter of the work on the CPU.

A validation runs every tile, depth and case in one kept oneDNN workspace
(``cpu_inference.reuse_buffers``), as the Predictor does: each weight is packed and each
up-convolution folded once per validation, not once per tile.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch

from ..engine.cpu_inference import reuse_buffers
from ..engine.network import MAX_DEPTH, UNetPlusPlus3D, ensemble_logits
from ..engine.tiling import sliding_window_inference
from .preprocess import PreprocessedCase

Depth = Union[int, str]
DEPTHS: tuple[Depth, ...] = (1, 2, 3, 4, "ensemble")


def dice_per_label(prediction: np.ndarray, target: np.ndarray, num_labels: int) -> list[float]:
    """Dice of classes 1..num_labels; NaN where the class is absent from both."""
    scores = []
    for value in range(1, num_labels + 1):
        p, t = prediction == value, target == value
        total = int(p.sum()) + int(t.sum())
        scores.append(math.nan if total == 0 else 2.0 * int((p & t).sum()) / total)
    return scores


def predict_case(
    model: torch.nn.Module,
    image: np.ndarray,
    depth: Depth,
    tile_zyx: Sequence[int],
    num_classes: int,
    overlap: float,
    device: torch.device,
    amp: bool = False,
) -> np.ndarray:
    """Label map (z, y, x) of one preprocessed image with the depth-``depth`` network."""

    def predict(tiles: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            logits = model(tiles, depth=depth)
        return torch.softmax(logits.float(), dim=1)

    tensor = torch.from_numpy(np.array(image, dtype=np.float32))  # a copy: caches are read-only
    with torch.inference_mode():
        probabilities = sliding_window_inference(
            tensor, tile_zyx, predict, num_classes, overlap=overlap, device=device
        )
        labels = torch.argmax(probabilities, dim=0)
    return labels.to(torch.uint8).cpu().numpy()


def one_pass_possible(model: torch.nn.Module, depths: Sequence[Depth], amp: bool) -> bool:
    """Whether :func:`predict_case_all_depths` gives exactly what :func:`predict_case` gives
    depth by depth: a plain :class:`UNetPlusPlus3D` (no subclass forward, no forward hooks on
    it), float32 (no autocast) and depths among 1..4 and "ensemble"."""
    return (
        not amp
        and type(model).forward is UNetPlusPlus3D.forward
        and isinstance(model, UNetPlusPlus3D)
        and not (model._forward_hooks or model._forward_pre_hooks)
        and all(d in DEPTHS and not isinstance(d, bool) for d in depths)
    )


def predict_case_all_depths(
    model: UNetPlusPlus3D,
    image: np.ndarray,
    depths: Sequence[Depth],
    tile_zyx: Sequence[int],
    num_classes: int,
    overlap: float,
    device: torch.device,
) -> dict[Depth, np.ndarray]:
    """Label maps (z, y, x) of each depth in ``depths`` from one sliding window: every tile runs
    the full network once (``forward_heads``) and yields the softmax of each asked head and of
    the ensemble, blended side by side as ``len(depths) * num_classes`` channels (the blend is
    per voxel and channel, so each depth's probabilities equal its own window's). Float32 only
    (see :func:`one_pass_possible`); memory: that many probability volumes at once."""
    depths = list(depths)

    def predict(tiles: torch.Tensor) -> torch.Tensor:
        heads = model.forward_heads(tiles, MAX_DEPTH)
        logits = [ensemble_logits(heads) if d == "ensemble" else heads[int(d) - 1] for d in depths]
        return torch.cat([torch.softmax(x.float(), dim=1) for x in logits], dim=1)

    tensor = torch.from_numpy(np.array(image, dtype=np.float32))  # a copy: caches are read-only
    with torch.inference_mode():
        probabilities = sliding_window_inference(
            tensor, tile_zyx, predict, num_classes * len(depths), overlap=overlap, device=device
        )
        per_depth = probabilities.unflatten(0, (len(depths), num_classes))
        # one depth's int64 argmax at a time: all at once held 5 of them (peak 242 -> 216 MB
        # on a 108x120x120 liver case, scripts/measure_validation_memory.py)
        return {
            d: torch.argmax(per_depth[n], dim=0).to(torch.uint8).cpu().numpy()
            for n, d in enumerate(depths)
        }


def evaluate_depths(
    model: torch.nn.Module,
    cases: Sequence[PreprocessedCase],
    label_names: Sequence[str],
    tile_zyx: Sequence[int],
    overlap: float,
    device: torch.device,
    depths: Sequence[Depth] = DEPTHS,
    amp: bool = False,
    progress: Optional[Callable[[str], None]] = None,
    timed: bool = True,
) -> dict:
    """Per depth: ``{"dice": {label: mean}, "mean_dice": m, "seconds_per_volume": s}``.

    Dice per label is averaged over the cases where the label is present in the reference or
    the prediction; labels never seen give ``None``. ``timed``: run each depth on its own, as
    inference runs it, and time it; otherwise, where :func:`one_pass_possible`, all depths come
    from one pass per case (the same Dice) and ``seconds_per_volume`` is None.
    """
    was_training = model.training
    model.eval()
    try:
        # one workspace for every tile, depth and case, as the Predictor keeps one: the CPU path
        # then composes and packs each weight once, not per tile (float64 einsums, reorders and
        # fresh buffers were ~60 % of a validation's CPU time on 48x48x16 nodule tiles)
        with reuse_buffers():
            if not timed and one_pass_possible(model, depths, amp):
                return _evaluate_one_pass(
                    model, cases, label_names, tile_zyx, overlap, device, depths, progress
                )
            return _evaluate_each(
                model, cases, label_names, tile_zyx, overlap, device, depths, amp, progress
            )
    finally:
        model.train(was_training)


def _evaluate_each(model, cases, label_names, tile_zyx, overlap, device, depths, amp, progress):
    num_labels = len(label_names)
    results: dict = {}
    for depth in depths:
        scores, seconds = [], []
        for case in cases:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            prediction = predict_case(
                model, case.image, depth, tile_zyx, num_labels + 1, overlap, device, amp
            )
            seconds.append(time.perf_counter() - started)
            scores.append(dice_per_label(prediction, np.asarray(case.labels), num_labels))
        results[str(depth)] = _figures(scores, label_names, seconds)
        if progress is not None:
            progress(f"depth {depth}: {results[str(depth)]}")
    return results


def _evaluate_one_pass(model, cases, label_names, tile_zyx, overlap, device, depths, progress):
    num_labels = len(label_names)
    scores: dict = {d: [] for d in depths}
    for case in cases:
        predictions = predict_case_all_depths(
            model, case.image, depths, tile_zyx, num_labels + 1, overlap, device
        )
        target = np.asarray(case.labels)
        for depth, prediction in predictions.items():
            scores[depth].append(dice_per_label(prediction, target, num_labels))
    results = {str(d): _figures(scores[d], label_names, []) for d in depths}
    if progress is not None:
        for depth in depths:
            progress(f"depth {depth}: {results[str(depth)]}")
    return results


def _figures(scores: list, label_names: Sequence[str], seconds: list) -> dict:
    per_label = _nanmean_columns(scores, len(label_names))
    known = [v for v in per_label if v is not None]
    return {
        "dice": {name: _round(v) for name, v in zip(label_names, per_label)},
        "mean_dice": _round(float(np.mean(known))) if known else None,
        "seconds_per_volume": round(float(np.mean(seconds)), 4) if seconds else None,
    }


def _nanmean_columns(rows: list[list[float]], columns: int) -> list[Optional[float]]:
    out: list[Optional[float]] = []
    for c in range(columns):
        values = [r[c] for r in rows if not math.isnan(r[c])]
        out.append(float(np.mean(values)) if values else None)
    return out


def _round(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(float(value), 4)


def timed_validation(results: dict) -> bool:
    """Whether :func:`evaluate_depths` ``results`` hold every depth's seconds per volume (each
    depth run on its own), as model.json records; False for none or one from one pass."""
    return bool(results) and all(
        isinstance(row, dict) and row.get("seconds_per_volume") is not None
        for row in results.values()
    )


def recommend_depth(per_depth: dict, tolerance: float) -> int:
    """The pruning rule: the shallowest depth 1..4 whose mean Dice is within ``tolerance`` of
    the best mean Dice (over depths 1..4 and the ensemble); 4 when nothing was measured."""
    means = {k: v.get("mean_dice") for k, v in per_depth.items() if v.get("mean_dice") is not None}
    if not means:
        return 4
    best = max(means.values())
    for depth in (1, 2, 3, 4):
        value = means.get(str(depth))
        if value is not None and value >= best - tolerance - 1e-9:
            return depth
    depth_means = {int(k): v for k, v in means.items() if k.isdigit()}
    return max(depth_means, key=depth_means.get) if depth_means else 4


def validation_summary(results: dict, cases: int, seconds: float) -> str:
    """The log line of one validation: ``results`` (:func:`evaluate_depths`: depth -> mean_dice,
    seconds_per_volume) on ``cases`` case(s) in ``seconds``."""
    return f"validation on {cases} case(s) in {seconds:.1f} s: " + ", ".join(
        f"L{k}={v['mean_dice']} ({v['seconds_per_volume']:.2f} s/case)"
        if v.get("seconds_per_volume") is not None
        else f"L{k}={v['mean_dice']}"
        for k, v in results.items()
    )
