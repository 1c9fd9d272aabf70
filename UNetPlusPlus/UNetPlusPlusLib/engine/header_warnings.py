"""Warnings about a header whose geometry no scan has (``sanity.check_header`` adds them).

An image saved from its array alone (numpy to SimpleITK, nibabel or an NRRD without a header)
gets 1 x 1 x 1 mm voxels at origin 0 with no rotation. The model then sees the anatomy at the
wrong size and reports wrong volumes with no sign of doubt: the example CT (3 mm voxels) saved
that way gave "liver 4.448 ml" (tester 8). A spacing too large makes the field of view wider
than any scanner's: the same CT with 9 mm voxels in its header (1.1 m wide) gave "liver
22074.12 ml". numpy only.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

DEFAULT_GEOMETRY_WARNING = (
    "{source} has the geometry of an image saved without one (1 x 1 x 1 mm voxels, origin 0, "
    "no rotation): unless its voxels really are 1 mm, the model sees the anatomy at the wrong "
    "size and every volume in the result is wrong; save it with its scan's spacing, origin and "
    "direction (for example SimpleITK's CopyInformation)."
)


#: No CT or MR scanner's field of view is wider than about 0.8 m across the patient (bores are
#: 0.6-0.8 m); above this, left-right or anterior-posterior, the spacing in the header is wrong.
MAX_SCAN_WIDTH_MM = 900.0
#: Clinical CT and MR voxels are no finer than about 0.15-0.2 mm (a 512 or 1024 matrix over the
#: smallest field of view); the shared data's finest is 0.45 mm. A 0.05 mm spacing in the demo
#: CT's header (a body 6 mm across) gave "liver 0.004 ml" with only the thin-input warning.
FINEST_SCAN_SPACING_MM = 0.1
#: No scan is longer (head-foot) than a person is tall: whole-body CT and MR cover at most about
#: 2 m of table travel. A 50 mm slice spacing in a header made a 5.6 m tall image that only got
#: the thick-voxel warning (tester 10).
MAX_SCAN_LENGTH_MM = 2500.0


def implausible_geometry(
    size_xyz: Sequence[int],
    spacing: Sequence[float],
    origin: Sequence[float],
    direction: np.ndarray,
    source: str,
) -> list[str]:
    """Warnings for geometry no scan has. ``size_xyz`` in voxels, ``spacing`` and ``origin`` in
    mm, ``direction`` the 3x3 matrix (already checked to be orthonormal); ``source`` names the
    image in the messages. Never raises."""
    warnings = []
    default = np.all(np.asarray(spacing, float) == 1.0) and not np.any(np.asarray(origin, float))
    if default and np.array_equal(np.asarray(direction, float), np.eye(3)):
        warnings.append(DEFAULT_GEOMETRY_WARNING.format(source=source))
    field = np.abs(np.asarray(direction, float)) @ (np.asarray(size_xyz) * np.asarray(spacing))
    voxels = " x ".join(f"{v:.3g}" for v in spacing)
    wrong = (
        f"its voxel spacing ({voxels} mm) is probably wrong, and so are the result's size and "
        "volumes; fix the spacing in the header."
    )
    if np.min(spacing) < FINEST_SCAN_SPACING_MM:
        warnings.append(
            f"{source} has voxels of {voxels} mm, finer than any clinical CT or MR scanner "
            f"gives ({FINEST_SCAN_SPACING_MM:g} mm at the finest), so it spans only "
            f"{' x '.join(f'{v:.3g}' for v in field)} mm: unless it is a specimen or "
            "micro-CT image, the spacing in the header is in a wrong unit or was lost in a "
            "conversion, and the result's size and volumes are wrong; fix the spacing in the "
            "header."
        )
    if max(field[0], field[1]) > MAX_SCAN_WIDTH_MM:
        warnings.append(
            f"{source} is {field[0] / 1000:.2g} m wide (left-right) and {field[1] / 1000:.2g} m "
            f"deep (front-back), more than any scanner's field of view (about 0.8 m at most): "
            + wrong
        )
    if field[2] > MAX_SCAN_LENGTH_MM:
        warnings.append(
            f"{source} is {field[2] / 1000:.2g} m long (head-foot), longer than any patient and "
            "any scan (about 2 m at most): " + wrong
        )
    return warnings
