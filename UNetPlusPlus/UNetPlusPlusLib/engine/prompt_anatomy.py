"""The anatomy checks of a result made inside a ROI or around a click, against the whole image.

A ROI or a click restricts where the network runs, not where the anatomy lies: the body, its
midline and the lungs are in the whole image. Judged on the region read around a ROI (the CLI
reads only that box) or skipped for a click, a liver model's "liver" on the spleen, 100 mm left
of the midline, came back in silence (tester 20: 154 ml from a ROI, 143 ml from a click on the
demo CT's spleen). Here the result is measured against the whole image's CT
(``anatomy_check.check_result``; a region read passes the whole image's CT at about
``anatomy_check.FINE_MM``, :func:`strided_ct_volume`), with the rules that stay meaningful
for a part of the organ: not between the lungs, not left of the body's midline, lung above its
top (below the ROI's or the click box's top, not the image's), in the trunk, inside the rib
cage, not in the chest. The sliver and skeleton-midline rules need the whole organ and are not
applied (``liver_position.measure_position``). The image-edge cut (``liver_edge.py``) is
judged where the segment meets the image's own edge: a ROI's or a click box's face inside the
image is not one (``roi_edge.py`` and ``point_box.py`` warn about those).
"""

from __future__ import annotations

import dataclasses
import time
from typing import MutableMapping, Optional, Sequence

import numpy as np

from .anatomy_check import (
    STEP_MM,
    Findings,
    check_model_result,
    check_result,
    liver_warning,
    too_large,
)
from .liver_edge import check_edges
from .orientation_check import fine_steps
from .volume import Box, Grid, SegmentationResult, Volume, canonical_grid

#: A ROI's or a click's segment is "left of the midline" only when its centre lies more than
#: this (mm) left of the body's midline (a whole image's: more than 0 mm): a ROI or a click box
#: may hold the liver's left lobe alone. On the demo CT the liver's part left of the midline
#: has its centre 20 mm left of it (11 % of the liver), its part left of 20 mm right of the
#: midline 8 mm (19 %); the spleen (TotalSegmentator's label) 95-97 mm (tester 20).
PROMPT_LEFT_MM = 40.0


def strided_ct_volume(ct: np.ndarray, full: Grid) -> Volume:
    """A one-channel Volume of the CT's (z, y, x) voxels at ``orientation_check.fine_steps``
    strides (HU; ``array[::sz, ::sy, ::sx]`` of the image on ``full``, as the streamed checks
    read them): the whole image's anatomy at about 2 mm, in the same physical space."""
    steps = fine_steps(full.spacing)[::-1]  # x, y, z
    spacing = tuple(float(s) * k for s, k in zip(full.spacing, steps))
    return Volume(np.asarray(ct)[None], spacing, full.origin, full.direction.copy(), ("ct",))


def slices_box(grid: Grid, slices: Sequence[slice]) -> Box:
    """The LPS box (mm) holding the voxel centres of the (z, y, x) ``slices`` of ``grid``
    (any direction: the bounds of the eight corners)."""
    low = [s.start for s in slices][::-1]
    high = [s.stop - 1 for s in slices][::-1]
    corners = np.array([[(low, high)[b][a] for a, b in enumerate(c)] for c in np.ndindex(2, 2, 2)])
    points = np.array([grid.index_to_physical(c) for c in corners], dtype=np.float64)
    return Box(tuple(points.min(axis=0)), tuple(points.max(axis=0)))


def _ct_channel(manifest) -> Optional[int]:
    kinds = [c.normalization["kind"] for c in manifest.channels]
    return kinds.index("ct") if "ct" in kinds else None


def check_anatomy(
    manifest,
    volume: Volume,
    labels: np.ndarray,
    image: Grid,
    box: Optional[Box] = None,
    memo: Optional[MutableMapping] = None,
    image_ct: Optional[Volume] = None,
) -> tuple[list[str], Optional[dict]]:
    """The manifest's anatomy check (``inference.anatomy``) of a result, and its image-edge cut.

    ``labels``: (z, y, x) on the whole ``image``'s grid (:func:`on_image`); ``box``: the LPS
    box the result was restricted to (a ROI, a click's crop; None: the whole image);
    ``volume``: the model's input (all channels), the whole image, or a region of it read
    around a ROI; ``image_ct``: the whole image's CT (one channel, HU, e.g.
    :func:`strided_ct_volume`), needed for a region read (without it the region is judged as
    if it were the image). Returns (warnings, summary for
    ``info["anatomy"]``, or None when no check applies, as ``check_model_result``)."""
    anatomy = (manifest.inference or {}).get("anatomy")
    first = _ct_channel(manifest)
    if image_ct is None:
        found, summary = check_model_result(manifest, volume, labels, image, box, memo)
    elif not anatomy or first is None or too_large(canonical_grid(image_ct.grid, (STEP_MM,) * 3)):
        return [], None
    else:
        label = next((x for x in manifest.labels if x.name == anatomy), manifest.labels[0])
        top = None if box is None else float(box.upper[2])
        found, summary = check_result(
            anatomy, image_ct, labels, image, label.value, label.name, top, memo, box is None
        )
        summary = summary if summary["coarse_segment_ml"] > 0 else None
    if summary is None:
        return found, None
    if box is not None and "left_side" in summary["failed"]:
        found = _left_lobe_allowed(found, summary)
    whole = first is not None and volume.shape_zyx == tuple(image.shape_zyx)
    ct = volume.array[first] if whole else None  # its padding lies beyond the edge
    return found + image_edge_warnings(manifest, labels, image, summary, ct), summary


def _left_lobe_allowed(found: list[str], summary: dict) -> list[str]:
    """``found`` and ``summary`` (changed in place) without the "left_side" rule when the
    segment's centre lies at most :data:`PROMPT_LEFT_MM` left of the midline."""
    if summary["midline_offset_mm"] > PROMPT_LEFT_MM:
        return found
    summary["failed"] = [rule for rule in summary["failed"] if rule != "left_side"]
    names = [f.name for f in dataclasses.fields(Findings)]
    findings = Findings(**{name: summary[name] for name in names})
    warning = liver_warning(findings, summary["segment"])
    summary["passed"] = warning is None
    return [warning] if warning else []


def image_edge_warnings(
    manifest,
    labels: np.ndarray,
    image: Grid,
    summary: dict,
    ct: Optional[np.ndarray] = None,
) -> list[str]:
    """``liver_edge.check_edges`` of the anatomy check's segment (``summary["segment"]``) in
    ``labels`` ((z, y, x) on the ``image``'s own grid: its faces are the image's edge; a ROI's
    face inside the image is not). ``ct``: the image's HU (z, y, x) on ``image`` (its padding
    lies beyond the edge), or None."""
    label = next(x for x in manifest.labels if x.name == summary["segment"])
    return check_edges(labels, image, label.name, label.value, summary, ct)


def on_image(labels: np.ndarray, labels_grid: Grid, image: Grid) -> np.ndarray:
    """(z, y, x) ``labels`` on ``labels_grid``, whole voxels of the ``image`` grid inside it (a
    click's smallest extent, ``point_crop.py``), placed on the whole ``image`` grid (zeros
    around): a mask on a part would be extrapolated beyond it by the anatomy check's
    resampling, and the part's faces are not the image's edge."""
    if tuple(labels.shape) == tuple(image.shape_zyx):
        return labels
    start = np.rint(image.physical_to_index(labels_grid.origin)).astype(int)[::-1]  # z, y, x
    full = np.zeros(image.shape_zyx, dtype=labels.dtype)
    full[tuple(slice(a, a + n) for a, n in zip(start, labels.shape))] = labels
    return full


def check_point_result(
    manifest, result: SegmentationResult, volume: Volume, memo: Optional[MutableMapping] = None
) -> SegmentationResult:
    """A click's ``result`` (``point_box.segment_point``'s, on the whole ``volume``) with the
    anatomy check of its segment (:func:`check_anatomy`, the click's final crop as the box:
    ``info["point_box"]["box"]``) added to ``info["warnings"]`` and ``info["anatomy"]``; an
    empty result (said already) and a model without ``inference.anatomy`` (the nodule model:
    no whole-image copy of its labels) are not checked. Returns ``result`` itself."""
    started = time.perf_counter()
    labels, crop = result.labels, (result.info.get("point_box") or {}).get("box")
    asked = (manifest.inference or {}).get("anatomy")
    if not asked or crop is None or not labels.array.any():
        return result
    box = slices_box(volume.grid, [slice(a, b) for a, b in crop])
    array = on_image(labels.array, labels.grid, volume.grid)
    found, summary = check_anatomy(manifest, volume, array, volume.grid, box, memo)
    result.info["warnings"] += [m for m in found if m not in result.info["warnings"]]
    result.info["anatomy"] = summary
    result.info["seconds"] = result.info.get("seconds", 0.0) + time.perf_counter() - started
    return result
