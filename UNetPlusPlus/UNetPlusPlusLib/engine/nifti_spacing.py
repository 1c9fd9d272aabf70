"""The voxel spacing of a NIfTI-1 (or ANALYZE 7.5) header, which ITK would read wrongly.

ITK 5.4's NiftiImageIO (hence SimpleITK, 3D Slicer and this engine) takes the spacing from
``pixdim[1..3]`` and never from the sform or the qform (measured: a header with ``pixdim[3]``
= 0 and an sform of 3 mm steps is read with 1 mm slices, the sform's scale only raising ITK's
"unexpected scales in sform" on stderr). nifticlib replaces a ``pixdim`` that is 0, NaN or
infinite by 1 (``nifti_convert_nhdr2nim``), so such a file was read with 1 mm voxels and
segmented: the example CT with ``pixdim[3]`` = 0 gave 413 ml instead of 1032 ml, exit 0.

- :func:`spacing_problem`: 0, NaN or infinite ``pixdim`` of a spatial axis is refused, whatever
  the transforms say, since no transform changes what ITK reads. A negative ``pixdim`` is
  refused too: ITK makes it positive and flips that axis, against the sform (the example's
  voxel (10, 10, 10) moved 60 mm, mirrored) and, with the qform alone, against nifticlib's
  own qform (1 mm, not flipped; nibabel refuses such a qform): the example CT's liver then lay
  67 mm left of the midline, which only the anatomy check noticed.
- :func:`sform_scale_warning`: an sform whose column lengths differ from ``pixdim``: ITK's raw
  "unexpected scales in sform" (hidden by the CLI) as one line naming both.

Source followed: nifti1.h (header layout), nifti1_io.c ``nifti_convert_nhdr2nim``, ITK 5.4
Modules/IO/NIFTI/src/itkNiftiImageIO.cxx. struct and numpy only (and :mod:`.nifti_open`).
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np

from .nifti_open import header_bytes

#: Relative difference between an sform column's length and its pixdim that is float rounding.
SCALE_TOLERANCE = 1.0e-3
_AXES = "ijk"


class HeaderSpacing(NamedTuple):
    """``pixdim[1..n]`` of the spatial axes present (n = min(dim[0], 3)), the sform's column
    lengths (mm, None without an sform: ``sform_code`` 0 or an ANALYZE header)."""

    pixdim: tuple[float, ...]
    sform_steps: Optional[tuple[float, float, float]]


def header_spacing(header: bytes) -> Optional[HeaderSpacing]:
    """The spacing fields of a NIfTI-1 or ANALYZE 7.5 header (either byte order, at least 348
    bytes); None for another header (NIfTI-2 is refused elsewhere)."""
    if len(header) < 348:
        return None
    for order in ("<", ">"):
        if struct.unpack(order + "i", header[:4])[0] == 348:
            break
    else:
        return None
    dims = struct.unpack(order + "8h", header[40:56])
    ndim = min(max(int(dims[0]), 0), 3)
    pixdim = tuple(float(v) for v in struct.unpack(order + "8f", header[76:108])[1 : 1 + ndim])
    nifti = header[344:345] == b"n" and header[345:346] in (b"i", b"+")
    sform_code = struct.unpack(order + "h", header[254:256])[0]
    steps = None
    if nifti and sform_code > 0:
        rows = np.array(struct.unpack(order + "12f", header[280:328]), dtype=np.float64)
        norms = np.linalg.norm(rows.reshape(3, 4)[:, :3], axis=0)
        steps = tuple(float(v) for v in norms)
    return HeaderSpacing(pixdim, steps)  # type: ignore[arg-type]


def spacing_problem(header: bytes, source: str) -> Optional[str]:
    """The refusal message for a header whose ``pixdim`` ITK would read wrongly (see the
    module), naming ``source``; None when the spacing is read as written."""
    spacing = header_spacing(header)
    if spacing is None:
        return None
    bad = [(i, v) for i, v in enumerate(spacing.pixdim) if v == 0 or not math.isfinite(v)]
    if bad:
        fields = ", ".join(f"pixdim[{i + 1}] ({_AXES[i]} axis) = {v:g}" for i, v in bad)
        return (
            f"{source} has no valid voxel spacing: {fields} in its NIfTI header. The image reader "
            "(ITK, as in 3D Slicer) would read 1 mm there whatever the sform or qform say, and "
            "the result would be wrong; write the file again with its real spacing."
        )
    negative = [(i, v) for i, v in enumerate(spacing.pixdim) if v < 0]
    if negative:
        fields = ", ".join(f"pixdim[{i + 1}] ({_AXES[i]} axis) = {v:g}" for i, v in negative)
        against = (
            "against its sform" if spacing.sform_steps is not None else "(nifticlib reads 1 mm)"
        )
        return (
            f"{source} has a negative voxel spacing in its NIfTI header, {fields}: the image "
            f"reader (ITK, as in 3D Slicer) would flip that axis {against}, a mirrored image; "
            "write the file again with positive pixdim values."
        )
    return None


def misread_axes(header: bytes) -> dict[int, float]:
    """Axis (0 = i) -> the spacing (mm) ITK reads there, for each axis whose ``pixdim``
    :func:`spacing_problem` refuses (1 for 0, NaN, inf; the magnitude of a negative one)."""
    spacing = header_spacing(header)
    if spacing is None:
        return {}
    return {
        i: 1.0 if v == 0 or not math.isfinite(v) else -v
        for i, v in enumerate(spacing.pixdim)
        if v <= 0 or not math.isfinite(v)
    }


def sform_scale_warning(header: bytes, source: str) -> Optional[str]:
    """One line when the sform's column lengths differ from ``pixdim`` beyond rounding: ITK
    reads the spacing from ``pixdim``; None otherwise."""
    spacing = header_spacing(header)
    if spacing is None or spacing.sform_steps is None or len(spacing.pixdim) != 3:
        return None
    pairs = list(zip(spacing.sform_steps, (abs(v) for v in spacing.pixdim)))
    if all(abs(s - p) <= SCALE_TOLERANCE * max(p, 1e-6) for s, p in pairs):
        return None
    sform = " x ".join(f"{s:.4g}" for s, _ in pairs)
    pixdim = " x ".join(f"{p:.4g}" for _, p in pairs)
    return (
        f"{source}: its NIfTI sform has {sform} mm voxels but its pixdim {pixdim} mm; the image "
        "reader (ITK, as in 3D Slicer) uses the pixdim spacing, other tools may use the sform's "
        "and show the image at another size."
    )


def header_spacing_problem(header: Path, source: str) -> tuple[Optional[str], dict[int, float]]:
    """(:func:`spacing_problem`'s message naming ``source``, or None; :func:`misread_axes`) for
    the NIfTI-1 header in file ``header``; (None, {}) when the file cannot be read."""
    try:
        raw = header_bytes(header)
    except (EOFError, OSError, zlib.error):
        return None, {}
    return spacing_problem(raw, source), misread_axes(raw)
