"""Physiological volume plausibility of a result: a segment far larger than the organ or lesion
can be is warned about (docs/INPUT_CHECKS.md, "Volume of the result").

A voxel spacing that is wrong in the image header, but not so wrong that the header checks
(``header_warnings.py``: default geometry, field of view over 0.9 m) or the grid-memory check
catch it, gives a confident result with a wrong volume: a liver CT whose header says 5 mm slices
when they are thinner gave a 3.7 l liver, in silence. A model's ``model.json`` may give, per
label, the range of volumes (ml) a real segment has: ``"postprocess": {"plausible_ml":
{"liver": [0, 3000]}}``. A segment outside its range gets one warning that names the volume,
the range and the likely causes (a wrong spacing in the header, a partial field of view,
unusual anatomy). It warns and never refuses; empty segments are not judged (the empty-result
warning covers them). numpy only.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .manifest_options import parse_ranges  # noqa: F401 - its former home

#: The manifest key, under ``postprocess``.
KEY = "plausible_ml"
#: How a click's volume warning names its segment (the CLI renames it per point).
AT_POINT = "found at the clicked point"
#: Rows of the label array counted at once (no boolean copy of a whole 512^2 x 800 grid).
_SLAB = 16


def segment_volumes_ml(
    labels_zyx: np.ndarray, spacing_xyz: Sequence[float], values: Sequence[int]
) -> list[float]:
    """Volume (ml) of each label value in ``values`` in a (z, y, x) integer label array whose
    voxels measure ``spacing_xyz`` (mm); counted slab by slab."""
    voxel_ml = float(abs(np.prod(np.asarray(spacing_xyz, dtype=np.float64)))) / 1000.0
    wanted = np.asarray(list(values), dtype=np.int64)
    counts = np.zeros(len(wanted), dtype=np.int64)
    for z in range(0, labels_zyx.shape[0], _SLAB):
        slab = labels_zyx[z : z + _SLAB]
        counts += [int(np.count_nonzero(slab == v)) for v in wanted]
    return [float(c) * voxel_ml for c in counts]


def volume_warning(
    name: str,
    volume_ml: float,
    bounds: tuple[float, float],
    spacing_xyz: Sequence[float],
    at_point: bool = False,
) -> Optional[str]:
    """The warning for segment ``name`` of ``volume_ml`` outside ``bounds`` (low, high ml), or
    None when inside or empty. ``spacing_xyz``: the image's voxel size (mm), named in the
    message; ``at_point``: the result of a click (the message then says "at the clicked point",
    which the CLI renames per point)."""
    low, high = bounds
    if volume_ml <= 0.0 or low <= volume_ml <= high:
        return None
    what = f"The {name} {AT_POINT}" if at_point else f"The '{name}' segment"
    spacing = " x ".join(f"{s:.3g}" for s in spacing_xyz)
    header = f"a wrong voxel spacing in the image header (it says {spacing} mm"
    if volume_ml > high:
        return (
            f"{what} is {volume_ml:.0f} ml, more than the {high:g} ml a real {name} reaches "
            f"(plausible range {low:g}-{high:g} ml). Likely causes: {header}; compare it with "
            "the scanner's slice thickness and pixel size), or unusual anatomy (a markedly "
            "enlarged organ or lesion). Check the header and the result before using this volume."
        )
    return (
        f"{what} is {volume_ml:.3g} ml, less than the {low:g} ml expected (plausible range "
        f"{low:g}-{high:g} ml). Likely causes: the image shows only part of it (a partial "
        f"field of view or region of interest), {header}), or unusual anatomy. Check the "
        "header and the result before using this volume."
    )


def is_point_volume_warning(text: str) -> bool:
    """Whether ``text`` is a click result's volume warning (:func:`volume_warning` with
    ``at_point``)."""
    return f"{AT_POINT} is " in text and "(plausible range " in text


def check_volumes(
    manifest, labels_zyx: np.ndarray, spacing_xyz: Sequence[float], at_point: bool = False
) -> list[str]:
    """The warnings of the manifest's ``postprocess.plausible_ml`` on a result: at most one per
    label with a range. ``labels_zyx``: the result's (z, y, x) label values on voxels of
    ``spacing_xyz`` (mm); ``at_point``: a click's result. [] when the manifest has no ranges."""
    ranges = (manifest.postprocess or {}).get(KEY)
    if not ranges:
        return []
    judged = [label for label in manifest.labels if label.name in ranges]
    volumes = segment_volumes_ml(labels_zyx, spacing_xyz, [label.value for label in judged])
    found = []
    for label, volume_ml in zip(judged, volumes):
        warning = volume_warning(
            label.name, volume_ml, tuple(ranges[label.name]), spacing_xyz, at_point
        )
        if warning:
            found.append(warning)
    return found
