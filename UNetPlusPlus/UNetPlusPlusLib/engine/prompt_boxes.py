"""The boxes a ROI or a point prompt asks for: what to infer on, and what to keep; a ROI
without a voxel centre is refused, and an empty result gets its warning here.

No torch here: the CLI asks for the box before importing torch, to read only that part of the
image (``region_read.py``); the Predictor crops with the same function.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..errors import UNetPlusPlusError
from .manifest import ModelManifest
from .volume import Box, Grid


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


def check_roi_holds_voxels(grid: Grid, roi: Box) -> None:
    """Refuse a ROI that holds no voxel centre of ``grid`` (smaller than a voxel between two
    centres, or off the image): its result could only be empty. The ROI's corners are mapped
    to (continuous) IJK; for an oblique grid the test uses their bounding box in IJK. Raises
    :class:`UNetPlusPlusError`."""
    index = grid.physical_to_index(roi.corner_points())
    first = np.ceil(index.min(axis=0) - 1e-6)
    last = np.floor(index.max(axis=0) + 1e-6)
    where = f"from {_mm(roi.lower)} to {_mm(roi.upper)} mm (LPS)"
    if np.any(first > last):
        spacing = " x ".join(f"{v:.3g}" for v in grid.spacing)
        raise UNetPlusPlusError(
            f"The region of interest {where} holds no voxel centre: it is smaller than the "
            f"voxels ({spacing} mm). Draw a box that covers at least one voxel along each axis."
        )
    size = np.asarray(grid.size_xyz) - 1
    if np.any(np.maximum(first, 0) > np.minimum(last, size)):
        raise UNetPlusPlusError(
            f"The region of interest {where} lies outside the volume; place it on the image."
        )


def empty_result_warning(manifest: ModelManifest, roi: Optional[Box]) -> str:
    """The warning for a whole-volume or ROI result without a voxel in any segment (a point
    prompt has its own, ``Predictor._component_at_point``)."""
    what = ", ".join(label.name for label in manifest.labels)
    where = "in the region of interest" if roi is not None else "in the volume"
    return (
        f"Nothing ({what}) was found {where}; the result is empty. Check that the input is "
        "the kind of image this model was made for and that the region covers the target."
    )


def _mm(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def union(boxes: Sequence[Box]) -> Box:
    """The smallest box holding every box."""
    lower = np.min([b.lower for b in boxes], axis=0)
    upper = np.max([b.upper for b in boxes], axis=0)
    return Box(tuple(lower), tuple(upper))
