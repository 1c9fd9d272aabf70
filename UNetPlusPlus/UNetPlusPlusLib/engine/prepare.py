"""The network's input for one run: the region, its model grid and the normalised image.

``Predictor.segment`` calls :func:`prepare_input` after choosing the region (whole volume, ROI or
point crop). Without ROI or point it may crop an all-MR model's input to the non-zero box
(``nonzero_crop.py``) or an all-CT model's to the body's box (``body_crop.py``), then resamples
onto the model grid and normalises (``normalize.py``). All of that is torch-free, in
``prepare_array.py``; this module hands the image to torch.

A persistent engine (``unetpp serve``) runs many requests on one held volume: another depth,
TTA on or off. The prepared input depends only on the volume, the model and the region, so a
caller that keeps the volume unchanged may pass a ``memo`` dict (``warm_cache.WarmCache.memo``,
one per model and volume object): the last prepared input is kept there and reused when the
next run asks for the same region with the same normalisation. It saves the non-zero box, the
resampling of every channel and the normalisation (for a BraTS case about a third of the
non-network work of a warm L1 request; docs/BENCHMARK_RUNS.md, session 6). A fresh `unetpp
segment` fills the memo ahead, while torch still imports (``prepare_array.prepare_ahead``). The
kept image is read-only by contract: nothing downstream writes into the network's input (the
sliding window takes views and the network copies a tile where it needs to).
"""

from __future__ import annotations

import dataclasses
from typing import Any, MutableMapping, Optional

import torch

from .prepare_array import PreparedInput, Slices, memo_key, prepare_array
from .volume import Grid, Volume

__all__ = ["PreparedInput", "prepare_input"]


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
    ``slices`` is None), as ``Predictor.segment`` documents it, with ``image`` a (C, z, y, x)
    float32 torch tensor.

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
    key = memo_key(manifest, slices, full_grid, crop_nonzero, crop_body, overlap, channel_norms)
    kept = memo.get("prepared") if memo is not None else None
    if kept is not None and kept[0] == key:
        prepared = kept[1]
    else:
        prepared = prepare_array(
            manifest,
            volume,
            region,
            slices,
            full_grid,
            crop_nonzero,
            channel_norms,
            crop_body,
            overlap,
        )
    if not isinstance(prepared.image, torch.Tensor):  # made here, or ahead without torch
        prepared = dataclasses.replace(prepared, image=torch.from_numpy(prepared.image))
    if memo is not None and key is not None:
        memo["prepared"] = (key, prepared)  # one kept: the last region asked for
    return prepared
