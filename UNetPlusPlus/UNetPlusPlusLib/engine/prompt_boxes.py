"""The boxes a ROI or a point prompt asks for: what to infer on, and what to keep.

No torch here: the CLI asks for the box before importing torch, to read only that part of the
image (``region_read.py``); the Predictor crops with the same function.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..errors import UNetPlusPlusError
from .manifest import ModelManifest
from .volume import Box


def prompt_boxes(
    manifest: ModelManifest, roi: Optional[Box], point: Optional[Sequence[float]]
) -> tuple[Optional[Box], Optional[Box]]:
    """(the physical LPS box to infer on, the box the output is restricted to); None: all.

    A point crops a box of the manifest's `prompt.box_mm` around it. A user's ROI is widened
    to at least one tile of context (the network needs the surroundings it was trained
    with), and the output is then restricted to the ROI itself. Raises UNetPlusPlusError for a
    point model without a prompt and for an empty ROI.
    """
    prompt = manifest.prompt or {}
    tile_mm = np.asarray(manifest.tile_size, float) * np.asarray(manifest.spacing)
    if point is not None:
        point_box = Box.around(point, prompt.get("box_mm") or tile_mm)
        return (point_box if roi is None else roi.intersect(point_box)), None
    if prompt.get("kind") == "point" and roi is None:
        raise UNetPlusPlusError(
            f"Model '{manifest.name}' segments around a clicked point: give a point "
            "(--point X Y Z) or a region of interest on the lesion."
        )
    if roi is None:
        return None, None
    extent = roi.upper - roi.lower
    if np.any(extent <= 0):
        axis = "xyz"[int(np.argmin(extent))]
        raise UNetPlusPlusError(
            f"The region of interest is empty (zero size along {axis}); give a box with "
            "two opposite corners that differ in x, y and z."
        )
    centre = (roi.lower + roi.upper) / 2
    size = np.maximum(roi.upper - roi.lower, tile_mm)
    return Box.around(tuple(centre), tuple(size)), roi


def union(boxes: Sequence[Box]) -> Box:
    """The smallest box holding every box."""
    lower = np.min([b.lower for b in boxes], axis=0)
    upper = np.max([b.upper for b in boxes], axis=0)
    return Box(tuple(lower), tuple(upper))
