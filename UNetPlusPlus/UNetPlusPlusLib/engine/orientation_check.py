"""Front-back (anterior-posterior) orientation of a CT's header, from where its spine lies.

A CT whose array was flipped front-back with its direction matrix unchanged (or whose
direction's AP sign was flipped with the array unchanged) passes every input check, and a
CT model then segments a mirrored body in silence (left-right flips are caught afterwards by
the liver anatomy check, ``anatomy_check.py``). The spine settles it: the vertebral bodies
and their arches, the densest bone near the body's left-right midline, lie behind the body's
centre, on the patient's posterior side (LPS +y), supine or prone. The patient table is not
used: it lies behind a supine patient but in front of a prone one.

On the anatomy check's coarse LPS grid (:data:`anatomy_check.STEP_MM`, the CT strided and
block-averaged the same way), per axial slice where the body's left and right ends and, near
its midline, its front and back lie inside the image: the share of voxels above
:data:`DENSE_HU` (bone) in each cell within :data:`BAND_MM` of the body's midline, and the
centre of that bone's offset from the body's front-back centre there, as a share of the half
depth (+1: at the back of the body). Evidence is clear when at least :data:`MIN_SLICES` slices
hold such bone, :data:`MIN_BONE_ML` of it in all; the header is then called flipped when the
median offset is below -:data:`FLIPPED_OFFSET` and at least :data:`AGREE_SHARE` of those slices
put the bone in front of the centre (the sternum and the pubic symphysis lie in front, on
fewer slices than the spine). Everything else (a crop to an organ or a nodule, no spine in the
field of view, a body cut by the image's edge, a slab of a few slices) is weak evidence and
says nothing. Measured margins: docs/INPUT_CHECKS_CT.md, "Front-back orientation". The
streamed `--roi` checks (``streamed_checks.py``) keep only the ~2 mm view this reads
(:func:`fine_steps`) and call :func:`measure_ap_strided`.
numpy and SimpleITK only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import MutableMapping, Optional

import numpy as np

from .anatomy_check import (
    FINE_MM,
    STEP_MM,
    _coarse,
    _strided,
    coarse_ct_once,
    too_large,
)
from .volume import Grid, Volume, canonical_grid

#: Bone (cortex and dense trabecular bone) lies above this (HU); arterial contrast-filled blood
#: mostly below it.
DENSE_HU = 450.0
#: Bone within this distance (mm) of the body's left-right midline counts (the spine).
BAND_MM = 20.0
#: Slices (4 mm) with such bone and the body's ends inside the image needed for a decision.
MIN_SLICES = 5
#: Bone (ml of voxels above DENSE_HU) near the midline over those slices needed for a decision.
MIN_BONE_ML = 2.0
#: A slice's bone counts when it holds at least this many cells' worth of dense voxels.
MIN_SLICE_CELLS = 0.5
#: Median offset (share of the half depth) below minus this: flipped.
FLIPPED_OFFSET = 0.1
#: Share of the slices whose midline bone lies in front of the body's centre, for "flipped".
AGREE_SHARE = 0.6
#: An image narrower than this many cells (100 mm) front-back or left-right holds no body.
MIN_BODY_CELLS = 25
_CELL_ML = STEP_MM**3 / 1000.0


@dataclass
class Orientation:
    """What :func:`measure_ap` found; ``offset`` is None where the evidence was too weak."""

    slices: int = 0  # axial 4 mm slices with midline bone and the whole body in the image
    bone_ml: float = 0.0  # midline bone over those slices
    offset: Optional[float] = None  # bone-weighted mean offset, +1 at the back of the body
    front_share: Optional[float] = None  # share of those slices with the bone in front
    flipped: bool = False


def _touches_edge(fov: np.ndarray) -> np.ndarray:
    """(y, x) cells of one axial slice with a neighbour outside the image (or the grid)."""
    outside = np.pad(~fov, 1, constant_values=True)
    return outside[:-2, 1:-1] | outside[2:, 1:-1] | outside[1:-1, :-2] | outside[1:-1, 2:]


def fine_steps(spacing_xyz) -> tuple[int, int, int]:
    """(z, y, x) voxel strides of the about FINE_MM view the check reads (``anatomy_check.
    _strided``) of an image with ``spacing_xyz`` (mm): a streamed read keeps only these."""
    return tuple(max(1, int(FINE_MM / float(s))) for s in reversed(list(spacing_xyz)))


def measure_ap(
    volume: Volume, memo: Optional[MutableMapping] = None, channel: int = 0
) -> Orientation:
    """Where the midline bone of a CT ``volume`` (HU in channel ``channel``, any direction)
    lies front-back, in patient coordinates. Returns :class:`Orientation`; ``flipped`` is True
    only on clear evidence that the spine lies in front of the body's centre. ``memo``: a dict
    kept for this very volume, shared with the liver check (``anatomy_check.coarse_ct_once``)."""
    ct = _strided(volume.array[channel], volume.grid)[0]
    return measure_ap_strided(ct, volume.grid, memo, channel)


def measure_ap_strided(
    ct: np.ndarray, full: Grid, memo: Optional[MutableMapping] = None, channel: int = 0
) -> Orientation:
    """:func:`measure_ap` from the CT's (z, y, x) voxels at :func:`fine_steps` strides only
    (HU, any dtype; ``array[::sz, ::sy, ::sx]``) and the whole image's grid ``full``: the
    same result as on the whole array (the streamed ``--roi`` checks)."""
    grid = canonical_grid(full, (STEP_MM,) * 3)
    if min(grid.size_xyz[:2]) < MIN_BODY_CELLS or grid.size_xyz[2] < MIN_SLICES:
        return Orientation()  # a crop or a slab too small to hold a body: no evidence
    if too_large(grid):  # larger than any scan: its header is warned about, no evidence
        return Orientation()
    steps = fine_steps(full.spacing)[::-1]  # x, y, z
    spacing = tuple(s * k for s, k in zip(full.spacing, steps))
    fine = Grid(ct.shape[::-1], spacing, full.origin, full.direction)
    dense = _coarse(ct > DENSE_HU, fine, grid)  # share of dense voxels per cell
    _, fov, body = coarse_ct_once(ct, full, grid, memo, channel)
    band = int(round(BAND_MM / STEP_MM))
    offsets, weights = [], []
    for z in np.nonzero(body.any(axis=(1, 2)))[0]:
        edge = _touches_edge(fov[z]) & body[z]
        cols = np.nonzero(body[z].any(axis=0))[0]
        if edge[:, cols[0]].any() or edge[:, cols[-1]].any():
            continue  # the body's left or right end is cut: its midline is unknown
        mid = int(round((cols[0] + cols[-1]) / 2.0))
        part = slice(max(0, mid - band), mid + band + 1)
        inside = body[z, :, part]
        rows = np.nonzero(inside.any(axis=1))[0]
        if not len(rows):
            continue  # no body at its midline: two legs (or arms) apart, the gap between them
        front, back = rows[0], rows[-1]
        if edge[front, part].any() or edge[back, part].any() or back - front < 2:
            continue  # its front or back is cut
        weight = (dense[z, :, part] * inside).sum(axis=1)  # dense voxels per row (y)
        if weight.sum() < MIN_SLICE_CELLS:
            continue
        centre = float(np.average(np.arange(len(weight)), weights=weight))
        offsets.append((centre - (front + back) / 2.0) / ((back - front) / 2.0))  # +: back
        weights.append(float(weight.sum()))
    found = Orientation(slices=len(offsets), bone_ml=float(sum(weights)) * _CELL_ML)
    if found.slices < MIN_SLICES or found.bone_ml < MIN_BONE_ML:
        return found
    found.offset = float(np.median(offsets))
    found.front_share = float(np.mean(np.asarray(offsets) < 0))
    found.flipped = found.offset < -FLIPPED_OFFSET and found.front_share >= AGREE_SHARE
    return found


def ap_warning(found: Orientation, name: str) -> Optional[str]:
    """The warning for a front-back flip that ``found`` shows in input ``name``, else None."""
    if not found.flipped:
        return None
    return (
        f"Input '{name}' seems flipped front to back: its spine lies in front of the body's "
        f"centre in patient coordinates (on {found.front_share:.0%} of {found.slices} slices), "
        "while it lies behind it in every patient, supine or prone; the array or the direction "
        "matrix in its header was probably flipped along the anterior-posterior axis (for "
        "example by a conversion tool). The model would segment a mirrored body: fix the "
        "header's orientation (reload the original DICOM series) and check the result."
    )


def check_orientation(manifest, volume: Volume, memo: Optional[MutableMapping] = None) -> list[str]:
    """The front-back orientation warning for a model's CT input (the first channel
    normalised as ``ct``; none: []). ``volume``: (C, z, y, x) in HU; ``memo``: see
    :func:`measure_ap`. Returns at most one warning; never raises for a real CT."""
    first = ct_channel(manifest)
    if first is None:
        return []
    warning = ap_warning(measure_ap(volume, memo, first), manifest.channels[first].name)
    return [warning] if warning else []


def ct_channel(manifest) -> Optional[int]:
    """The index of the model's first channel normalised as ``ct``, or None (no check)."""
    channels = [i for i, c in enumerate(manifest.channels) if c.normalization["kind"] == "ct"]
    return channels[0] if channels else None


def check_orientation_strided(manifest, ct: np.ndarray, full: Grid) -> list[str]:
    """:func:`check_orientation` from the CT channel's (:func:`ct_channel`) voxels at
    :func:`fine_steps` strides and the whole image's grid (the streamed ``--roi`` checks)."""
    first = ct_channel(manifest)
    if first is None:
        return []
    warning = ap_warning(measure_ap_strided(ct, full), manifest.channels[first].name)
    return [warning] if warning else []


def summary(found: Orientation) -> dict:
    """:class:`Orientation` as a JSON-ready dict."""
    return asdict(found)
