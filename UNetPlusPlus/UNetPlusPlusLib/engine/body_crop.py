"""Infer a CT only on the box of the patient's body (the CT counterpart of ``nonzero_crop.py``).

A 512x512 CT field of view holds a lot of air around the body, and every tile there is wasted
work. When a model's channels are all ``"ct"`` and no ROI or point is given, the Predictor
infers on the bounding box of the voxels above :func:`air_threshold` in any channel, as a part
of the very canonical model grid the whole volume would use (``nonzero_crop.crop_around``), and
puts background outside it. The crop is cut before resampling, so the resampling, the
normalisation, the tiles and the way back to the input grid all shrink.

Why it is exact up to where the tiles lie: the threshold is at most the window's low end, and a
CT window clips everything at or below it to the normalised value 0. Every input voxel outside
the box is at or below the threshold, and linear interpolation between them stays there, so the
whole volume's normalised image is exactly 0 outside the box. Inside the box the crop's model
voxels get exactly the interpolated values of the whole run (the input is cut one input voxel
wider than interpolation reads). Model voxels outside the image get the threshold (the whole
run: the volume's minimum, below it; both normalise to 0), and tiles reaching beyond the box are
padded with 0 (:data:`PAD_VALUE`), what the network sees there in the whole run; the image's own
minimum (the default padding) could be tissue in a box without air. What changes is only where
the tiles lie (and what each tile's instance normalisation sees).

For an oblique input the box on the model grid is the LPS box of the body's voxels themselves
(``body_box_lps.py``), not the LPS box around their rotated index box, whose empty corners made
the crop useless (or skipped) at 20-25 degrees and left the network on mostly air.

Why no margin (:data:`MARGIN_VOXELS` = 0): outside the box the network input is one constant,
which the padding reproduces, so a margin would add no information to the tiles, only more of
them (an argument, not a measurement: margins were not compared). The box is the exact one, from
a max over every voxel (0.07 CPU-s for the 512x512x300 bench CT), not a strided sample that
could miss a thin part of the body at the box's edge. Figures: docs/BENCHMARK_E2E.md, "CT: only
the body's box".
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .body_box_lps import is_oblique, model_box
from .nonzero_crop import MARGIN_VOXELS, NonzeroCrop, Slices, crop_around, crop_to_model_slices
from .tile_count import tile_count
from .volume import canonical_grid

#: Air and lung lie below this (HU), the body (fat at about -100 HU and above) above it.
BODY_HU = -500.0
#: The normalised value of air (a CT window's low end and everything below it).
PAD_VALUE = 0.0
#: Crop only when the box needs fewer tiles than the whole volume: otherwise the saving is a
#: few percent of the resampling, and the labels would move (the tiles lie elsewhere) for it.
FEWER_TILES_ONLY = True


def crop_enabled(manifest: Any, override: Optional[bool] = None) -> bool:
    """Whether a run without ROI or point is cropped to the body's box: ``override`` if given,
    else the manifest's ``inference.crop_body`` (default true), and in any case only when every
    channel is normalised as ``"ct"`` (a window: air is its low end)."""
    kinds = [str(c.normalization.get("kind", "")).lower() for c in manifest.channels]
    if not kinds or any(kind != "ct" for kind in kinds):
        return False
    if override is not None:
        return bool(override)
    return bool((getattr(manifest, "inference", None) or {}).get("crop_body", True))


def air_threshold(normalization: dict) -> float:
    """The HU at or below which a voxel counts as outside the body for a ``"ct"`` channel:
    :data:`BODY_HU`, or the window's low end when that is lower (a lung window), so that every
    voxel outside the box normalises to :data:`PAD_VALUE`."""
    low = float(normalization["window"][0])
    return min(BODY_HU, low)


def body_box(array_czyx: np.ndarray, thresholds: Sequence[float]) -> Optional[Slices]:
    """(z, y, x) slices of the bounding box of the voxels above ``thresholds[c]`` in any channel
    c of ``array_czyx`` (C, z, y, x); None when there is none."""
    z_hit = np.zeros(array_czyx.shape[1], bool)
    yx_hit = np.zeros(array_czyx.shape[2:], bool)
    for channel, threshold in zip(array_czyx, thresholds):
        z_hit |= channel.reshape(channel.shape[0], -1).max(axis=1) > threshold
        yx_hit |= channel.max(axis=0) > threshold
    box = []
    for hits in (z_hit, yx_hit.any(axis=1), yx_hit.any(axis=0)):
        found = np.flatnonzero(hits)
        if found.size == 0:
            return None
        box.append(slice(int(found[0]), int(found[-1]) + 1))
    return tuple(box)  # type: ignore[return-value]


def _body_mask(array_czyx: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """(z, y, x) voxels above ``thresholds[c]`` in any channel c of ``array_czyx``."""
    mask = array_czyx[0] > thresholds[0]
    for channel, threshold in zip(array_czyx[1:], thresholds[1:]):
        mask |= channel > threshold
    return mask


def body_crop(
    volume: Any,
    channel_norms: Sequence[dict],
    spacing_xyz: Sequence[float],
    tile_zyx: Sequence[int],
    overlap: float,
    margin: int = MARGIN_VOXELS,
) -> Optional[tuple[NonzeroCrop, list[float]]]:
    """The crop of ``volume`` (a ``Volume``, (C, z, y, x) HU) to its body's box and the value
    to give model voxels outside the image, per channel (the thresholds); None when there is
    nothing to gain: no voxel above the threshold (the usual input checks apply), a box that
    is the whole model grid, or one that needs as many tiles (``overlap``: the tiles' overlap,
    a fraction; :data:`FEWER_TILES_ONLY`). ``channel_norms``: the ``"ct"`` normalisation of
    each channel; ``spacing_xyz``: the model's spacing (mm); ``tile_zyx``: its tile (voxels);
    ``margin``: model voxels added on every side (>= 0; ValueError otherwise)."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    if volume.array.size == 0:
        return None
    thresholds = [air_threshold(norm) for norm in channel_norms]
    inside = body_box(volume.array, thresholds)
    if inside is None:
        return None
    if is_oblique(volume.direction):  # the box of where the body lies, not of its indices
        full = canonical_grid(volume, spacing_xyz)
        mask = _body_mask(volume.array, thresholds)
        crop = crop_to_model_slices(
            volume, full, model_box(mask, volume.grid, full, tile_zyx, margin)
        )
    else:
        crop = crop_around(volume, inside, spacing_xyz, tile_zyx, margin)
    if crop is None:
        return None
    if FEWER_TILES_ONLY:
        whole = canonical_grid(volume, spacing_xyz).shape_zyx
        if tile_count(crop.grid.shape_zyx, tile_zyx, overlap) >= tile_count(
            whole, tile_zyx, overlap
        ):
            return None
    return crop, thresholds
