"""The MR and dataset checks as they were before session 14's speed-up (main 2683843), to
compare decisions and CPU with the code of this tree in one process (``bench/mr_check_cost.py``).

:func:`former` swaps them in (a context manager): the extreme-voxel ratios from a clipped copy
of every non-zero voxel at each level (``mr_outliers``), a second extraction of those voxels
for the absurd ones, the label-map test rounding the whole sample, unequal channels compared
in full, the minimum and maximum of each channel taken twice (``sanity.check_channels``), the
dataset's class counts by ``np.bincount`` and its label classes by one ``np.isin`` per label.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional, Sequence

import numpy as np
from UNetPlusPlusLib.engine import intensity_checks, mr_outliers, sanity
from UNetPlusPlusLib.engine.mr_robust import absurd_voxels
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.training import cases, dataset_check


def std_ratios(array: np.ndarray, levels=mr_outliers.CLIP_LEVELS) -> list:
    """``mr_outliers.std_ratios`` before: a clipped float64 copy per level."""
    values = np.asarray(array)[np.asarray(array) != 0].astype(np.float64)
    if values.size < 2:
        return [(1.0, 0.0, 0.0, 0.0)] * len(levels)
    step = max(1, values.size // mr_outliers.SAMPLE_SIZE)
    bounds = np.percentile(values[::step], [p for level in levels for p in level])
    spread = float(values.std())
    smallest, largest = float(values.min()), float(values.max())
    results = []
    for low, high in zip(bounds[0::2].tolist(), bounds[1::2].tolist()):
        clipped = float(np.clip(values, low, high).std())
        if clipped <= 0:
            results.append((1.0, low, high, 0.0))
            continue
        extreme = largest if largest - high >= low - smallest else smallest
        results.append((spread / clipped, low, high, extreme))
    return results


def channel_warning(name: str, array: np.ndarray, cluster_check: bool = True) -> Optional[str]:
    """``mr_outliers.channel_warning`` before: the absurd voxels zeroed in a copy, then
    :func:`std_ratios` of it (same messages)."""
    if cluster_check:
        mr_outliers.check_cluster(name, array)
    where, clip, worst = absurd_voxels(array)
    said = [mr_outliers.absurd_warning(name, where, clip, worst)] if len(where) else []
    if len(where):
        array = np.array(array, copy=True)
        array[tuple(where.T)] = 0
    found = zip(mr_outliers.CLIP_LEVELS, mr_outliers.MAX_RATIOS, std_ratios(array))
    hit = next(((level, ratios) for level, most, ratios in found if ratios[0] > most), None)
    if hit is not None:
        (bottom, top), (ratio, low, high, extreme) = hit
        said.append(
            f"Input '{name}' holds extreme voxels (up to {extreme:.4g}, while {top - bottom:g}% "
            f"of its non-zero voxels lie between {low:.4g} and {high:.4g}): they make its "
            f"standard deviation {ratio:.1f} times larger, so the MR normalisation (z-score) "
            "compresses the whole image and the result is unreliable. They may be hot pixels or "
            "a conversion error: clip the image to its normal range (or replace those voxels) "
            "and run again."
        )
    return " ".join(said) or None


def label_map_like(sample: np.ndarray) -> tuple[bool, int]:
    """``intensity_checks._label_map_like`` before: the whole sample rounded first."""
    if sample.min() < 0 or not np.array_equal(sample, np.round(sample)):
        return False, -1
    distinct = int(np.unique(sample[:: max(1, sample.size // 65536)]).size)
    if distinct > intensity_checks.LABEL_MAP_MAX_VALUES:
        return False, distinct
    distinct = int(np.unique(sample).size)
    return distinct <= intensity_checks.LABEL_MAP_MAX_VALUES, distinct


def check_channels(
    arrays: Sequence[np.ndarray], grid, channel_names, modalities, source="The input volume"
) -> list[str]:
    """``sanity.check_channels`` before: each channel's minimum and maximum taken twice."""
    warnings = sanity.check_header(grid.size_xyz, grid.spacing, grid.origin, grid.direction, source)
    for array, name in zip(arrays, channel_names):
        sanity.check_finite(array, f"Input channel '{name}'")
    return warnings + intensity_checks.check_intensities(arrays, channel_names, modalities)


def label_counts(labels: np.ndarray, size: int) -> np.ndarray:
    """``dataset_check._label_counts`` before: ``np.bincount`` of the whole volume."""
    return np.bincount(labels.ravel(), minlength=size)[:size]


def labels_from_labelmap(case, dataset):
    """``cases._labels_from_labelmap`` before: one ``np.isin`` pass per label."""
    try:
        labelmap = cases.read_labelmap(case.label)
    except UNetPlusPlusError as error:
        raise UNetPlusPlusError(f"Case '{case.case_id}': {error}") from error
    entries = cases.read_color_table(case.color_table, case.case_id) if case.color_table else []
    array = labelmap.array
    out = np.zeros(array.shape, dtype=np.uint8)
    for value, label in enumerate(dataset.labels, start=1):
        selectors = case.source.label_map[label.name]
        numbers = [s for s in selectors if isinstance(s, int)]
        named = [s for s in selectors if isinstance(s, str)]
        if named:
            matched = cases.match_entries(entries, named)
            if not matched:
                raise UNetPlusPlusError(f"Case '{case.case_id}': segment {named} not found.")
            numbers += [e.value for e in matched]
        out[np.isin(array, numbers)] = value
    return out, labelmap.grid


#: (module, attribute, former value) for every swapped function.
SWAPS = (
    (mr_outliers, "channel_warning", channel_warning),
    (intensity_checks, "_label_map_like", label_map_like),
    (intensity_checks, "_equal", np.array_equal),
    (sanity, "check_channels", check_channels),
    (dataset_check, "_label_counts", label_counts),
    (cases, "_labels_from_labelmap", labels_from_labelmap),
)


@contextlib.contextmanager
def former() -> Iterator[None]:
    """Run the checks as they were before (every function of :data:`SWAPS` swapped in)."""
    kept = [(module, name, getattr(module, name)) for module, name, _ in SWAPS]
    for module, name, value in SWAPS:
        setattr(module, name, value)
    try:
        yield
    finally:
        for module, name, value in kept:
            setattr(module, name, value)
