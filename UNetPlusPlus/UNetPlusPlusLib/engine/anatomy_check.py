"""Anatomical plausibility of a liver result, in patient (LPS) coordinates.

A CT without a liver (a chest crop around the heart, a pelvis below the liver) still gets a
confident "liver" from the model. The input checks cannot see this (the intensities are a CT's),
so the result is checked against three facts of anatomy that hold on every normal CT
(docs/INPUT_CHECKS.md, "Anatomy of the result"):

- **between the lungs**: the heart is flanked by lung on both its sides at the same axial level;
  the liver is not (lung lies to its right only, over the dome). A segment whose rows have lung
  right next to both edges (:data:`FLANK_MM`) for at least :data:`FLANKED_SHARE` of its voxels
  lies where the heart is.
- **laterality**: the liver lies on the patient's right; its centroid is several cm right of
  the body's midline. A centroid left of the midline (where the body fits in the image on both
  sides) means situs inversus (1 in 10 000), a left-right flipped header, or not a liver.
- **under the lungs**: the top of the liver is the dome under the right lung. A segment that
  ends at least :data:`ROOM_MM` below the top of the image (of the ROI, when one was segmented
  and its top is lower) with no lung up to :data:`LUNG_ABOVE_MM` above its top is not a liver
  (or misses its upper part).

Everything runs on a coarse grid (:data:`STEP_MM`) with identity direction (LPS axes), so
oblique and flipped image directions are handled by the resampling; numpy and SimpleITK only.
Where in the trunk (an arm, outside the ribs, a sliver): ``liver_position.py``. The rules warn,
never refuse: the result is still written.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from typing import MutableMapping, Optional

import numpy as np
import SimpleITK as sitk

from .coarse_cells import STEP_MM
from .coarse_cells import regions as _regions
from .fov_padding import measured
from .header_warnings import MAX_SCAN_LENGTH_MM, MAX_SCAN_WIDTH_MM
from .liver_position import Position, measure_position, position_reasons
from .manifest_types import ANATOMIES
from .volume import Grid, Volume, array_to_sitk, canonical_grid

#: The CT and the labels are first strided (a view, no copy) to about this spacing (mm) per
#: axis when finer, then block-averaged to STEP_MM.
FINE_MM = 2.0
#: HU range of aerated lung parenchyma; below LUNG_LOW_HU is gas (outside air, bowel, airway).
LUNG_LOW_HU, LUNG_HIGH_HU = -950.0, -400.0
#: A coarse cell is lung when at least this share of its voxels is lung parenchyma.
LUNG_CELL_SHARE = 0.5
#: Lung regions smaller than this (ml) after a 1-cell opening are ignored (bowel, noise).
MIN_LUNG_ML = 5.0
#: Soft tissue (body) above this HU, for the body midline and the rim of the lungs.
BODY_HU = -400.0
#: A lung region's rim must be at least this share of soft tissue (measured: lungs 0.63-0.90,
#: foam pads and gas-filled bowel 0.00-0.40; docs/INPUT_CHECKS.md).
LUNG_RIM_TISSUE = 0.6
#: Lung within this distance (mm) of a row's edge of the segment flanks that side.
FLANK_MM = 24.0
#: Share of the segment's voxels whose rows are flanked by lung on both sides: "between lungs".
FLANKED_SHARE = 0.4
#: The segment's centroid more than this (mm) left of the body's midline: wrong side.
LEFT_OF_MIDLINE_MM = 0.0
#: The image must extend this far (mm) above the segment for "under the lungs" to apply.
ROOM_MM = 30.0
#: Lung must lie within this distance (mm) above the segment's top (or beside it, down to
#: LUNG_BELOW_TOP_MM under it).
LUNG_ABOVE_MM = 80.0
LUNG_BELOW_TOP_MM = 30.0
_CELL_ML = STEP_MM**3 / 1000.0
#: Cells of the coarse grid over the largest image a scan gives (``header_warnings``: 0.9 m
#: across, 2.5 m long): a grid with more belongs to an image whose header is already warned
#: about, and the checks on it would take tens of GB (a 30 mm spacing in the demo CT's header
#: made 582 million cells, and the process was killed by the kernel with no message; tester
#: 14). :func:`too_large` skips them.
MAX_CELLS = (math.ceil(MAX_SCAN_WIDTH_MM / STEP_MM) + 1) ** 2 * (
    math.ceil(MAX_SCAN_LENGTH_MM / STEP_MM) + 1
)


@dataclass
class Findings:
    """What the check measured (mm, LPS; None where a rule could not be applied)."""

    #: the segment's volume on the check's own coarse grid (STEP_MM cells), not the result's
    #: volume (the demo CT: 1076 ml here, 1031.6 ml in the result); named so (tester 12)
    coarse_segment_ml: float
    flanked_share: Optional[float] = None  # share of voxels with lung on both sides
    midline_offset_mm: Optional[float] = None  # centroid x - body midline x (+: patient left)
    room_above_mm: Optional[float] = None  # image (or ROI) above the segment's top
    #: what room_above_mm reaches up to: "image" (its top), or "ROI" when a ROI's top, lower
    #: than the image's, bounds the region segmented
    room_above_to: Optional[str] = None
    lung_near_top: Optional[bool] = None  # lung within LUNG_ABOVE_MM above the top
    lung_ml: float = 0.0
    position: Optional[dict] = None  # liver_position.Position as a dict
    #: "between_lungs", "left_side", "no_lung_above", and liver_position's failed rules
    failed: list = field(default_factory=list)


def too_large(grid: Grid) -> bool:
    """Whether the coarse ``grid`` (``canonical_grid`` at STEP_MM) has more than
    :data:`MAX_CELLS` cells: an image larger than any scan, whose anatomy is not checked."""
    return math.prod(int(n) for n in grid.size_xyz) > MAX_CELLS


def _coarse(array: np.ndarray, fine: Grid, grid: Grid) -> np.ndarray:
    """Block-average ``array`` ((z, y, x) on ``fine``: a boolean mask or HU) to about STEP_MM
    (:func:`_shrunk`) and resample it onto ``grid`` (linear), float32 (z, y, x)."""
    resampler = sitk.ResampleImageFilter()
    resampler.SetSize([int(s) for s in grid.size_xyz])
    resampler.SetOutputSpacing(grid.spacing)
    resampler.SetOutputOrigin(grid.origin)
    resampler.SetOutputDirection(grid.direction.flatten().tolist())
    resampler.SetInterpolator(sitk.sitkLinear)
    resampler.SetDefaultPixelValue(0.0)
    resampler.SetUseNearestNeighborExtrapolator(True)  # the image's edge: see _field_of_view
    resampler.SetOutputPixelType(sitk.sitkFloat32)
    return sitk.GetArrayFromImage(resampler.Execute(_shrunk(array, fine)))


def _shrunk(array: np.ndarray, fine: Grid) -> sitk.Image:
    """``sitk.BinShrink`` of ``array`` as a float32 image on ``fine`` to about STEP_MM, computed
    in numpy: the mean of each whole bin (the last partial bin of an axis dropped) on a grid
    whose voxels sit at the bins' centres; the same values and geometry as BinShrink (exact
    for masks and whole-number HU; Testing/test_anatomy_check.py). Summed straight from the
    (strided) array: a mask no longer goes through a uint8 image, a float32 cast and a float32
    BinShrink, nor HU through a float32 copy and a SimpleITK image."""
    factors = [  # never more than the image holds (a few slices): BinShrink refused that
        max(1, min(n, int(round(STEP_MM / s)))) for s, n in zip(fine.spacing, fine.size_xyz)
    ]
    fx, fy, fz = factors
    nz, ny, nx = (n // f for n, f in zip(array.shape, (fz, fy, fx)))
    whole = array[: nz * fz, : ny * fy, : nx * fx]
    if whole.dtype == bool:
        kind = np.int32
    elif np.issubdtype(whole.dtype, np.integer):
        kind = np.int64
    else:  # as the SimpleITK path saw them: float32, summed in double
        whole, kind = whole.astype(np.float32, copy=False), np.float64
    sums = whole[:, :, 0::fx].astype(kind)  # one axis at a time, by strided adds: 2x faster
    for k in range(1, fx):  # than one 6-D reshape-and-sum (tiny inner loops) or SimpleITK
        sums += whole[:, :, k::fx]
    rows = sums[:, 0::fy].copy() if fy > 1 else sums
    for k in range(1, fy):
        rows += sums[:, k::fy]
    cells = rows[0::fz].copy() if fz > 1 else rows
    for k in range(1, fz):
        cells += rows[k::fz]
    mean = (cells / float(fx * fy * fz)).astype(np.float32)
    start = np.array([(f - 1) / 2.0 for f in factors])  # the first bin's centre, (x, y, z) index
    spacing = tuple(float(s) * f for s, f in zip(fine.spacing, factors))
    origin = tuple(float(v) for v in fine.index_to_physical(start))
    return array_to_sitk(mean, Grid(mean.shape[::-1], spacing, origin, fine.direction))


def _field_of_view(image: Grid, grid: Grid) -> np.ndarray:
    """Cells of ``grid`` whose centre lies inside the image's voxels (half a voxel beyond the
    outer centres), (z, y, x); the same for any storage order of the image's axes."""
    start = image.physical_to_index(grid.origin)  # continuous (x, y, z) image index
    steps = [
        image.physical_to_index(grid.index_to_physical(np.eye(3)[a])) - start for a in range(3)
    ]
    index = start.astype(np.float32)
    for axis, step in enumerate(steps):  # separable: one term per grid axis (x, y, z)
        shape = [1, 1, 1, 3]
        shape[2 - axis] = grid.size_xyz[axis]
        index = index + (np.arange(grid.size_xyz[axis])[:, None] * step).reshape(shape)
    size = np.asarray(image.size_xyz, dtype=np.float32)
    return np.all((index >= -0.5 - 1e-4) & (index <= size - 0.5 + 1e-4), axis=-1)


def _strided(array: np.ndarray, grid: Grid) -> tuple[np.ndarray, Grid]:
    """A view of a (z, y, x) array on ``grid`` strided to about FINE_MM, and its grid."""
    steps = [max(1, int(FINE_MM / s)) for s in grid.spacing]  # x, y, z
    part = array[:: steps[2], :: steps[1], :: steps[0]]
    spacing = tuple(s * k for s, k in zip(grid.spacing, steps))
    return part, Grid(part.shape[::-1], spacing, grid.origin, grid.direction)


def coarse_ct_once(
    ct: np.ndarray, full: Grid, grid: Grid, memo: Optional[MutableMapping] = None, channel: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hu, fov, body) of a CT on the coarse LPS ``grid``, (z, y, x): the block-averaged HU,
    the cells inside the image (:func:`_field_of_view`) and the body (the largest region of
    cells above BODY_HU). ``ct``: channel ``channel``'s voxels at FINE_MM strides
    (:func:`_strided`) of an image on ``full``. Kept read-only in ``memo`` (a dict the caller
    keeps for this very volume) for the same channel and grid: the front-back orientation
    check (``orientation_check.py``) and the liver check measure them once per volume."""
    key = (channel, tuple(grid.size_xyz), tuple(grid.spacing), tuple(grid.origin))
    kept = None if memo is None else memo.get("coarse ct")
    if kept is not None and kept[0] == key:
        return kept[1]
    steps = [max(1, int(FINE_MM / s)) for s in full.spacing]  # as _strided, x, y, z
    spacing = tuple(s * k for s, k in zip(full.spacing, steps))
    fine = Grid(ct.shape[::-1], spacing, full.origin, full.direction)
    hu = _coarse(ct, fine, grid)
    fov = _field_of_view(full, grid)
    body = _regions(fov & (hu > BODY_HU), 1) == 1
    found = (hu, fov, body)
    for array in found:
        array.setflags(write=False)
    if memo is not None:
        memo["coarse ct"] = (key, found)
    return found


#: SimpleITK's ball of radius 1 in 3-D: the centre and its 18 face and edge neighbours.
_BALL1 = [o for o in itertools.product(range(3), repeat=3) if sum(c != 1 for c in o) <= 2]


def _ball1_reduce(array: np.ndarray, outside, ufunc: np.ufunc) -> np.ndarray:
    """``ufunc`` (AND, OR, max) over the 19 views of ``array`` shifted by each offset of
    :data:`_BALL1`, with ``outside`` past its edges; in place, one copy of the array."""
    padded = np.pad(array, 1, constant_values=outside)
    z, y, x = array.shape
    out = array.copy()  # the centre offset
    for a, b, c in _BALL1:
        ufunc(out, padded[a : a + z, b : b + y, c : c + x], out=out)
    return out


def open_ball1(mask: np.ndarray) -> np.ndarray:
    """Binary opening of a (z, y, x) boolean ``mask`` by the radius-1 ball, bit-identical to
    ``sitk.BinaryMorphologicalOpening(image, [1] * 3)`` (erosion counts the outside as
    foreground, dilation as background) at a few percent of its cost."""
    eroded = _ball1_reduce(np.asarray(mask, dtype=bool), True, np.logical_and)
    return _ball1_reduce(eroded, False, np.logical_or)


def dilate_ball1(labels: np.ndarray) -> np.ndarray:
    """Grey dilation of non-negative (z, y, x) integer ``labels`` by the radius-1 ball,
    bit-identical to ``sitk.GrayscaleDilate(image, [1] * 3)``."""
    return _ball1_reduce(labels, 0, np.maximum)


def _enclosed(regions: np.ndarray, tissue: np.ndarray, fov: np.ndarray) -> np.ndarray:
    """Regions whose one-cell rim, inside the image, is at least LUNG_RIM_TISSUE soft tissue:
    lung lies inside the chest wall, mediastinum and diaphragm; foam pads under the patient
    and gas-filled bowel are rimmed by air or gas."""
    count = int(regions.max())
    if not count:
        return regions > 0
    grown = dilate_ball1(regions.astype(np.int32))
    rim = (regions == 0) & (grown > 0) & fov
    total = np.bincount(grown[rim], minlength=count + 1)
    solid = np.bincount(grown[rim & tissue], minlength=count + 1)
    keep = solid >= LUNG_RIM_TISSUE * np.maximum(total, 1)
    keep[0] = False
    return keep[regions]


def lung_and_body(
    volume: Volume, grid: Grid, memo: Optional[MutableMapping] = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lung, body and field-of-view masks of a CT (HU) on the coarse LPS ``grid``, (z, y, x).

    Lung: cells mostly of lung parenchyma (-950 to -400 HU at about 2 mm; gas below -950 HU,
    as in bowel, airways and outside air, is not lung), opened by one cell, in regions of at
    least MIN_LUNG_ML rimmed by soft tissue (:func:`_enclosed`). Body: the largest region of
    cells above BODY_HU. ``memo``: see :func:`coarse_ct_once`."""
    ct, fine = _strided(volume.array[0], volume.grid)
    lung_share = _coarse((ct > LUNG_LOW_HU) & (ct <= LUNG_HIGH_HU), fine, grid)
    hu, fov, body = coarse_ct_once(ct, volume.grid, grid, memo)
    tissue = fov & (hu > BODY_HU)
    opened = open_ball1(lung_share >= LUNG_CELL_SHARE)
    regions = _regions(opened, int(np.ceil(MIN_LUNG_ML / _CELL_ML)))
    lung = _enclosed(regions, tissue, fov)
    return lung, body, fov


def _side(lung: np.ndarray, inside: np.ndarray, full: bool) -> Optional[bool]:
    """Lung in these cells of a row (True); none, with all ``full`` FLANK_MM of them inside
    the image (False); else unknown (None)."""
    if lung.any():
        return True
    return False if full and inside.all() else None


def _flanked_share(segment: np.ndarray, lung: np.ndarray, fov: np.ndarray) -> Optional[float]:
    """Share of segment cells whose row (along x, patient right to left) has lung within
    FLANK_MM of the segment's edge on both sides, among the rows where this can be seen (a
    side that reaches the image's edge before lung is unknown); None when such rows hold less
    than a third of the segment."""
    reach = max(1, int(round(FLANK_MM / STEP_MM)))
    width = segment.shape[2]
    flanked = seen = 0
    for z, y in zip(*np.nonzero(segment.any(axis=2))):
        xs = np.nonzero(segment[z, y])[0]
        lo, hi = xs[0], xs[-1]
        right = slice(lo - reach, lo) if lo >= reach else slice(0, lo)
        left = slice(hi + 1, min(width, hi + 1 + reach))
        sides = [
            _side(lung[z, y, part], fov[z, y, part], part.stop - part.start == reach)
            for part in (right, left)
        ]
        if False in sides:
            seen += len(xs)
        elif sides == [True, True]:
            seen += len(xs)
            flanked += len(xs)
    total = np.count_nonzero(segment)
    return flanked / seen if seen >= total / 3.0 else None


def _midline_offset(segment: np.ndarray, body: np.ndarray, fov: np.ndarray) -> Optional[float]:
    """Segment centroid x minus the body's midline x (mm; + is the patient's left), over the
    axial slices where the body's left and right ends lie inside the image (not cut by its
    edge); None when those slices hold less than half of the segment."""
    outside = np.pad(~fov, 1, constant_values=True)
    edge = outside[1:-1, 1:-1, :-2] | outside[1:-1, 1:-1, 2:]  # a neighbour along x is outside
    edge |= outside[1:-1, :-2, 1:-1] | outside[1:-1, 2:, 1:-1]
    offsets, weights = [], []
    for z in np.nonzero(segment.any(axis=(1, 2)))[0]:
        columns = np.nonzero(body[z].any(axis=0))[0]
        if not len(columns):
            continue
        ends = body[z][:, [columns[0], columns[-1]]] & edge[z][:, [columns[0], columns[-1]]]
        if ends.any():
            continue  # the body reaches the image's edge at its side: its midline is unknown
        middle = (columns[0] + columns[-1]) / 2.0
        xs = np.nonzero(segment[z])[1]
        offsets.append((xs.mean() - middle) * STEP_MM)
        weights.append(len(xs))
    if sum(weights) < 0.5 * np.count_nonzero(segment):
        return None
    return float(np.average(offsets, weights=weights))


def lung_and_body_once(
    volume: Volume, grid: Grid, memo: Optional[MutableMapping] = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`lung_and_body`, kept in ``memo`` (a dict the caller keeps for this very volume,
    ``warm_cache.WarmCache.memo``) for the same coarse grid: another depth, TTA or ROI on the
    same volume in `unetpp serve` measures only its segment. The kept masks are read-only."""
    key = (tuple(grid.size_xyz), tuple(grid.spacing), tuple(grid.origin))
    kept = None if memo is None else memo.get("anatomy masks")
    if kept is not None and kept[0] == key:
        return kept[1]
    masks = lung_and_body(volume, grid, memo)
    for mask in masks:
        mask.setflags(write=False)
    if memo is not None:
        memo["anatomy masks"] = (key, masks)
    return masks


def measure_liver(
    volume: Volume,
    mask: np.ndarray,
    mask_grid: Optional[Grid] = None,
    top_mm: Optional[float] = None,
    memo: Optional[MutableMapping] = None,
    whole_image: bool = True,
) -> Findings:
    """Measure a liver segment against the anatomy of the CT ``volume`` (HU, channel 0).

    ``mask``: (z, y, x) boolean or 0/1 array of the segment on ``mask_grid`` (default: the
    volume's grid; any grid in the same physical space, e.g. the whole image when ``volume``
    is a region read around a ROI). ``top_mm``: the highest LPS z (mm) the result could
    reach (a ROI's top); the image above it is no room above the segment. ``memo``: see
    :func:`lung_and_body_once`; ``whole_image``: False for a result restricted to a ROI
    (``liver_position.measure_position``). Returns :class:`Findings` with ``failed`` naming the
    rules the segment breaks. Raises ValueError if ``mask`` does not match ``mask_grid``."""
    mask_grid = mask_grid or volume.grid
    if tuple(mask.shape) != mask_grid.shape_zyx:
        raise ValueError(f"mask shape {mask.shape} does not match grid {mask_grid.shape_zyx}")
    grid = canonical_grid(volume.grid, (STEP_MM,) * 3)
    memo = {} if memo is None else memo  # the coarse HU below: measured once with the masks
    lung, body, fov = lung_and_body_once(volume, grid, memo)
    part, fine = _strided(np.asarray(mask), mask_grid)
    segment = (_coarse(part > 0, fine, grid) >= 0.5) & fov
    findings = Findings(coarse_segment_ml=float(np.count_nonzero(segment)) * _CELL_ML)
    if not segment.any():
        return findings
    findings.lung_ml = float(np.count_nonzero(lung)) * _CELL_ML
    findings.flanked_share = _flanked_share(segment, lung, fov)
    findings.midline_offset_mm = _midline_offset(segment, body, fov)
    z_cells = np.nonzero(segment.any(axis=(1, 2)))[0]
    top = int(z_cells[-1])
    footprint = segment.any(axis=0)
    hu = coarse_ct_once(_strided(volume.array[0], volume.grid)[0], volume.grid, grid, memo)[0]
    data = measured(fov, hu)  # a resampled image's padded corners are not room above it
    fov_top = data.shape[0] - 1 - np.argmax(data[::-1], axis=0)  # the data's top per column
    findings.room_above_to = "image"
    if top_mm is not None:  # a ROI's top: nothing above it was segmented
        roi_top = np.floor((top_mm - grid.origin[2]) / STEP_MM)
        if roi_top < np.median(fov_top[footprint]):
            findings.room_above_to = "ROI"
        fov_top = np.minimum(fov_top, roi_top)
    findings.room_above_mm = float(np.median(fov_top[footprint]) - top) * STEP_MM
    low = max(0, top - int(round(LUNG_BELOW_TOP_MM / STEP_MM)))
    high = top + int(round(LUNG_ABOVE_MM / STEP_MM)) + 1
    findings.lung_near_top = bool(lung[low:high].any())
    if findings.flanked_share is not None and findings.flanked_share >= FLANKED_SHARE:
        findings.failed.append("between_lungs")
    offset = findings.midline_offset_mm
    if offset is not None and offset > LEFT_OF_MIDLINE_MM:
        findings.failed.append("left_side")
    if findings.room_above_mm >= ROOM_MM and not findings.lung_near_top:
        findings.failed.append("no_lung_above")
    position = measure_position(segment, lung, body, whole_image, hu)
    findings.position = asdict(position)
    findings.failed += position.failed
    return findings


def liver_warning(findings: Findings, name: str) -> Optional[str]:
    """One warning naming every rule ``findings`` breaks, or None when it breaks none."""
    reasons = []
    if "between_lungs" in findings.failed:
        reasons.append(
            f"it lies between the lungs, where the heart is ({findings.flanked_share:.0%} of it "
            "has lung on both sides; the image may not show the liver)"
        )
    if "left_side" in findings.failed:
        reasons.append(
            f"its centre lies {findings.midline_offset_mm:.0f} mm left of the body's midline, "
            "on the patient's left (situs inversus, or the image's left-right orientation is "
            "wrong)"
        )
    if "no_lung_above" in findings.failed:  # with a ROI: the region segmented, not the image
        region = "the ROI" if findings.room_above_to == "ROI" else "the image"
        reasons.append(
            f"it ends {findings.room_above_mm:.0f} mm below the top of {region} with no lung "
            f"above it, while the liver lies right under the lung ({region} may show only the "
            "region below the liver, or the result misses its upper part)"
        )
    position = findings.position
    reasons += position_reasons(Position(**position)) if position else []
    if not reasons:
        return None
    return (
        f"The '{name}' segment is not where a liver lies: "
        + "; ".join(reasons)
        + ". Check the result before using it."
    )


def check_model_result(
    manifest,
    volume: Volume,
    labels: np.ndarray,
    labels_grid: Grid,
    roi=None,
    memo: Optional[MutableMapping] = None,
) -> tuple[list[str], Optional[dict]]:
    """The check that the manifest's ``inference.anatomy`` asks for, on a model's result.

    The label checked is the one named like the anatomy, else the model's only label; the CT
    is the first channel normalised as ``ct`` (in HU). ``labels``: (z, y, x) on
    ``labels_grid``; ``roi``: the ``volume.Box`` the result was restricted to, if any (its top
    is then the image's top); ``memo``: see :func:`lung_and_body_once`. Returns the warnings
    and the summary of :func:`check_result`, or ([], None) when the manifest asks for no check,
    has no channel in HU, the segment is empty or the image is larger than any scan
    (:func:`too_large`)."""
    anatomy = (manifest.inference or {}).get("anatomy")
    channels = [i for i, c in enumerate(manifest.channels) if c.normalization["kind"] == "ct"]
    if not anatomy or not channels or too_large(canonical_grid(volume.grid, (STEP_MM,) * 3)):
        return [], None  # too large: no scan is, and its header is warned about
    label = next((x for x in manifest.labels if x.name == anatomy), manifest.labels[0])
    first = slice(channels[0], channels[0] + 1)
    ct = volume.with_array(volume.array[first], volume.channel_names[first])
    top = None if roi is None else float(roi.upper[2])
    warnings, summary = check_result(
        anatomy, ct, labels, labels_grid, label.value, label.name, top, memo, roi is None
    )
    return warnings, (summary if summary["coarse_segment_ml"] > 0 else None)


def check_result(
    anatomy: str,
    volume: Volume,
    labels: np.ndarray,
    labels_grid: Grid,
    value: int,
    name: str,
    top_mm: Optional[float] = None,
    memo: Optional[MutableMapping] = None,
    whole_image: bool = True,
) -> tuple[list[str], dict]:
    """Check the segment ``value`` of a label array against ``anatomy`` (:data:`ANATOMIES`).

    ``labels``: (z, y, x) on ``labels_grid``; ``volume``: the CT it was made from (HU, channel
    0; may cover only part of ``labels_grid``, as for a ROI read); ``top_mm``, ``memo``,
    ``whole_image``: as for :func:`measure_liver`. Returns the warnings (at
    most one) and a summary for ``result.info["anatomy"]``: ``passed``, the rules ``failed``
    and the measured figures. Raises ValueError for an unknown anatomy."""
    if anatomy not in ANATOMIES:
        raise ValueError(f"unknown anatomy {anatomy!r}; known: {', '.join(ANATOMIES)}")
    part, fine = _strided(labels, labels_grid)  # compare on the strided view only
    findings = measure_liver(volume, part == value, fine, top_mm, memo, whole_image)
    warning = liver_warning(findings, name)
    summary = {"anatomy": anatomy, "segment": name, "passed": warning is None}
    summary.update(asdict(findings))
    return ([warning] if warning else []), summary
