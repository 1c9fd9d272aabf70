"""A click's analysis box that does not cut the nodule off: move it, run again, or warn.

A point prompt infers on a box of the manifest's ``prompt.box_mm`` around the click
(``prompt_boxes.py``) and keeps the component at the click. When that component reaches a face
of the box inside the image (with a real part of its section, :data:`MIN_CONTACT`), the nodule
probably goes on beyond it: a click near its edge, or a nodule larger than the box. The box is
then centred on the component, taken to go on a little beyond the touched faces, along the
touched axes, keeping the first box's size (the nodule-centred context the model was trained
on) or, for a larger component, growing to it plus a margin, at most :data:`MAX_GROWTH` times
the first box; the network runs again, at most :data:`MAX_EXTRA_PASSES` times. A result that
still reaches a face gets :data:`BEYOND_BOX_WARNING`, never silently; a result inside the
first box costs no extra pass.

Boxes here are (z, y, x) index slices of the input grid, so an oblique image keeps its own
voxels exactly (no box of a box grows the region). No torch here.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional, Protocol, Sequence

import numpy as np

from .click_check import click_warnings, segment_warning
from .manifest import ModelManifest
from .point_crop import content_slices
from .prompt_boxes import check_roi_holds_voxels, prompt_boxes
from .volume import Box, Grid, SegmentationResult, Volume, box_to_index_slices


class Segmenter(Protocol):
    """What :func:`segment_point` uses of a ``Predictor``."""

    manifest: ModelManifest

    def segment(self, volume: Volume, **options: Any) -> SegmentationResult: ...

    def check_input(
        self, volume: Volume, input_warnings: Optional[list] = None, channel_check: bool = True
    ) -> list[str]: ...


Slices = tuple[slice, slice, slice]
#: Extra network passes with a grown box, after the first.
MAX_EXTRA_PASSES = 2
#: A grown box is at most this many times the first box along each axis (index extent).
MAX_GROWTH = 3.0
#: A face counts as touched when the result's plane there holds at least this share of its
#: largest plane along that axis. A round nodule cut where its section is 20 % of the largest
#: loses about 1 % of its volume; a vessel or a few voxels grazing the face do not count (on
#: the unseen-patient slab one voxel did, and the extra pass only added false positives).
MIN_CONTACT = 0.2
BEYOND_BOX_WARNING = (
    "The nodule may extend beyond the analysed box: its outline still reaches the box's edge "
    "after the box was enlarged. Check its edges and correct them if needed."
)
#: The first box's faces cut the result and no pass followed it: without the component at
#: the click (--all-components, or a model that keeps every component) there is none to follow.
BOX_EDGE_WARNING = (
    "The segmentation reaches the edge of the box analysed around the point and is probably "
    "cut off there: the box is enlarged only when the component at the click is kept (not "
    "with --all-components, nor for a model that keeps every component). Leave out the point, "
    "or give a region of interest that holds the whole structure, and check the result."
)
ROI_EDGE_WARNING = (
    "The nodule reaches the edge of the region of interest: its outline is cut off there. "
    "Enlarge the region of interest (or leave it out) to outline the whole nodule."
)
_FACE_NAMES = ("k", "j", "i")  # index axes of (z, y, x) arrays


def touched_faces(region_labels: np.ndarray, slices: Slices, limits: Slices) -> list[str]:
    """Faces of the box ``slices`` that the non-zero ``region_labels`` (the labels of that
    box, shape (z, y, x)) touch with at least :data:`MIN_CONTACT` of their largest section
    parallel to that face, leaving out faces that lie on ``limits`` (the image border or a
    user's ROI: nothing to grow into). Names are index axes with a side: "i-", "k+", ...
    Raises ValueError when the labels' shape is not the box's."""
    labels = np.asarray(region_labels) != 0
    if labels.shape != tuple(s.stop - s.start for s in slices):
        raise ValueError(f"labels {labels.shape} do not match the box {slices}")
    faces = []
    for axis, (part, limit) in enumerate(zip(slices, limits)):
        others = tuple(a for a in range(3) if a != axis)
        sections = labels.sum(axis=others)  # voxels per plane along this axis
        least = max(1.0, MIN_CONTACT * float(sections.max(initial=0)))
        if part.start > limit.start and sections[0] >= least:
            faces.append(_FACE_NAMES[axis] + "-")
        if part.stop < limit.stop and sections[-1] >= least:
            faces.append(_FACE_NAMES[axis] + "+")
    return faces


def box_limits(grid: Grid, roi: Optional[Box] = None) -> Slices:
    """The (z, y, x) slices a click's box may grow to: the whole image, or a user's ROI."""
    if roi is None:
        return tuple(slice(0, n) for n in grid.shape_zyx)  # type: ignore[return-value]
    return box_to_index_slices(grid, roi)


def box_extent(grid: Grid, box: Box) -> np.ndarray:
    """(z, y, x) extent in voxels of a physical box on ``grid``, not clipped to the image
    (the index-space bounding box of its corners, oblique grids included)."""
    index = grid.physical_to_index(box.corner_points())
    return (np.ptp(index, axis=0) + 1.0)[::-1]


def component_box(region_labels: np.ndarray, slices: Slices) -> Optional[list[list[int]]]:
    """[start, stop) per (z, y, x) axis of the grid's box holding the non-zero
    ``region_labels`` (the labels of the box ``slices``), as JSON lists; None for none."""
    inner = content_slices(region_labels)
    if inner is None:
        return None
    return [[s.start + i.start, s.start + i.stop] for s, i in zip(slices, inner)]


def recentred(
    slices: Slices,
    component: Sequence[Sequence[int]],
    faces: list[str],
    extent_zyx: np.ndarray,
    limits: Slices,
    keep_zyx: Sequence[int],
) -> Slices:
    """The next box. Along each axis with a touched face, the ``component`` ([start, stop) per
    axis) is taken to go on a quarter of the first box's size ``extent_zyx`` (voxels) beyond
    each touched face; the box is centred on that, with the first box's size or, when larger,
    that extent plus an eighth of the first box on each side, at most :data:`MAX_GROWTH` times
    the first box. Other axes are unchanged. Kept inside ``limits`` and holding the voxel
    ``keep_zyx`` (the click)."""
    out = []
    for axis, (part, (start, stop), limit) in enumerate(zip(slices, component, limits)):
        name = _FACE_NAMES[axis]
        if name + "-" not in faces and name + "+" not in faces:
            out.append(part)
            continue
        first = int(np.ceil(extent_zyx[axis]))
        reach, margin = int(np.ceil(first / 4)), int(np.ceil(first / 8))
        start -= reach if name + "-" in faces else 0
        stop += reach if name + "+" in faces else 0
        size = min(max(first, stop - start + 2 * margin), int(MAX_GROWTH * first))
        low = int(np.floor((start + stop - size) / 2))
        low = max(min(low, limit.stop - size), limit.start)  # shifted inside the limits
        high = min(low + size, limit.stop)
        low, high = min(low, int(keep_zyx[axis])), max(high, int(keep_zyx[axis]) + 1)
        out.append(slice(int(low), int(high)))
    return tuple(out)  # type: ignore[return-value]


def segment_with_growing_box(
    run: Callable[[Slices], SegmentationResult],
    grid: Grid,
    point: Sequence[float],
    box: Box,
    roi: Optional[Box] = None,
    extra_passes: int = MAX_EXTRA_PASSES,
) -> SegmentationResult:
    """Run ``run`` (one segmentation on the given box of ``grid``, which must put
    :func:`touched_faces` and :func:`component_box` into ``info["point_box"]``) on the first
    box, then on the :func:`recentred` box while the kept component touches a face, at most
    ``extra_passes`` more times (a pass that loses the click's component gives the previous
    result back). ``point``: the click (LPS mm), always kept inside the box.

    ``box``: the physical first box (the prompt box, already intersected with ``roi``); the
    box never grows beyond the image or ``roi``. Returns the last pass's result with
    ``info["point_box"]`` = {"passes", "touched", "box", "component"} and, if it still
    touches a face, :data:`BEYOND_BOX_WARNING` once in ``info["warnings"]`` (with no extra
    passes, :data:`BOX_EDGE_WARNING`: the box was never enlarged), and
    :data:`ROI_EDGE_WARNING` when it reaches a face of ``roi`` inside the image
    (``info["point_box"]["at_roi"]``: a user's ROI that cuts the nodule). Raises what
    ``run`` raises (UNetPlusPlusError for a box off the image)."""
    limits = box_limits(grid, roi)
    slices = box_to_index_slices(grid, box)
    extent = box_extent(grid, box)
    click = np.floor(grid.physical_to_index(np.asarray(point, dtype=np.float64)) + 0.5)
    click = np.clip(
        click.astype(int)[::-1], [s.start for s in slices], [s.stop - 1 for s in slices]
    )
    passes, result = 0, None
    while True:
        passes += 1
        previous, result = result, run(slices)
        report = result.info["point_box"]
        if previous is not None and report["component"] is None:
            # the new box lost the click's component: keep the last result, which reached
            # a face (hence the warning below)
            result, report = previous, previous.info["point_box"]
            break
        touched = report["touched"]
        if not touched or passes > extra_passes:
            break
        following = recentred(slices, report["component"], touched, extent, limits, click)
        if following == slices:  # at the size limit: nothing more to see
            break
        slices = following
    touched = report["touched"]
    report["passes"] = passes
    beyond = BEYOND_BOX_WARNING if extra_passes else BOX_EDGE_WARNING
    if touched and beyond not in result.info["warnings"]:
        result.info["warnings"].append(beyond)
    if report.get("at_roi") and ROI_EDGE_WARNING not in result.info["warnings"]:
        result.info["warnings"].append(ROI_EDGE_WARNING)  # the box may not grow beyond it
    return result


def segment_point(predictor: Segmenter, call: dict) -> SegmentationResult:
    """A click through ``predictor``: ``call`` holds ``Predictor.segment``'s arguments (with a
    point, without ``point_box``). Input sanity runs once, then the check of what lies under
    the click (``click_check.py``: warnings, ``info["click"]``); then
    :func:`segment_with_growing_box` (extra passes only when the component at the click is
    kept, the default of a point model) and the bone-like segment warning. Raises what
    ``segment`` raises, and UNetPlusPlusError for a click in the air outside the body."""
    started = time.perf_counter()
    call = {key: value for key, value in call.items() if key != "self"}
    volume, roi = call["volume"], call["roi"]
    warnings = predictor.check_input(volume, call["input_warnings"], call["channel_check"])
    if call["full_grid"] is not None:
        raise ValueError("full_grid (a partial volume) supports ROI runs only")
    if roi is not None:
        check_roi_holds_voxels(volume.grid, roi)
    box = prompt_boxes(predictor.manifest, roi, call["point"])[0]
    # what lies under the click (bone, solid tissue, outside air: refused), before inference
    found, click = click_warnings(predictor.manifest, volume, call["point"])
    warnings = list(warnings) + found
    option = call["largest_component"]
    if option is None:
        option = (predictor.manifest.postprocess or {}).get("largest_component", False)
    result = segment_with_growing_box(
        lambda slices: predictor.segment(
            **{**call, "input_warnings": list(warnings), "point_box": slices}
        ),
        volume.grid,
        call["point"],
        box,
        roi,
        extra_passes=MAX_EXTRA_PASSES if option else 0,
    )
    bone = segment_warning(predictor.manifest, volume, result.labels)
    if bone:
        result.info["warnings"].append(bone)
    result.info["click"] = click
    result.info["seconds"] = time.perf_counter() - started
    return result
