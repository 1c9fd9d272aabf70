"""A NIfTI-1 header whose two transforms (sform and qform) disagree.

A NIfTI-1 header may place its voxels twice: the qform (a quaternion, ``qform_code`` > 0) and
the sform (three rows of an affine matrix, ``sform_code`` > 0). ITK 5.4's NiftiImageIO
(``SetImageIOOrientationFromNIfTI``), hence SimpleITK, 3D Slicer and this engine, uses the
sform when it is orthonormal (after removing its scales) and either the qform code is 0 or the
sform code is 1 (scanner anatomical), or the two are the same within rounding; otherwise the
qform. Both codes above 0 and transforms that place the image differently are a sign of a
broken conversion, and other tools (those that prefer the qform, or the sform) put the image
elsewhere: :func:`transform_warning` says so, never refuses. Tolerated: the float rounding of
the two representations (below :data:`TOLERANCE_MM` at every corner of the image and below
:data:`TOLERANCE_DEGREES`). A header with neither (both codes 0) has no orientation at all: ITK
then places it at origin 0 with the LPS axes, and :func:`transform_warning` says that too.
struct and numpy only.

Source followed: nifti1.h (header layout), nifti1_io.c ``nifti_quatern_to_mat44``, ITK 5.4
Modules/IO/NIFTI/src/itkNiftiImageIO.cxx.
"""

from __future__ import annotations

import struct
from typing import NamedTuple, Optional

import numpy as np

#: Largest distance (mm) between the two transforms' positions of a corner voxel, and largest
#: rotation (degrees) between their axes, that is float rounding, not a disagreement.
TOLERANCE_MM = 0.1
TOLERANCE_DEGREES = 0.1
#: sform_code of "scanner anatomical" coordinates, which ITK prefers to the qform.
SCANNER_ANAT = 1


class Transforms(NamedTuple):
    """The two 4x4 voxel-to-RAS+ (NIfTI) matrices of a header, with their codes and the size."""

    qform: np.ndarray
    sform: np.ndarray
    qform_code: int
    sform_code: int
    size: tuple[int, int, int]


def header_transforms(header: bytes) -> Optional[Transforms]:
    """The qform and sform of a NIfTI-1 header (either byte order, at least 348 bytes), or None
    for another header (NIfTI-2, ANALYZE, too short)."""
    if len(header) < 348:
        return None
    for order in ("<", ">"):
        if struct.unpack(order + "i", header[:4])[0] == 348:
            break
    else:
        return None
    if not _nifti1_magic(header[344:348]):
        return None  # ANALYZE 7.5: nifticlib (ITK) reads neither transform, whatever they hold
    dims = struct.unpack(order + "8h", header[40:56])
    pixdim = struct.unpack(order + "8f", header[76:108])
    qform_code, sform_code = struct.unpack(order + "2h", header[252:256])
    b, c, d, qx, qy, qz = struct.unpack(order + "6f", header[256:280])
    rows = np.array(struct.unpack(order + "12f", header[280:328]), dtype=np.float64)
    size = tuple(max(int(n), 1) for n in dims[1:4])
    qform = _quatern_to_mat44(b, c, d, (qx, qy, qz), pixdim)
    sform = np.eye(4)
    sform[:3] = rows.reshape(3, 4)
    return Transforms(qform, sform, int(qform_code), int(sform_code), size)  # type: ignore[arg-type]


def _nifti1_magic(magic: bytes) -> bool:
    """NIfTI-1's magic ("ni1\\0" of a .hdr/.img pair, "n+1\\0" of a .nii), tested as
    nifticlib's NIFTI_VERSION does (a version digit 1..9); anything else is ANALYZE 7.5."""
    return (
        len(magic) == 4
        and magic[:1] == b"n"
        and magic[1:2] in (b"i", b"+")
        and b"1" <= magic[2:3] <= b"9"
        and magic[3:] == b"\0"
    )


def _quatern_to_mat44(b: float, c: float, d: float, offset, pixdim) -> np.ndarray:
    """nifticlib's ``nifti_quatern_to_mat44``: the qform's 4x4 matrix."""
    b, c, d = float(b), float(c), float(d)
    a = 1.0 - (b * b + c * c + d * d)
    if a < 1.0e-7:  # a 180-degree rotation: normalise (b, c, d)
        norm = 1.0 / np.sqrt(b * b + c * c + d * d)
        a, b, c, d = 0.0, b * norm, c * norm, d * norm
    else:
        a = float(np.sqrt(a))
    rotation = np.array(
        [
            [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
            [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
            [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b],
        ]
    )
    steps = [float(v) if v > 0 else 1.0 for v in pixdim[1:4]]
    if pixdim[0] < 0:  # qfac
        steps[2] = -steps[2]
    matrix = np.eye(4)
    matrix[:3, :3] = rotation * np.asarray(steps)
    matrix[:3, 3] = [float(v) for v in offset]
    return matrix


def _orthonormal(matrix: np.ndarray) -> bool:
    """ITK's test of the sform: its 3x3 with unit columns has its transpose as inverse."""
    part = matrix[:3, :3]
    norms = np.linalg.norm(part, axis=0)
    if not np.all(np.isfinite(part)) or np.any(norms == 0):
        return False
    unit = part / norms
    return bool(np.allclose(unit @ unit.T, np.eye(3), atol=1.0e-4))


def itk_uses_sform(transforms: Transforms) -> bool:
    """Whether ITK 5.4 places the image with the sform (else the qform), for a header whose
    two transforms differ beyond rounding."""
    if transforms.sform_code <= 0 or not _orthonormal(transforms.sform):
        return False
    return transforms.qform_code <= 0 or transforms.sform_code == SCANNER_ANAT


class Disagreement(NamedTuple):
    """How far apart the two transforms place the image: the largest distance (mm) between
    their positions of a corner voxel, of the first voxel, the rotation (degrees) between their
    axes, and whether one is the other's mirror image (axes swapped or one flipped)."""

    corner_mm: float
    origin_mm: float
    degrees: float
    mirrored: bool


def disagreement(transforms: Transforms) -> Disagreement:
    """The difference between the qform and the sform of ``transforms``."""
    corners = np.array(
        [[i, j, k, 1.0] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=np.float64
    )
    corners[:, :3] *= np.asarray(transforms.size, dtype=np.float64) - 1
    apart = np.linalg.norm((corners @ transforms.sform.T - corners @ transforms.qform.T), axis=1)
    axes = [_polar(transforms.sform[:3, :3]), _polar(transforms.qform[:3, :3])]
    turn = axes[0].T @ axes[1]
    mirrored = bool(np.linalg.det(turn) < 0)
    cosine = (np.trace(turn) - 1.0) / 2.0 if not mirrored else -1.0
    degrees = float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))
    return Disagreement(float(apart.max()), float(apart[0]), degrees, mirrored)


def _polar(part: np.ndarray) -> np.ndarray:
    """The rotation (or rotation and mirror) nearest a 3x3 matrix: U V^T of its SVD."""
    u, _, vt = np.linalg.svd(part)
    return u @ vt


def transform_warning(header: bytes, source: str) -> Optional[str]:
    """The warning for a NIfTI-1 ``header`` (its first 348 bytes or more) whose sform and qform
    are both set (codes above 0) and place the image differently (beyond TOLERANCE_MM at a
    corner or TOLERANCE_DEGREES), or are both unset (codes 0), naming ``source``; None
    otherwise. Never raises for a
    header it cannot parse (None)."""
    transforms = header_transforms(header)
    if transforms is not None and transforms.qform_code <= 0 and transforms.sform_code <= 0:
        return _no_transform_warning(source)
    if transforms is None or transforms.qform_code <= 0 or transforms.sform_code <= 0:
        return None
    with np.errstate(all="ignore"):
        if not (np.all(np.isfinite(transforms.sform)) and np.all(np.isfinite(transforms.qform))):
            return None  # a non-finite header is refused by the header check
        found = disagreement(transforms)
    if found.corner_mm < TOLERANCE_MM and found.degrees < TOLERANCE_DEGREES and not found.mirrored:
        return None
    if itk_uses_sform(transforms):
        used, other = "sform", "qform"
        why = "orthonormal and coded as scanner coordinates (sform_code 1)"
    else:
        used, other = "qform", "sform"
        why = (
            "its sform is not orthonormal (sheared or scaled unevenly)"
            if not _orthonormal(transforms.sform)
            else f"its sform_code is {transforms.sform_code}, not scanner coordinates (1)"
        )
    turn = (
        "one is the other's mirror image (axes swapped or flipped)"
        if found.mirrored
        else (f"their axes {found.degrees:.1f} degrees apart")
    )
    return (
        f"{source}: its NIfTI header holds two transforms that disagree: the sform and the qform "
        f"place the image up to {found.corner_mm:.1f} mm apart (first voxel "
        f"{found.origin_mm:.1f} mm apart; {turn}). ITK, hence 3D Slicer and this program, uses "
        f"the {used} ({why}), so the result lines up with the image as Slicer shows it; a tool "
        f"that reads the {other} places both elsewhere. Two transforms that disagree usually "
        "mean a broken conversion: check that the anatomy is where and how it should be, and "
        "save the image again with one transform."
    )


def _no_transform_warning(source: str) -> str:
    """Both codes 0 (NIfTI-1 "method 1", e.g. an old Analyze conversion): no orientation."""
    return (
        f"{source}: its NIfTI header places the image nowhere (qform_code and sform_code are "
        "both 0), so its orientation is unknown. ITK, hence 3D Slicer and this program, puts "
        "its first voxel at 0 with the axes of LPS (left, posterior, superior), which may "
        "mirror the anatomy left-right or front-back and puts the result elsewhere than the "
        "scan it came from: check that the anatomy is where and how it should be, or convert "
        "the image again from its source (the DICOM series) with its orientation."
    )
