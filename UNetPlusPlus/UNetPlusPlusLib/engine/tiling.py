"""Sliding-window inference: a tile grid, a Gaussian importance map and blended probabilities.

Tiles overlap by a fraction of their size and each tile's class probabilities are weighted by
a Gaussian centred on the tile (predictions near a tile's border see less context), then
divided by the summed weights, as in nnU-Net (Isensee et al., Nature Methods 2021). The
predictor supplies ``predict`` (network, depth, autocast, softmax); this module knows nothing
about the network.
"""

from __future__ import annotations

import itertools
from typing import Callable, Optional, Sequence, Union

import torch

from ..errors import CancelledError
from .devices import inference_backends, is_out_of_memory, release_memory
from .tile_count import tile_starts

Predict = Callable[[torch.Tensor], torch.Tensor]


def gaussian_importance(
    tile_zyx: Sequence[int], sigma_scale: float = 0.125, min_weight: float = 1e-3
) -> torch.Tensor:
    """Separable Gaussian weights over a tile, peak 1, clamped below at ``min_weight`` > 0.

    ``sigma = sigma_scale * tile`` per axis; the clamp keeps corners from vanishing so that
    the blended result stays well defined (and representable in float16).
    """
    weights = torch.ones((), dtype=torch.float64)
    for n in tile_zyx:
        coords = torch.arange(n, dtype=torch.float64) - (n - 1) / 2.0
        sigma = max(sigma_scale * n, 1e-6)
        weights = weights[..., None] * torch.exp(-0.5 * (coords / sigma) ** 2)
    weights = weights / weights.max()
    return weights.clamp_(min=min_weight).to(torch.float32)


def tile_boxes(
    shape_zyx: Sequence[int], tile_zyx: Sequence[int], overlap: float = 0.25
) -> list[tuple[slice, slice, slice]]:
    """(z, y, x) slices of every tile over a volume at least as large as the tile."""
    starts = [tile_starts(s, t, overlap) for s, t in zip(shape_zyx, tile_zyx)]
    return [
        tuple(slice(a, a + t) for a, t in zip(corner, tile_zyx))  # type: ignore[misc]
        for corner in itertools.product(*starts)
    ]


def sliding_window_inference(
    image: torch.Tensor,
    tile_zyx: Sequence[int],
    predict: Predict,
    num_classes: int,
    overlap: float = 0.25,
    batch_size: int = 1,
    device: Optional[Union[str, torch.device]] = None,
    accumulate_dtype: torch.dtype = torch.float32,
    progress: Optional[Callable[[int, int], None]] = None,
    cancel: Optional[Callable[[], bool]] = None,
    pad_values: Optional[Sequence[Optional[float]]] = None,
) -> torch.Tensor:
    """Gaussian-blended class probabilities over a whole volume, (K, z, y, x).

    ``image`` is (C, z, y, x) or (1, C, z, y, x). ``predict`` maps a batch of tiles
    (B, C, tz, ty, tx) on ``device`` to probabilities (B, K, tz, ty, tx). A volume smaller than
    the tile is padded and cropped back: channel c with ``pad_values[c]`` (e.g. 0 for MR,
    the value outside a skull-stripped brain), or with its minimum where that is None or
    ``pad_values`` is not given (air, for a windowed CT). Only the (K, volume) accumulator and
    a (volume) weight map are kept, in ``accumulate_dtype``, on ``device`` if they fit there and
    on the CPU otherwise (a GPU out-of-memory while allocating them moves them, not the
    network); the result is where they are. Peak memory is therefore the network's working set
    for one tile batch plus (K + 1) values per voxel, whatever the volume's size.
    ``progress(done, total)`` is called after each batch of tiles; ``cancel()`` is polled
    before each batch and raises :class:`CancelledError`.
    """
    if image.dim() == 5:
        if image.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {image.shape[0]}")
        image = image[0]
    if image.dim() != 4:
        raise ValueError(f"image must be (C, z, y, x), got shape {tuple(image.shape)}")
    tile = tuple(int(t) for t in tile_zyx)
    device = torch.device(device) if device is not None else image.device
    image = image.to(dtype=torch.float32)
    image, crop = _pad_to_tile(image, tile, pad_values)
    shape = tuple(image.shape[1:])
    boxes = tile_boxes(shape, tile, overlap)
    probabilities, weights = _accumulators(num_classes, shape, accumulate_dtype, device)
    importance = gaussian_importance(tile).to(device=weights.device, dtype=accumulate_dtype)
    weighted: Optional[torch.Tensor] = None  # one tile batch of weighted probabilities, reused
    batch_size = max(1, int(batch_size))
    total = len(boxes)
    with torch.no_grad(), inference_backends(device):
        for first in range(0, total, batch_size):
            if cancel is not None and cancel():
                raise CancelledError()
            batch = boxes[first : first + batch_size]
            if len(batch) == 1:  # a view: the network copies it once, where it needs it
                tiles = image[(slice(None),) + batch[0]].unsqueeze(0)
            else:
                tiles = torch.stack([image[(slice(None),) + box] for box in batch])
            output = predict(tiles.to(device, non_blocking=True))
            expected = (len(batch), num_classes) + tile
            if tuple(output.shape) != expected:
                raise ValueError(f"predict returned {tuple(output.shape)}, expected {expected}")
            output = output.to(device=weights.device, dtype=accumulate_dtype)
            if weighted is None or weighted.shape != output.shape:
                weighted = torch.empty_like(output)
            torch.mul(output, importance, out=weighted)
            for box, tile_probabilities in zip(batch, weighted):
                probabilities[(slice(None),) + box] += tile_probabilities
                weights[box] += importance
            if progress is not None:
                progress(first + len(batch), total)
    probabilities /= weights
    return probabilities[(slice(None),) + crop]


def _accumulators(
    num_classes: int, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zeroed (K, volume) and (volume) accumulators on ``device``, or on the CPU if a GPU
    runs out of memory allocating them (untested on GPU hardware here; see BENCHMARK.md)."""
    try:
        probabilities = torch.zeros((num_classes,) + shape, dtype=dtype, device=device)
        return probabilities, torch.zeros(shape, dtype=dtype, device=device)
    except Exception as error:  # noqa: BLE001 - only out-of-memory is handled
        if device.type == "cpu" or not is_out_of_memory(error):
            raise
        release_memory(device)
        cpu = torch.device("cpu")
        return torch.zeros((num_classes,) + shape, dtype=dtype, device=cpu), torch.zeros(
            shape, dtype=dtype, device=cpu
        )


def _pad_to_tile(
    image: torch.Tensor,
    tile: tuple[int, ...],
    pad_values: Optional[Sequence[Optional[float]]] = None,
) -> tuple[torch.Tensor, tuple[slice, slice, slice]]:
    """Pad (C, z, y, x) up to the tile size, centred; channel c with ``pad_values[c]``, or with
    its own minimum where that is None."""
    shape = image.shape[1:]
    missing = [max(0, t - s) for s, t in zip(shape, tile)]
    crop = tuple(slice(m // 2, m // 2 + s) for m, s in zip(missing, shape))
    if not any(missing):
        return image, crop  # type: ignore[return-value]
    values = list(pad_values) if pad_values is not None else [None] * image.shape[0]
    padded = image.new_empty((image.shape[0],) + tuple(max(s, t) for s, t in zip(shape, tile)))
    for c, value in enumerate(values):
        fill = value if value is not None else (float(image[c].min()) if image.numel() else 0.0)
        padded[c].fill_(float(fill))
    padded[(slice(None),) + crop] = image
    return padded, crop  # type: ignore[return-value]


#: Patient directions of the LPS axes, as the warnings name them.
_PATIENT_AXES = ("left-right", "front-back", "head-feet")
#: A grid axis whose direction is within about 37 degrees of a patient axis is named after it.
_NAMED_COSINE = 0.8


def _axis_name(axis: str, column: Optional[Sequence[float]]) -> str:
    """``"head-feet (k)"`` for grid axis ``axis`` whose LPS direction ``column`` lies near a
    patient axis, ``"oblique k"`` otherwise, ``"k"`` without a direction."""
    if column is None:
        return axis
    weights = [abs(float(v)) for v in column]
    best = max(range(3), key=weights.__getitem__)
    return (
        f"{_PATIENT_AXES[best]} ({axis})" if weights[best] >= _NAMED_COSINE else f"oblique {axis}"
    )


def thin_input_warning(
    size_xyz: Sequence[int],
    spacing_xyz: Sequence[float],
    tile_mm: float,
    direction: Optional[Sequence[Sequence[float]]] = None,
) -> str:
    """A warning when the input (its own grid: size in voxels, spacing in mm, (x, y, z)) is
    thinner than half the model's tile (``tile_mm``, its shortest side in mm) along an axis of
    its own, oblique or not, naming every such axis; "" otherwise. ``direction``: the grid's
    3x3 LPS direction (columns: the i, j, k axes), to name an axis in patient terms
    ("head-feet (k) axis"; "k axis" alone read as jargon, tester 20).

    The network was trained on tiles full of anatomy; a slab much thinner than a tile is
    mostly padding, and the outputs near it are unreliable (a 2-slice BraTS slab came out
    labelled tumour everywhere before MR padding used 0; at 24 of 155 slices Dice halved).
    """
    extents = [int(n) * float(d) for n, d in zip(size_xyz, spacing_xyz)]
    thin = [(axis, mm) for axis, mm in zip("ijk", extents) if mm * 2 < tile_mm]
    if not thin:
        return ""
    columns = [None] * 3 if direction is None else [[row[i] for row in direction] for i in range(3)]
    names = [_axis_name(a, columns["ijk".index(a)]) for a, _ in thin]
    axes = " and ".join(", ".join(names).rsplit(", ", 1))
    sizes = " x ".join(f"{mm:.3g}" for _, mm in thin)  # 37.3, not 37.2656 (0.703 mm x 53)
    return (
        f"The input is only {sizes} mm thick along its {axes} "
        f"{'axes' if len(thin) > 1 else 'axis'}, less than half of the model's "
        f"{tile_mm:g} mm tile: the model sees mostly padding there and the result is unreliable. "
        "Give a volume (or region) that covers more of the anatomy."
    )
