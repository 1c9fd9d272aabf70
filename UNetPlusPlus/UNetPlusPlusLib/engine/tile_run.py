"""The network over a prepared image, tile by tile, for :class:`.predictor.Predictor`.

:func:`infer` runs the Gaussian-blended sliding window (``tiling.py``) through the Predictor's
executor (``executors.py``; the heads of ``tta.py`` through the network itself), reusing the
Predictor's kept workspace of buffers and packed weights, and on CUDA out of memory halves the
tile batch, then falls back to the CPU; out of memory on the CPU is one UNetPlusPlusError.
Split from ``predictor.py`` (which keeps ``Predictor._infer`` / ``_sliding_window`` as the
entry points) by responsibility; no behaviour change.
"""

from __future__ import annotations

from typing import Callable, Optional, Union

import numpy as np
import torch

from ..errors import UNetPlusPlusError
from . import spin_guard
from .devices import is_out_of_memory
from .network import UNetPlusPlus3D
from .tiling import sliding_window_inference
from .tta import head_count, make_predict

Depth = Union[int, str]
ProgressCallback = Callable[[str, int, int], None]
CancelCallback = Callable[[], bool]

#: Tiles per forward pass on the CPU when none is asked for, for tiles of at most
#: :data:`AUTO_BATCH_MAX_VOXELS`. Two tiles per pass give oneDNN more work per operation for the
#: same per-operation cost: the shipped models' tiles ran in 0.56-0.92x the wall time per tile
#: at L1..L4 (lung nodule 16x48x48: 0.56-0.70x; liver and brain 48^3: 0.72-0.92x), with
#: identical logits (ours; max difference 0.0 on the liver tile) and identical labels on the
#: 512x512x300 liver CT on our path (session 16, docs/BENCHMARK_E2E.md, "Session 16").
AUTO_CPU_TILE_BATCH = 2
#: Larger tiles keep one per pass: their operations are large already, and two would double
#: the activations' memory of a user-trained wide network.
AUTO_BATCH_MAX_VOXELS = 64**3


def auto_tile_batch(device: Union[str, torch.device], tile_zyx) -> int:
    """The tile batch used when none is given: :data:`AUTO_CPU_TILE_BATCH` on the CPU for
    tiles of at most :data:`AUTO_BATCH_MAX_VOXELS` voxels (``tile_zyx``: (z, y, x) voxels),
    else 1 (CUDA keeps one tile per pass: not measured on a GPU)."""
    voxels = int(np.prod([int(n) for n in tile_zyx]))
    if torch.device(device).type == "cpu" and voxels <= AUTO_BATCH_MAX_VOXELS:
        return AUTO_CPU_TILE_BATCH
    return 1


class Runner:
    """``model(tiles, depth=k)`` through an executor, ``forward_heads`` through the network."""

    def __init__(self, executor, model: UNetPlusPlus3D) -> None:
        self.executor, self.forward_heads = executor, model.forward_heads

    def __call__(self, tiles: torch.Tensor, depth: Depth) -> torch.Tensor:
        return self.executor.run(tiles, depth)


def infer(
    predictor,
    image: torch.Tensor,
    depth: Depth,
    overlap: Optional[float],
    tile_batch: Optional[int],
    report: ProgressCallback,
    cancel: Optional[CancelCallback],
    info: dict,
    options: Optional[dict] = None,
) -> np.ndarray:
    """(K, z, y, x) float32 class probabilities of the prepared ``image`` (1, C, z, y, x) on
    the model grid, by :meth:`Predictor._sliding_window`, ``tile_batch`` tiles per forward pass
    (None: :func:`auto_tile_batch`), with the out-of-memory fallback chain:
    a CUDA OOM halves the tile batch, then moves the model to the CPU (each step noted in
    ``info["fallbacks"]`` and reported); ``info`` gets the device, executor and tile batch used,
    and for the ``fastest`` executor ``tiles_by_executor`` (e.g. ``{"openvino": 40, "ours": 9}``):
    its two executors agree on >= 99.99 % of voxels, not all, so this says why two runs of one
    input may differ in a few boundary voxels.
    Raises UNetPlusPlusError when the CPU runs out of memory."""
    overlap = predictor.manifest.overlap if overlap is None else float(overlap)
    device = predictor.device
    if tile_batch is None:
        batch = auto_tile_batch(device, predictor.manifest.tile_size_zyx)
    else:
        batch = max(1, int(tile_batch))
    counted = getattr(predictor.executor, "tiles_by_executor", None)
    before = dict(counted) if counted is not None else None
    while True:
        try:
            result = predictor._sliding_window(
                image, depth, overlap, batch, device, report, cancel, **(options or {})
            )
            info["device"] = str(device)
            info["executor"] = predictor.executor.name
            if before is not None:  # `fastest`: which executor ran how many of this run's tiles
                info["tiles_by_executor"] = {
                    name: count - before.get(name, 0)
                    for name, count in sorted(counted.items())
                    if count > before.get(name, 0)
                }
            if device.type == "cpu":  # OpenMP's wait policy and the guard's thread switches
                info["openmp"] = spin_guard.report()
            info["tile_batch"] = batch
            return result
        except Exception as error:  # noqa: BLE001 - only out-of-memory is handled
            if not is_out_of_memory(error):
                raise
            if device.type == "cuda":
                torch.cuda.empty_cache()
            if batch > 1:  # on the CPU too: an automatic batch of 2 must never fail a run
                batch = max(1, batch // 2)
                message = f"out of memory on {device}; retrying with tile batch {batch}"
            elif device.type != "cpu":
                predictor.model.to("cpu")
                device = torch.device("cpu")
                message = "out of GPU memory; retrying on the CPU"
            else:
                raise UNetPlusPlusError(
                    "Out of memory on the CPU. Close other programs, restrict the run to a "
                    "region of interest, or choose a shallower depth."
                ) from error
            info["fallbacks"].append(message)
            report("fallback: " + message, 0, 1)


def sliding_window(
    predictor, image, depth, overlap, batch, device, report, cancel, axes=(), heads=False, pad=None
) -> np.ndarray:
    """(K, z, y, x) probabilities, or (H * K, z, y, x) for the heads (engine/tta.py), of
    ``image`` on ``device``, tiles run through ``predictor.executor``; the Predictor's kept
    workspace is reused unless another thread holds it (that call gets its own)."""
    model = predictor.model
    # tiles run through the executor (engine/executors.py); the heads through ours
    predict = make_predict(Runner(predictor.executor, model), depth, device, axes=axes, heads=heads)
    channels = predictor.manifest.num_classes * (head_count(depth) if heads else 1)
    # tiles reuse one set of buffers and packed weights, kept for the next call (a warm
    # click repacks nothing); a concurrent call from another thread gets its own
    shared = predictor._workspace_lock.acquire(blocking=False)
    try:
        kept = predictor._workspace if shared else None
        with torch.inference_mode(), model.reuse_buffers(kept) as workspace:
            if shared:
                predictor._workspace = workspace
            probabilities = sliding_window_inference(
                image,
                tile_zyx=predictor.manifest.tile_size_zyx,
                predict=predict,
                num_classes=channels,
                overlap=overlap,
                batch_size=batch,
                device=device,
                progress=lambda done, total: report("infer", done, total),
                cancel=cancel,
                pad_values=pad,
            )
    finally:
        if shared:
            predictor._workspace_lock.release()
    return probabilities.float().cpu().numpy()
