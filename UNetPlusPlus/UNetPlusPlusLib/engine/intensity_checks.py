"""Intensity checks of input channels against the model's modality (:mod:`.sanity`).

Per channel, from its minimum, maximum and a strided sample (:class:`ChannelStats`, of a whole
array or of streamed slabs, :mod:`.streamed_checks`): no constant or empty channel, no two
identical channels; no label map or mask (:func:`label_map_problem`); a CT channel must hold
air, an MR channel must not look like a CT, and many negative MR voxels are warned about.
Refusals raise :class:`UNetPlusPlusError`; warnings are returned. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import UNetPlusPlusError
from .ct_range import below_air_problem, inverted_problem

#: Share of negative voxels above which an MR channel gets a warning (offset / normalised).
MR_NEGATIVE_SHARE = 0.01
#: A CT in Hounsfield units holds air (about -1000 HU) or lung (about -850 HU) below this.
CT_AIR_HU = -500.0
#: An MR channel with at least 5% of its voxels at or below this looks like a CT (air in HU).
MR_CT_AIR = -900.0
#: At most this many distinct integer values: a label map, not an image (CT without air).
LABEL_MAP_MAX_VALUES = 256
#: An MR channel with at most this many distinct non-negative integers is a label map or mask
#: (BraTS ``_seg``: 0, 1, 2, 4); real MR volumes of the shared data hold hundreds or more.
MR_LABEL_MAP_MAX_VALUES = 16
#: Of the sample's neighbouring pairs not both 0, at least this share is equal in a label map
#: with more than :data:`MR_LABEL_MAP_MAX_VALUES` values (labels come in regions: 0.82-0.90 in
#: the TotalSegmentator label maps of the shared data, 0.62 in a BraTS ``_seg``); an image
#: whose values happen to be few integers (a BraTS T1ce of 205 values from 0 to 211) holds
#: noise (0.004-0.06 in every shared MR and CT), and is no label map (fresh user 27).
LABEL_MAP_MIN_EQUAL_SHARE = 0.2
#: A CT channel of integers within 0..255 holding more distinct values than this is an 8-bit
#: image (a screenshot, a windowed export), not a label map: TotalSegmentator's label maps, the
#: largest here, hold at most 117 labels (62 in the shared example); an 8-bit CT, 250 (tester 20).
EIGHT_BIT_MIN_VALUES = 128
#: Voxels sampled for the distinct-value statistics (a strided subsample of larger volumes).
SAMPLE_VOXELS = 2_000_000


@dataclass
class ChannelStats:
    """What the intensity checks need of one channel, from a whole array or streamed slabs.

    ``low``/``high``: minimum and maximum; ``sample``: the strided subsample of the flattened
    (z, y, x) channel (every ``sample_step(size)``-th voxel, the same voxels either way).
    """

    low: float
    high: float
    sample: np.ndarray


def sample_step(size: int) -> int:
    """Stride of the distinct-value sample for a channel of ``size`` voxels."""
    return max(1, size // SAMPLE_VOXELS)


def channel_stats(channel: np.ndarray) -> ChannelStats:
    """Statistics of a whole (z, y, x) channel."""
    flat = channel.reshape(-1)
    return ChannelStats(float(flat.min()), float(flat.max()), flat[:: sample_step(flat.size)])


def _label_map_like(sample: np.ndarray) -> tuple[bool, int]:
    """(looks like a label map, distinct values): few non-negative integers. The count is that
    of the sample when it looks like one; otherwise it may be that of a strided part of it, or
    -1 (a negative or fractional value)."""
    if sample.min() < 0:
        return False, -1
    # a strided part first: a fraction there, or more distinct values than any label map
    # holds, decides it without rounding and sorting the whole sample (an image has hundreds
    # or thousands of values)
    part = sample[:: max(1, sample.size // 65536)]
    if not np.array_equal(part, np.round(part)):
        return False, -1
    distinct = int(np.unique(part).size)
    if distinct > LABEL_MAP_MAX_VALUES:
        return False, distinct
    if not np.array_equal(sample, np.round(sample)):
        return False, -1
    distinct = int(np.unique(sample).size)
    return distinct <= LABEL_MAP_MAX_VALUES, distinct


def _equal(first: np.ndarray, second: np.ndarray) -> bool:
    """``np.array_equal``, deciding most unequal pairs on a strided part of them first."""
    if np.shape(first) != np.shape(second):
        return False
    stride = max(1, np.size(first) // 4096)
    flat = np.reshape(first, -1)[::stride], np.reshape(second, -1)[::stride]
    return bool(np.array_equal(*flat)) and bool(np.array_equal(first, second))


def check_intensities(
    array_czyx: np.ndarray,
    channel_names: Sequence[str],
    modalities: Sequence[str],
    strict_modality: bool = True,
    stats: Sequence[ChannelStats] | None = None,
) -> list[str]:
    """Refuse channels whose intensities cannot be the model's modality; return warnings.

    ``array_czyx`` (C, z, y, x), or a sequence of C (z, y, x) arrays in any voxel type (an
    int16 CT is checked without a float copy); ``modalities`` from the manifest ("CT", "MR",
    other strings get only the generic checks). CT values are Hounsfield units. With
    ``strict_modality=False`` (training data) a CT channel without air is a warning, not a
    refusal; constant and identical channels are always refused. ``stats``: the channels'
    :func:`channel_stats` if the caller has them.
    """
    count = len(array_czyx)
    if stats is None or len(stats) != count:
        stats = [channel_stats(array_czyx[c]) for c in range(count)]
    identical = [  # the samples first: channels that differ there differ
        (a, b)
        for a in range(count)
        for b in range(a + 1, count)
        if _equal(stats[a].sample, stats[b].sample) and _equal(array_czyx[a], array_czyx[b])
    ]
    return decide_intensities(stats, identical, channel_names, modalities, strict_modality)


def decide_intensities(
    stats: Sequence[ChannelStats],
    identical: Sequence[tuple[int, int]],
    channel_names: Sequence[str],
    modalities: Sequence[str],
    strict_modality: bool = True,
) -> list[str]:
    """The decisions of :func:`check_intensities` from per-channel statistics (whole array or
    streamed); ``identical``: pairs (a, b), a < b, of equal channels. Raises UNetPlusPlusError."""
    warnings: list[str] = []
    names = list(channel_names) or [f"channel {i + 1}" for i in range(len(stats))]
    for c, (name, modality) in enumerate(zip(names, modalities)):
        low, high, sample = stats[c].low, stats[c].high, stats[c].sample
        if low == high:
            what = "empty (all 0)" if low == 0 else f"constant (every voxel {low:g})"
            raise UNetPlusPlusError(
                f"Input channel '{name}' is {what}: it holds no image; give the real {name} volume."
            )
        kind = modality.strip().upper()
        if kind == "CT":
            problem = _ct_problem(sample, name, low, high)
            if problem and strict_modality:
                raise UNetPlusPlusError(problem)
            warnings += [problem] if problem else []
        elif kind in ("MR", "MRI"):
            problem = _mr_problem(sample, name, low, high)
            if problem and strict_modality:
                raise UNetPlusPlusError(problem)
            warnings += [problem] if problem else []
            negative = _mr_negative_warning(sample, name) if low < 0 and not problem else ""
            warnings += [negative] if negative else []
    for a, b in sorted(identical):
        raise UNetPlusPlusError(
            f"Input channels '{names[a]}' and '{names[b]}' are identical (the same volume "
            "given twice?); give each channel its own volume."
        )
    return warnings


def _ct_problem(sample: np.ndarray, name: str, low: float, high: float) -> str:
    """Why a channel cannot be a CT in Hounsfield units ("" when it can)."""
    if low <= CT_AIR_HU:
        # air there, but perhaps shifted below it, or the values inverted (bone negated)
        return below_air_problem(sample, name) or inverted_problem(sample, name)
    eight_bit = _eight_bit_values(sample, low, high)  # was called a label map (tester 20)
    label_map = "" if eight_bit else label_map_problem(sample, name, low, high, "CT")
    if label_map:
        return label_map
    hint = ""
    if eight_bit:
        hint = (
            f" Its {eight_bit} distinct integer values within 0..255 make it an 8-bit image, "
            "unusual for a CT: a CT spans about -1000 HU (air) to over +1000 HU (bone), which 8 "
            "bits cannot hold, so these cannot be HU (a screenshot, a windowed or display "
            "export). Give the original CT (its DICOM series, or a NIfTI or NRRD of its HU "
            "values)."
        )
    elif low >= -100:  # a floor near 0: perhaps air stored as 0 (unsigned, no rescale)
        hint = (
            " If it is a CT stored without its rescale intercept (air near 0 instead of "
            "-1000), convert it to Hounsfield units (HU = value - 1024)."
        )
    return (
        f"Input '{name}' is not a CT in Hounsfield units: it holds no air (no value below "
        f"{CT_AIR_HU:g} HU; range {low:g} to {high:g}). An MR or a processed image cannot be "
        f"segmented by this CT model; a CT crop must include some air or lung.{hint}"
    )


def _eight_bit_values(sample: np.ndarray, low: float, high: float) -> int:
    """The distinct values of an 8-bit-like channel (integers within 0..255, more than
    :data:`EIGHT_BIT_MIN_VALUES` of them), else 0."""
    if low < 0 or high > 255:
        return 0
    integers, distinct = _label_map_like(sample)
    return distinct if integers and distinct > EIGHT_BIT_MIN_VALUES else 0


def label_map_problem(sample: np.ndarray, name: str, low: float, high: float, kind: str) -> str:
    """Why a channel (its ``sample``, :class:`ChannelStats`) is a label map or mask rather than
    a ``kind`` ("CT", "MR") image, or "".

    The one decision for every modality: few distinct non-negative integers (at most
    :data:`LABEL_MAP_MAX_VALUES` for CT, :data:`MR_LABEL_MAP_MAX_VALUES` for MR); more than
    the MR limit only in regions of equal values (:data:`LABEL_MAP_MIN_EQUAL_SHARE`)."""
    most = MR_LABEL_MAP_MAX_VALUES if kind == "MR" else LABEL_MAP_MAX_VALUES
    label_map, distinct = _label_map_like(sample)
    if not label_map or distinct > most:
        return ""
    if distinct > MR_LABEL_MAP_MAX_VALUES and _equal_neighbours(sample) < LABEL_MAP_MIN_EQUAL_SHARE:
        return ""  # an image of few integer values (an 8-bit MR), not regions of labels
    return (
        f"Input '{name}' looks like a label map ({distinct} distinct integer values from "
        f"{low:g} to {high:g}), not a{'n' if kind == 'MR' else ''} {kind} image; give the {kind} "
        "volume itself."
    )


def _equal_neighbours(sample: np.ndarray) -> float:
    """Share of the sample's neighbouring pairs (not both 0) whose two values are equal."""
    first, second = sample[:-1], sample[1:]
    counted = (first != 0) | (second != 0)
    total = int(np.count_nonzero(counted))
    return float(np.count_nonzero(counted & (first == second))) / total if total else 1.0


def _mr_problem(sample: np.ndarray, name: str, low: float, high: float) -> str:
    """Why a channel cannot be an MR image ("" when it can): a label map, or CT-like air."""
    label_map = label_map_problem(sample, name, low, high, "MR")
    if label_map:
        return label_map
    if low <= MR_CT_AIR and float(np.percentile(sample, 5)) <= MR_CT_AIR:
        return (
            f"Input '{name}' looks like a CT (at least 5% of it at or below {MR_CT_AIR:g}, like "
            "air in Hounsfield units), but this model expects MR; give the MR volume."
        )
    return ""


def _mr_negative_warning(sample: np.ndarray, name: str) -> str:
    """A warning when more than :data:`MR_NEGATIVE_SHARE` of an MR channel's sample is negative.

    MR magnitude images are non-negative, with 0 outside a skull-stripped brain; the models
    z-score the non-zero voxels. An offset or already-normalised image shifts every voxel the
    model sees (a BraTS case minus 100 gave tumour Dice 0.36 instead of 0.77, and tumour outside
    the brain), so the user is told; a few negative voxels (interpolation ringing) are not.
    """
    share = float(np.count_nonzero(sample < 0)) / max(1, sample.size)
    if share <= MR_NEGATIVE_SHARE:
        return ""
    return (
        f"Input '{name}' has {share:.0%} negative voxels; MR intensities are non-negative, with "
        "0 outside the anatomy, as this model was trained. An offset, rescaled or already "
        "normalised image gives wrong results: give the scanner's (or skull-stripped) image."
    )
