"""The network's input for one run: the region, its model grid and the normalised image.

``Predictor.segment`` calls :func:`prepare_input` after choosing the region (whole volume, ROI or
point crop). Without ROI or point it may crop an all-MR model's input to the non-zero box
(``nonzero_crop.py``) or an all-CT model's to the body's box (``body_crop.py``), then resamples
onto the model grid and normalises (``normalize.py``).

A persistent engine (``unetpp serve``) runs many requests on one held volume: another depth,
TTA on or off. The prepared input depends only on the volume, the model and the region, so a
caller that keeps the volume unchanged may pass a ``memo`` dict (``warm_cache.WarmCache.memo``,
one per model and volume object): the last prepared input is kept there and reused when the
next run asks for the same region with the same normalisation. It saves the non-zero box, the
resampling of every channel and the normalisation (for a BraTS case about a third of the
non-network work of a warm L1 request; docs/BENCHMARK_RUNS.md, session 6). The kept image is
read-only by contract: nothing downstream writes into the network's input (the sliding window
takes views and the network copies a tile where it needs to).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, MutableMapping, Optional

import numpy as np
import torch

from . import body_crop
from .grid_memory import check_model_grid_fits
from .nonzero_crop import crop_enabled, nonzero_crop
from .normalize import normalize, with_volume_statistics
from .volume import Grid, Volume, canonical_grid, resample_volume

Slices = tuple[slice, slice, slice]


@dataclass
class PreparedInput:
    """What the network sees and where it lies.

    ``region_grid``: the input voxels inferred on (a part of the input grid, or all of it);
    ``slices``: their (z, y, x) slices on the output grid (None: the whole grid); ``grid``: the
    model grid the image lies on; ``image``: (C, z, y, x) float32 normalised; ``channel_norms``:
    the normalisation used (with MR statistics where they were fixed); ``nonzero_crop``: whether
    the region is the non-zero box of ``nonzero_crop.py``; ``body_crop``: whether it is the
    body's box of ``body_crop.py``; ``pad``: the value per channel that tiles reaching beyond
    the image are padded with (None: ``normalize.padding_values``).
    """

    region_grid: Grid
    slices: Optional[Slices]
    grid: Grid
    image: torch.Tensor
    channel_norms: list
    nonzero_crop: bool
    body_crop: bool = False
    pad: Optional[list] = None


def prepare_input(
    manifest: Any,
    volume: Volume,
    region: Volume,
    slices: Optional[Slices],
    full_grid: Optional[Grid] = None,
    crop_nonzero: Optional[bool] = None,
    channel_norms: Optional[list] = None,
    memo: Optional[MutableMapping] = None,
    crop_body: Optional[bool] = None,
    overlap: Optional[float] = None,
) -> PreparedInput:
    """The network input for ``region`` of ``volume`` (``region`` is ``volume`` itself when
    ``slices`` is None), as ``Predictor.segment`` documents it.

    ``crop_nonzero``: without ROI or point (``slices`` and ``full_grid`` None), crop an all-MR
    model's input to the non-zero box; None follows the manifest. ``crop_body``: likewise, an
    all-CT model's input to the body's box (``body_crop.py``), when that box needs fewer tiles
    at ``overlap`` (the run's tile overlap; None: the manifest's). ``channel_norms``: the
    normalisation to use; None: the manifest's, with the whole volume's MR statistics for a
    region. ``memo``: a dict the caller keeps for this very volume, unchanged (one prepared
    input is kept in it, under ``"prepared"``); the image returned from it is shared, not a
    copy. Raises UNetPlusPlusError as ``normalize`` does (channel count), and for a model grid
    that cannot fit in memory (``grid_memory.check_model_grid_fits``).
    """
    overlap = manifest.overlap if overlap is None else float(overlap)
    crops = (crop_nonzero, crop_body, overlap)  # the body crop's decision counts tiles
    key = _memo_key(manifest, slices, full_grid, crops, channel_norms)
    if memo is not None:
        kept = memo.get("prepared")
        if kept is not None and kept[0] == key:
            return kept[1]
    crop, default, pad, body = None, None, None, None
    whole = slices is None and full_grid is None
    if whole and crop_enabled(manifest, crop_nonzero):
        crop = nonzero_crop(volume, manifest.spacing, manifest.tile_size_zyx)
        default = 0.0 if crop is not None else None  # outside the image: the whole's minimum
    elif whole and body_crop.crop_enabled(manifest, crop_body):
        norms = [channel.normalization for channel in manifest.channels]
        body = body_crop.body_crop(volume, norms, manifest.spacing, manifest.tile_size_zyx, overlap)
        if body is not None:  # air outside the image and beyond the box (body_crop.py)
            crop, default = body
            pad = [body_crop.PAD_VALUE] * len(norms)
    if crop is not None:  # a part of the whole volume's model grid
        region, slices, grid = crop.region, crop.slices, crop.grid
    else:
        grid = canonical_grid(region, manifest.spacing)
    check_model_grid_fits(grid, region.grid, len(manifest.channels), manifest.num_classes)
    resampled = resample_volume(region, grid, interpolator="linear", default=default)
    if channel_norms is None:
        channel_norms = [channel.normalization for channel in manifest.channels]
        if slices is not None and crop is None:  # with the whole volume's statistics
            channel_norms = with_volume_statistics(volume, channel_norms)
    normalized = normalize(resampled, channel_norms)
    image = torch.from_numpy(np.ascontiguousarray(normalized.array, dtype=np.float32))
    nonzero = crop is not None and body is None
    prepared = PreparedInput(
        region.grid, slices, grid, image, channel_norms, nonzero, body is not None, pad
    )
    if memo is not None and key is not None:
        memo["prepared"] = (key, prepared)  # one kept: the last region asked for
    return prepared


def _memo_key(manifest, slices, full_grid, crops, channel_norms) -> Optional[tuple]:
    """What the prepared input depends on besides the volume: the model (its file, weights and
    grid, should one memo meet two models), the region and the normalisation; None when it is
    not kept (a partial volume read from a file: ``full_grid``)."""
    if full_grid is not None:
        return None
    model = (str(manifest.path), manifest.sha256, tuple(manifest.spacing))
    where = None if slices is None else tuple((s.start, s.stop) for s in slices)
    norms = None if channel_norms is None else json.dumps(channel_norms, default=float)
    return (model, where, crops, norms)
