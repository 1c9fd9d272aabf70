"""A NRRD header's spatial axes, checked before ITK reads the file.

In the NRRD0004 format (teem.sourceforge.net/nrrd/format.html, "space directions") an axis whose
direction is ``none`` is not spatial (a vector, colour, list or time axis). ITK's NrrdImageIO
reads a ``none`` on a spatial axis (kind ``domain`` or ``space``, or no kind given) without a
word and makes up that axis's geometry: a spacing of 1 mm and an identity direction. A 3 mm
slice spacing then becomes 1 mm, and the output lies at a wrong place in patient space in
silence. :func:`check_nrrd_geometry` refuses such a header instead.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import UNetPlusPlusError

#: NRRD kinds of the axes that are not spatial: a ``none`` direction is right for them.
_RANGE_KINDS = {
    "time", "list", "point", "vector", "covariant-vector", "normal", "stub", "scalar", "complex",
    "2-vector", "3-color", "rgb-color", "hsv-color", "xyz-color", "4-color", "rgba-color",
    "3-vector", "3-gradient", "3-normal", "4-vector", "quaternion", "2d-symmetric-matrix",
    "2d-masked-symmetric-matrix", "2d-matrix", "2d-masked-matrix", "3d-symmetric-matrix",
    "3d-masked-symmetric-matrix", "3d-matrix", "3d-masked-matrix",
}  # fmt: skip
_DIRECTION = re.compile(r"\([^)]*\)|none", re.IGNORECASE)


def check_nrrd_geometry(path: Path, fields: dict[str, str]) -> None:
    """Raise UNetPlusPlusError when the NRRD header ``fields`` (lower-case keys, as parsed from
    ``path``) give ``none`` as the space direction of a spatial axis, whose spacing and
    direction ITK would then make up. Headers without ``space directions`` pass."""
    value = fields.get("space directions")
    if not value:
        return
    directions = _DIRECTION.findall(value)
    kinds = fields.get("kinds", "").split()
    if len(kinds) != len(directions):
        kinds = ["domain"] * len(directions)  # no kinds (or unparsable): every axis is domain
    lost = [
        axis
        for axis, (direction, kind) in enumerate(zip(directions, kinds))
        if direction.lower() == "none" and kind.lower() not in _RANGE_KINDS
    ]
    if lost:
        axes = ", ".join(str(axis) for axis in lost)
        raise UNetPlusPlusError(
            f"Cannot read {path}: its header gives no space direction ('none' in 'space "
            f"directions: {value}') for spatial axis {axes}, so its voxel spacing and "
            "orientation are unknown (a reader would assume 1 mm and an identity direction). "
            "Fix the header (or export the volume again from its source)."
        )
