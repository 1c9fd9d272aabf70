"""Strong intensity non-uniformity (bias field) in MR inputs (numpy only: no torch, no Slicer).

MR that was not bias-corrected (N4) carries a smooth multiplicative field: a receive coil's
sensitivity makes one side of the head brighter than the other. The models z-score each channel
over the brain, so a strong field shifts one side's intensities and gives a confident but wrong
segmentation (docs/INPUT_CHECKS_MR.md, "Intensity non-uniformity").

**Measure** (:func:`field_strength`) on a coarse grid (every :data:`STEP_MM` mm,
:func:`grid_steps`; the same voxels in the whole-array and the streamed paths): blocks of
:data:`BLOCK` x :data:`BLOCK` x :data:`BLOCK` samples; each block at least :data:`MIN_FILL`
inside the brain (non-zero in every channel) gives, per channel, the median of its log
intensities; a low-order polynomial in x, y, z (degree :data:`DEGREE`) is fitted to those
medians with iteratively reweighted least squares (Tukey's biweight: tumour, ventricles and
tissue classes are outliers, not field). A strength is the max/min ratio of the fitted field
over the blocks (1.0: uniform): ``common``, of the fit to the mean over the channels of their
centred medians (one coil makes one field in every sequence, while tissue contrast differs
between sequences and partly cancels), ``linear``, of a plane fitted to that mean alone (the
brain is nearly symmetric, a coil on one side is not), and each channel's own.

**Decision** (:func:`check_bias_field`): the common strength above the manifest's
``inference.bias_field.warn_ratio``, its linear part above ``linear_warn_ratio``, or a
channel's own above ``channel_warn_ratio`` (a field in one sequence only), gives one warning
naming the channel(s) and suggesting N4 bias-field correction. No reference in the manifest
(CT models, older packages): no check. Not a refusal: under 4x fields the brain model's
whole-tumour Dice changed by 0.16 better to 0.41 worse, case by case (docs/INPUT_CHECKS_MR.md).
The fit is in voxel-index coordinates times spacing: a polynomial of degree 1 or 2 stays one
under any rotation or flip, so the strengths do not depend on the image's direction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

# BIAS_VERSION: the reference format written into the manifest (``inference.bias_field``)
from .manifest_options import BIAS_VERSION
from .manifest_options import parse_bias_reference as parse_reference  # noqa: F401 - former home

#: Pitch of the coarse sampling grid in mm (per axis: the nearest whole number of voxels).
STEP_MM = 4.0
#: Samples per block edge: blocks of BLOCK**3 samples (16 mm at the default pitch).
BLOCK = 4
#: A block counts when at least this share of its samples is non-zero in every channel.
MIN_FILL = 0.6
#: Fewer blocks than this in the brain: no measure (too small to tell a field from anatomy).
MIN_BLOCKS = 30
#: Degree of the fitted polynomial (2: linear and quadratic fields, 10 terms).
DEGREE = 2
#: Tukey biweight tuning constant (in robust standard deviations) and iterations.
TUKEY_C = 4.685
ITERATIONS = 10

ADVICE = (
    "correct it first with N4 bias-field correction (3D Slicer: 'N4ITK MRI Bias correction'; "
    "SimpleITK: N4BiasFieldCorrectionImageFilter)"
)


def grid_steps(spacing_xyz: Sequence[float]) -> tuple[int, int, int]:
    """Voxel strides (z, y, x) of the coarse grid for a volume of ``spacing_xyz`` mm."""
    return tuple(max(1, int(round(STEP_MM / float(s)))) for s in reversed(list(spacing_xyz)))


def coarse_grid(array_zyx: np.ndarray, steps: Sequence[int]) -> np.ndarray:
    """The coarse-grid samples of one (z, y, x) channel (a strided view, no copy)."""
    return np.asarray(array_zyx)[:: steps[0], :: steps[1], :: steps[2]]


def _blocks(grid: np.ndarray) -> np.ndarray:
    """(nz, ny, nx, BLOCK**3) blocks of a coarse grid cropped to whole blocks (float32)."""
    nz, ny, nx = (n // BLOCK for n in grid.shape)
    cropped = np.asarray(grid[: nz * BLOCK, : ny * BLOCK, : nx * BLOCK], dtype=np.float32)
    shaped = cropped.reshape(nz, BLOCK, ny, BLOCK, nx, BLOCK).transpose(0, 2, 4, 1, 3, 5)
    return shaped.reshape(nz, ny, nx, BLOCK**3)


def _design(points: np.ndarray, degree: int = DEGREE) -> np.ndarray:
    """Polynomial terms up to ``degree`` (1 or 2) of (n, 3) centred, scaled coordinates."""
    columns = [np.ones(len(points))]
    for power in range(1, degree + 1):
        for i in range(3):
            for j in range(i, 3) if power == 2 else [None]:
                columns.append(points[:, i] * (points[:, j] if j is not None else 1.0))
    return np.stack(columns, axis=1)


def robust_fit(points: np.ndarray, values: np.ndarray, degree: int = DEGREE) -> np.ndarray:
    """The fitted polynomial (degree 1 or 2) of ``values`` (n,) at ``points`` (n, 3),
    Tukey-reweighted."""
    design = _design(points, degree)
    weights = np.ones(len(values))
    fitted = np.full(len(values), float(np.median(values)))
    for _ in range(ITERATIONS):
        root = np.sqrt(weights)[:, None]
        coef = np.linalg.lstsq(design * root, values * root[:, 0], rcond=None)[0]
        fitted = design @ coef
        residual = values - fitted
        scale = 1.4826 * float(np.median(np.abs(residual))) + 1e-6
        u = residual / (TUKEY_C * scale)
        weights = np.where(np.abs(u) < 1, (1 - u**2) ** 2, 0.0)
        if np.count_nonzero(weights) < design.shape[1] * 2:
            break
    return fitted


@dataclass
class FieldStrength:
    """Max/min ratios (1.0: uniform) of the fitted field over the brain: ``common``, the field
    the channels share (fitted to the mean of their centred block medians), ``linear``, its
    degree-1 part (a plane fitted alone: anatomy is mostly symmetric, a one-sided coil is
    not), and ``channels``, each channel's own."""

    common: float
    channels: list[float]
    linear: float = 1.0


def _ratio(log_field: np.ndarray) -> float:
    return float(np.exp(log_field.max() - log_field.min()))


def field_strength(
    grids: Sequence[np.ndarray], grid_spacing_zyx: Sequence[float]
) -> Optional[FieldStrength]:
    """The fitted smooth field's strength over the brain, shared and per channel.

    ``grids``: C coarse grids (z, y, x) of one shape (:func:`coarse_grid`), any voxel type;
    ``grid_spacing_zyx``: their sample pitch in mm. Returns None when fewer than
    :data:`MIN_BLOCKS` blocks lie in the joint non-zero mask. Raises ValueError when the grids
    differ in shape."""
    if not grids or len({np.shape(g) for g in grids}) != 1:
        raise ValueError("the coarse grids must have one shape")
    blocks = [_blocks(g) for g in grids]
    inside = np.ones(blocks[0].shape, dtype=bool)
    for block in blocks:
        inside &= block > 0
    keep = inside.mean(axis=3) >= MIN_FILL
    if np.count_nonzero(keep) < MIN_BLOCKS:
        return None
    index = np.argwhere(keep).astype(np.float64)
    points = (index + 0.5) * BLOCK * np.asarray(grid_spacing_zyx, dtype=np.float64)
    points = (points - points.mean(axis=0)) / 100.0  # decimetres about the brain's centre
    mask = inside[keep]
    medians = []
    for block in blocks:
        logs = np.where(mask, np.log(np.where(mask, block[keep], 1.0)), np.nan)
        median = np.nanmedian(logs, axis=1).astype(np.float64)
        medians.append(median - np.median(median))
    channels = [_ratio(robust_fit(points, m)) for m in medians]
    mean = np.mean(medians, axis=0)
    common, linear = _ratio(robust_fit(points, mean)), _ratio(robust_fit(points, mean, 1))
    return FieldStrength(common, channels, linear)


# ------------------------------------------------------------------------ the reference
def build_reference(
    found: Sequence[FieldStrength],
    warn_ratio: float,
    linear_warn_ratio: float,
    channel_warn_ratio: float,
    cases=(),
) -> dict:
    """The manifest's ``bias_field`` from the training cases' strengths and the calibrated
    thresholds (docs/INPUT_CHECKS_MR.md). Raises ValueError when a training case reaches one."""
    if not found:
        raise ValueError("no training case was measured")
    common, linear = max(f.common for f in found), max(f.linear for f in found)
    channels = np.max([f.channels for f in found], axis=0)
    if common >= warn_ratio or linear >= linear_warn_ratio or channels.max() >= channel_warn_ratio:
        raise ValueError("a training case reaches a warning ratio")
    return {
        "version": BIAS_VERSION,
        "measure": f"max/min of a degree-{DEGREE} robust fit to {BLOCK * STEP_MM:g} mm block "
        "medians of log intensity in the brain: of the channels' mean (common; linear: a "
        "plane fitted to it), per channel",
        "cases": list(cases) or len(found),
        "training_max": {
            "common": round(common, 3),
            "linear": round(linear, 3),
            "channels": [round(float(v), 3) for v in channels],
        },
        "warn_ratio": float(warn_ratio),
        "linear_warn_ratio": float(linear_warn_ratio),
        "channel_warn_ratio": float(channel_warn_ratio),
    }


# ------------------------------------------------------------------------ the decision
def manifest_reference(manifest) -> Optional[dict]:
    """The manifest's ``inference.bias_field``, or None (none stored: no check)."""
    return (getattr(manifest, "inference", None) or {}).get("bias_field")


def decide(found: Optional[FieldStrength], reference: dict, names: Sequence[str]) -> list[str]:
    """One warning when the shared field exceeds ``warn_ratio`` or its linear part
    ``linear_warn_ratio`` (naming every channel with its own strength), or a channel's own
    field exceeds ``channel_warn_ratio`` (naming it)."""
    if found is None:
        return []
    common, single = float(reference["warn_ratio"]), float(reference["channel_warn_ratio"])
    linear = float(reference["linear_warn_ratio"])
    each = [f"{name} {ratio:.1f}x" for name, ratio in zip(names, found.channels)]
    if found.common > common or found.linear > linear:
        where = (
            f"across all channels: {found.common:.1f}x from the brightest to the darkest part "
            f"of the brain, {found.linear:.1f}x from one side to the other (this model warns "
            f"above {common:g}x and {linear:g}x; per channel: {', '.join(each)})"
        )
    else:
        strong = [text for text, ratio in zip(each, found.channels) if ratio > single]
        if not strong:
            return []
        where = (
            f"in {', '.join(strong)} from the brightest to the darkest part of the brain (this "
            f"model warns above {single:g}x in one channel)"
        )
    return [
        f"Strong intensity non-uniformity (bias field) {where}. The result may be wrong; {ADVICE}."
    ]


def check_bias_field(
    manifest,
    arrays: Sequence[np.ndarray],
    spacing_xyz: Optional[Sequence[float]],
    grids: Optional[Sequence[np.ndarray]] = None,
) -> list[str]:
    """Warnings for MR channels with a strong bias field, against the manifest's reference.

    ``arrays``: C (z, y, x) channels at ``spacing_xyz`` mm (None: no check), or ``grids``, their
    coarse grids (:func:`coarse_grid` at :func:`grid_steps`) when the caller streamed them.
    Returns [] without a reference, for non-MR channels or a brain too small to measure."""
    reference = manifest_reference(manifest)
    if reference is None or spacing_xyz is None:
        return []
    mr = [i for i, c in enumerate(manifest.channels) if c.modality.strip().upper() in ("MR", "MRI")]
    steps = grid_steps(spacing_xyz)
    if grids is None:
        grids = [coarse_grid(a, steps) for a in arrays]
    if not mr or len(grids) != len(manifest.channels):
        return []
    pitch = [s * float(p) for s, p in zip(steps, reversed(list(spacing_xyz)))]
    found = field_strength([grids[i] for i in mr], pitch)
    return decide(found, reference, [manifest.channels[i].name for i in mr])
