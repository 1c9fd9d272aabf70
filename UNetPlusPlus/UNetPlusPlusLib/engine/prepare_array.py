"""The network's input as numpy, without torch: the region, its model grid, the normalised image.

:func:`prepare_array` does all of ``prepare.prepare_input``'s work except handing the image to
torch: the non-zero or body crop, the resampling onto the model grid (SimpleITK, which releases
the GIL) and the normalisation. It imports neither torch nor anything that does, so that a fresh
`unetpp segment` can prepare the whole-volume input while its background thread still imports
torch (:func:`prepare_ahead`, called by ``cli_segment.run_segment``; ``torch_preload.py``).

The memo (``warm_cache.WarmCache.memo``): one prepared input is kept under ``"prepared"`` as
``(key, PreparedInput)``; :func:`memo_key` says what it depends on besides the volume. An entry
made ahead holds a numpy image; ``prepare.prepare_input`` hands it to torch (no copy) on use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, MutableMapping, Optional

import numpy as np

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
    model grid the image lies on; ``image``: (C, z, y, x) float32 normalised, a C-contiguous
    numpy array from :func:`prepare_array`, a torch tensor sharing its memory from
    ``prepare.prepare_input``; ``channel_norms``: the normalisation used (with MR statistics
    where they were fixed); ``nonzero_crop``: whether the region is the non-zero box of
    ``nonzero_crop.py``; ``body_crop``: whether it is the body's box of ``body_crop.py``;
    ``pad``: the value per channel that tiles reaching beyond the image are padded with (None:
    ``normalize.padding_values``).
    """

    region_grid: Grid
    slices: Optional[Slices]
    grid: Grid
    image: Any
    channel_norms: list
    nonzero_crop: bool
    body_crop: bool = False
    pad: Optional[list] = None


def prepare_array(
    manifest: Any,
    volume: Volume,
    region: Volume,
    slices: Optional[Slices],
    full_grid: Optional[Grid] = None,
    crop_nonzero: Optional[bool] = None,
    channel_norms: Optional[list] = None,
    crop_body: Optional[bool] = None,
    overlap: Optional[float] = None,
) -> PreparedInput:
    """The network input for ``region`` of ``volume`` with a numpy ``image``; the arguments are
    ``prepare.prepare_input``'s (which documents them), without the memo. Raises
    UNetPlusPlusError as ``normalize`` does (channel count), and for a model grid that cannot
    fit in memory (``grid_memory.check_model_grid_fits``)."""
    overlap = manifest.overlap if overlap is None else float(overlap)
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
    whole_input = volume.grid if crop is not None else None  # the grid the warning named
    part = "the body's box" if body is not None else "the non-zero box"
    check_model_grid_fits(
        grid,
        region.grid,
        len(manifest.channels),
        manifest.num_classes,
        None,
        whole_input=whole_input,
        part=part,
    )
    resampled = resample_volume(region, grid, interpolator="linear", default=default)
    if channel_norms is None:
        channel_norms = [channel.normalization for channel in manifest.channels]
        if slices is not None and crop is None:  # with the whole volume's statistics
            channel_norms = with_volume_statistics(volume, channel_norms)
    normalized = normalize(resampled, channel_norms)
    image = np.ascontiguousarray(normalized.array, dtype=np.float32)
    nonzero = crop is not None and body is None
    return PreparedInput(
        region.grid, slices, grid, image, channel_norms, nonzero, body is not None, pad
    )


def memo_key(
    manifest: Any,
    slices: Optional[Slices],
    full_grid: Optional[Grid],
    crop_nonzero: Optional[bool],
    crop_body: Optional[bool],
    overlap: Optional[float],
    channel_norms: Optional[list],
) -> Optional[tuple]:
    """What the prepared input depends on besides the volume: the model (its file, weights and
    grid, should one memo meet two models), the region, the crops (the body crop's decision
    counts tiles at ``overlap``) and the normalisation; None when it is not kept (a partial
    volume read from a file: ``full_grid``)."""
    if full_grid is not None:
        return None
    overlap = manifest.overlap if overlap is None else float(overlap)
    model = (str(manifest.path), manifest.sha256, tuple(manifest.spacing))
    where = None if slices is None else tuple((s.start, s.stop) for s in slices)
    norms = None if channel_norms is None else json.dumps(channel_norms, default=float)
    return (model, where, (crop_nonzero, crop_body, overlap), norms)


def prepare_ahead(
    manifest: Any, volume: Volume, memo: MutableMapping, overlap: Optional[float] = None
) -> PreparedInput:
    """Prepare the whole-volume input of a run without ROI or point into ``memo`` (the one that
    ``Predictor.segment(volume, overlap=overlap, memo=memo)`` will be given, with its default
    crops and normalisation), so that the run finds it there; returns it. Raises as
    :func:`prepare_array`."""
    key = memo_key(manifest, None, None, None, None, overlap, None)
    kept = memo.get("prepared")
    if kept is not None and kept[0] == key:
        return kept[1]
    prepared = prepare_array(manifest, volume, volume, None, overlap=overlap)
    memo["prepared"] = (key, prepared)
    return prepared
