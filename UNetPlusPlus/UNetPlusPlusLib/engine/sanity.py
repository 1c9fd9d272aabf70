"""Input sanity: refuse inputs that cannot be right, warn about borderline ones.

One check per family, run before any inference (``Predictor.segment``, the Slicer Logic) and
before training (``training/dataset_check.py``):

- **header** (:func:`check_header`): finite, positive and physically plausible spacing (mm),
  an orthonormal direction, a finite origin, at least 2 voxels on every axis; warnings for
  very thick voxels and for geometry no scan has (:mod:`.header_warnings`);
- **values** (:func:`check_finite`): no NaN or infinite voxel (NIfTI files are also checked in
  their raw bytes by :mod:`.nifti_check`, because ITK's NIfTI reader turns NaN into 0);
- **intensities** (:func:`check_intensities`, in :mod:`.intensity_checks`): per channel,
  against the modality the model's manifest declares (``ChannelSpec.modality``): no constant or
  empty channel, no two identical channels; no channel may be a label map or mask
  (:func:`label_map_problem`: for CT, no air and at most 256 distinct non-negative integers; for
  MR, at most 16); a CT channel must hold air (values below -500 HU); an MR channel must not
  look like a CT (5% of it at -900 or below);
- **channels for a model** (:func:`check_model_samples`): an MR channel of a model that relies
  on a zero background must hold voxels exactly 0, and be non-zero over no more than the
  manifest's ``inference.max_nonzero_ml`` (not skull-stripped); no two channels may be the same
  image up to scale (Spearman correlation ~1); the sequence order (:mod:`.channel_order`); with
  the spacing (:func:`check_sequence_order`), the MR bias field (:mod:`.bias_field`).

Refusals raise :class:`UNetPlusPlusError` with one actionable line; borderline findings are
returned as warning strings for the CLI (``warning: ...`` on stderr) and the Slicer panel.
Other families live where the data is read: several DICOM series in one folder
(:mod:`.dicom`), the clicked nodule (:func:`.postprocess.keep_component_at_point`).
"""

from __future__ import annotations

from typing import MutableMapping, Sequence

import numpy as np

from ..errors import UNetPlusPlusError
from .channel_masks import different_brains_warning
from .header_warnings import implausible_geometry
from .intensity_checks import (  # noqa: F401  (re-exported: sanity is the checks' import path)
    CT_AIR_HU,
    LABEL_MAP_MAX_VALUES,
    MR_CT_AIR,
    MR_LABEL_MAP_MAX_VALUES,
    MR_NEGATIVE_SHARE,
    SAMPLE_VOXELS,
    ChannelStats,
    channel_stats,
    check_intensities,
    decide_intensities,
    label_map_problem,
    sample_step,
)
from .mr_background import (  # noqa: F401  (re-exported: sanity is the checks' import path)
    MIN_WHOLE_BRAIN_ML,
    MODE_SAMPLE_VOXELS,
    MR_MIN_ZERO_CONTIGUITY,
    MR_MIN_ZERO_SHARE,
    NEAR_DUPLICATE_RHO,
    check_near_duplicates,
    check_zero_background,
    needs_zero_background,
)
from .orientation_check import check_orientation
from .scale_check import check_model_scale

#: Spacing outside [MIN, MAX] mm is refused: a header in metres or micrometres, or corrupt.
MIN_SPACING_MM = 0.01
MAX_SPACING_MM = 100.0
#: Spacing above this (mm) on any axis is accepted with a warning (very thick slices).
THICK_SPACING_MM = 10.0
#: No scan lies this far (mm) from the scanner's isocentre; the shared data's origins reach
#: 1.6 m. An origin of 1e30 mm gave a 0.27 ml "liver" with only an anatomy warning (tester 14).
MAX_ORIGIN_MM = 1e6
#: Tolerance on |D^T D - I| for an orthonormal direction matrix.
DIRECTION_TOLERANCE = 1e-3


def _fmt(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


# --------------------------------------------------------------------------- header
def check_header(
    size_xyz: Sequence[int],
    spacing: Sequence[float],
    origin: Sequence[float],
    direction: Sequence[float] | np.ndarray,
    source: str,
) -> list[str]:
    """Refuse physically impossible geometry; return warnings for implausible geometry.

    ``size_xyz`` in voxels, ``spacing`` in mm (x, y, z), ``origin`` in mm, ``direction`` a
    3x3 matrix (or its 9 values, row-major). Raises UNetPlusPlusError naming ``source``.
    """
    size = [int(s) for s in size_xyz]
    spacing_a = np.asarray(spacing, dtype=np.float64)
    if not np.all(np.isfinite(spacing_a)) or np.any(spacing_a <= 0):
        raise UNetPlusPlusError(
            f"{source} has an invalid voxel spacing {_fmt(spacing_a)} mm; spacing must be "
            "positive: fix the image header."
        )
    # against the limits as float32 too: a NIfTI header's 0.01 reads back as 0.0099999998
    low, high = float(np.float32(MIN_SPACING_MM)), float(np.float32(MAX_SPACING_MM))
    if np.any(spacing_a < min(low, MIN_SPACING_MM)) or np.any(
        spacing_a > max(high, MAX_SPACING_MM)
    ):
        raise UNetPlusPlusError(
            f"{source} has a voxel spacing of {_fmt(spacing_a)} mm, outside "
            f"{MIN_SPACING_MM:g}..{MAX_SPACING_MM:g} mm: the header is probably in metres or "
            "micrometres; fix the spacing in the header."
        )
    if not np.all(np.isfinite(np.asarray(origin, dtype=np.float64))):
        raise UNetPlusPlusError(f"{source} has a non-finite origin {_fmt(origin)}; fix the header.")
    if np.max(np.abs(np.asarray(origin, dtype=np.float64))) > MAX_ORIGIN_MM:
        raise UNetPlusPlusError(
            f"{source} has its origin at {_fmt(origin)} mm, more than {MAX_ORIGIN_MM / 1e6:g} km "
            "from the scanner's isocentre, where no scan lies; voxel positions that far lose "
            "their precision (a float32 NIfTI header keeps them to about "
            f"{float(np.spacing(np.float32(MAX_ORIGIN_MM))):g} mm there), so the result would "
            "not sit on the image: fix the origin in the header."
        )
    matrix = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    if not np.all(np.isfinite(matrix)) or not np.allclose(
        matrix.T @ matrix, np.eye(3), atol=DIRECTION_TOLERANCE
    ):
        raise UNetPlusPlusError(
            f"{source} has a degenerate or sheared direction matrix "
            f"{np.round(matrix, 4).tolist()}; its axes must be orthogonal unit vectors. "
            "Resample it onto an orthogonal grid (for example in 3D Slicer) first."
        )
    if min(size) < 2:
        raise UNetPlusPlusError(
            f"{source} is a single slice (size {tuple(size)}); a 3D volume is needed (for DICOM, "
            "give the series folder rather than one file)."
        )
    warnings = []
    if np.any(spacing_a > THICK_SPACING_MM):
        warnings.append(
            f"{source} has very thick voxels ({_fmt(spacing_a)} mm); check the result closely."
        )
    return warnings + implausible_geometry(size, spacing_a, origin, matrix, source)


# --------------------------------------------------------------------------- values
def nonfinite_error(source: str, count: int) -> UNetPlusPlusError:
    """The one refusal for NaN or infinite voxels, whatever the file format."""
    return UNetPlusPlusError(
        f"{source} contains {count} NaN or infinite voxel(s) (or values beyond float32's range); "
        "fill them (for example with the background value) before segmenting."
    )


def cast_voxels(values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``values`` as a new float32 array, or written into ``out`` (converted to its type, same
    shape); returns the result. Values beyond float32's range become +-inf without numpy's
    overflow warning: every caller then refuses them (:func:`check_finite`,
    :func:`nonfinite_error`)."""
    with np.errstate(over="ignore"):
        if out is None:
            return values.astype(np.float32)
        out[...] = values
        return out


def check_finite(array: np.ndarray, source: str, stats: ChannelStats | None = None) -> None:
    """Refuse NaN or infinite voxels (values beyond float32 range become infinite). Integer
    voxels are always finite: they are not scanned. ``stats``: the array's
    :func:`channel_stats`, whose minimum and maximum decide it, if the caller has them."""
    if not np.issubdtype(array.dtype, np.floating) or array.size == 0:
        return
    # two reductions without a boolean copy of the volume: NaN propagates through min and max
    low, high = (stats.low, stats.high) if stats is not None else (array.min(), array.max())
    if np.isfinite(low) and np.isfinite(high):
        return
    finite = np.isfinite(array)
    raise nonfinite_error(source, int(finite.size - np.count_nonzero(finite)))


# --------------------------------------------------------------------------- all together
def check_volume(volume, modalities: Sequence[str], source: str = "The input volume") -> list[str]:
    """Header, finite values and intensities of an engine Volume; returns warnings.

    ``volume``: :class:`.volume.Volume` (C, z, y, x) in LPS. Raises UNetPlusPlusError.
    """
    names = list(volume.channel_names) or [f"channel {i + 1}" for i in range(volume.num_channels)]
    return check_channels(list(volume.array), volume.grid, names, modalities, source)


def check_channels(
    arrays: Sequence[np.ndarray],
    grid,
    channel_names: Sequence[str],
    modalities: Sequence[str],
    source: str = "The input volume",
) -> list[str]:
    """:func:`check_volume` for channels kept in their own voxel types: ``arrays`` C (z, y, x)
    arrays on one LPS ``grid`` (:class:`.volume.Grid`), e.g. the voxels of Slicer volume nodes
    without a float32 copy. Returns warnings; raises UNetPlusPlusError."""
    warnings = check_header(grid.size_xyz, grid.spacing, grid.origin, grid.direction, source)
    stats = []  # one minimum and maximum per channel serve both checks
    for array, name in zip(arrays, channel_names):
        stats.append(channel_stats(array) if np.size(array) else None)
        check_finite(array, f"Input channel '{name}'", stats[-1])
    given = None if None in stats else stats
    return warnings + check_intensities(arrays, channel_names, modalities, stats=given)


def check_model_input(
    manifest,
    volume,
    input_warnings: Sequence[str] | None = None,
    channel_check: bool = True,
    memo: MutableMapping | None = None,
) -> list[str]:
    """Input sanity of a :class:`.volume.Volume` (C, z, y, x) for a model: its channel count,
    then :func:`check_volume` against the manifest's channel modalities, the front-back
    orientation of a CT channel (:mod:`.orientation_check`, a warning), then
    :func:`check_model_samples` (zero MR background, near-duplicate channels, and the sequence
    order against the manifest's channel fingerprint, :mod:`.channel_order`, skipped with
    ``channel_check=False`` or without a fingerprint); returns warnings. An image far too small
    and fine for the model (:mod:`.scale_check`: a spacing in a wrong unit) is refused.

    ``input_warnings``: the whole image was already checked (streamed or cached); only the
    channel count is checked and these warnings are returned. No torch is needed, so the CLI
    runs this before it imports torch. ``memo``: a dict kept for this very volume (the coarse
    CT the orientation and liver checks share, ``anatomy_check.coarse_ct_once``). Raises
    UNetPlusPlusError."""
    expected = len(manifest.channels)
    got = volume.array.shape[0] if volume.array.ndim == 4 else 0
    if volume.array.ndim != 4 or got != expected:
        names = ", ".join(channel.name for channel in manifest.channels)
        raise UNetPlusPlusError(
            f"Model '{manifest.name}' needs {expected} input volume(s) ({names}); got {got}."
        )
    if input_warnings is not None:
        return list(input_warnings)
    warnings = check_volume(volume, [channel.modality for channel in manifest.channels])
    grid = volume.grid  # a header spacing in a wrong unit: a speck at the model's scale
    check_model_scale(grid.size_xyz, grid.spacing, manifest.spacing, manifest.tile_size)
    warnings += check_orientation(manifest, volume, memo)  # a CT flipped front-back
    arrays = list(volume.array)
    return warnings + check_sequence_order(manifest, arrays, channel_check, volume.spacing)


# --------------------------------------------------------------------------- for a model
def channel_samples(arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The strided sample of each (z, y, x) channel (any voxel type, no copy of contiguous
    arrays): the voxels of :func:`channel_stats` and of the streamed checks."""
    return [np.asarray(a).reshape(-1)[:: sample_step(np.asarray(a).size)] for a in arrays]


def check_nonzero_extent(
    manifest, samples: Sequence[np.ndarray], channel_names: Sequence[str], image_ml: float
) -> None:
    """Refuse a channel whose non-zero voxels (``samples``: strided, ``channel_samples``, of an
    image of ``image_ml`` ml) fill more than the manifest's ``inference.max_nonzero_ml`` ml (a
    head not skull-stripped; none: no check). Raises UNetPlusPlusError."""
    limit = (getattr(manifest, "inference", None) or {}).get("max_nonzero_ml")
    if not limit or not image_ml:
        return
    for sample, name in zip(samples, channel_names):
        filled = float(np.count_nonzero(sample)) / max(1, sample.size) * image_ml
        if filled > limit:
            raise UNetPlusPlusError(
                f"Input '{name}' is non-zero over {filled:.0f} ml, more than the {limit:.0f} ml "
                "a skull-stripped brain fills for this model: it does not look skull-stripped "
                "(skull, scalp or neck left around the brain give false tumour). Skull-strip "
                "it (for example with HD-BET or SynthStrip), everything outside the brain 0."
            )


def image_volume_ml(size: Sequence[int], spacing: Sequence[float]) -> float:
    """The volume in ml of ``size`` voxels (any order) at ``spacing`` (mm)."""
    return float(np.prod([float(n) for n in size])) * float(np.prod(spacing)) / 1000.0


def check_model_samples(
    manifest,
    samples: Sequence[np.ndarray],
    channel_check: bool = True,
    image_ml: float | None = None,
    found=None,
    arrays: Sequence[np.ndarray] | None = None,
) -> list[str]:
    """The checks of C channel ``samples`` (``channel_samples``, whole array or streamed) that
    need the model: :func:`check_model_background`; given the whole (z, y, x) ``arrays``, no
    cluster of absurd MR voxels (:func:`.mr_outliers.check_clusters`: it would mislead what
    follows); then :func:`check_model_channels` (near duplicates, the sequence order unless
    ``channel_check=False``). ``image_ml``: the image's volume (ml); ``found``: the samples'
    fingerprint if the caller has it. Returns warnings; raises UNetPlusPlusError."""
    from .mr_outliers import check_clusters

    warnings = check_model_background(manifest, samples, image_ml)
    if arrays is not None:
        warnings += check_clusters(manifest, arrays)
    return warnings + check_model_channels(manifest, samples, channel_check, image_ml, found)


def check_model_background(
    manifest, samples: Sequence[np.ndarray], image_ml: float | None = None
) -> list[str]:
    """For a model that relies on a zero background (:func:`needs_zero_background`): the zero
    background and, given the image's volume ``image_ml`` (ml), :func:`check_nonzero_extent`
    of C channel ``samples`` (``channel_samples``), and channels covering one brain
    (:mod:`.channel_masks`, a warning). Returns warnings; raises UNetPlusPlusError."""
    if not needs_zero_background(manifest):
        return []
    names = [channel.name for channel in manifest.channels]
    check_zero_background(samples, names, image_ml or 0.0)
    check_nonzero_extent(manifest, samples, names, image_ml or 0.0)
    return different_brains_warning(samples, names)  # channel_masks.py


def check_model_channels(
    manifest,
    samples: Sequence[np.ndarray],
    channel_check: bool = True,
    image_ml: float | None = None,
    found=None,
) -> list[str]:
    """No two of C channel ``samples`` the same image up to scale, then their sequence order
    (:mod:`.channel_order`; not with ``channel_check=False`` or without a reference): for a
    zero-background model, a brain (ml non-zero in every channel of an image of ``image_ml``
    ml) under :data:`.mr_background.MIN_WHOLE_BRAIN_ML` is not judged against the whole-brain
    reference, only warned about. Run after the absurd-voxel clusters, which mislead both.
    ``found``: the samples' fingerprint if the caller has it. Returns warnings; raises
    UNetPlusPlusError."""
    from .channel_order import check_channel_order, fingerprint, manifest_reference

    names = [channel.name for channel in manifest.channels]
    found = fingerprint(samples) if found is None and len(samples) > 1 else found
    if found is not None:
        check_near_duplicates(found.spearman, names)
    reference = manifest_reference(manifest) if channel_check else None
    if reference is None:
        return []
    min_ml = MIN_WHOLE_BRAIN_ML if needs_zero_background(manifest) else 0.0
    return check_channel_order(samples, reference, names, found, image_ml, min_ml)


def check_sequence_order(
    manifest, arrays: Sequence[np.ndarray], enabled: bool = True, spacing=None, found=None
) -> list[str]:
    """:func:`check_model_samples` of C (z, y, x) ``arrays`` at ``spacing`` (mm; None: no extent
    or bias-field check), with their fingerprint ``found`` if any, then the MR bias field
    (:mod:`.bias_field`) and extreme MR voxels (:mod:`.mr_outliers`). Returns warnings;
    raises UNetPlusPlusError."""
    from .bias_field import check_bias_field
    from .mr_outliers import outlier_warnings

    image_ml = None
    if spacing is not None and len(arrays):
        image_ml = image_volume_ml(np.shape(arrays[0]), spacing)
    samples = channel_samples(arrays)
    warnings = check_model_samples(manifest, samples, enabled, image_ml, found, arrays)
    return (
        warnings
        + check_bias_field(manifest, arrays, spacing)
        + outlier_warnings(manifest, arrays, clusters_checked=True)
    )
