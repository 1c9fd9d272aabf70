"""Tell a segment the engine wrote from one the user has edited since.

``write_segments`` tags every segment it writes with a fingerprint of its voxels
(:data:`TAG`, a vtkSegment tag, saved with the scene and in ``.seg.nrrd``). Before a rerun with
"Replace segments of the same name" replaces a segment, the fingerprint is computed again from
the segment's current binary labelmap: a segment painted, erased, smoothed or otherwise changed
in Segment Editor since (or one the user made, with no tag) no longer matches and is kept; so
is one renamed, recoloured or given another terminology since (:data:`NAME_TAG`,
:data:`LOOK_TAG`).

The fingerprint is the sha256 of the voxels of ``label value`` cropped to their bounding box,
that box's position in the labelmap's IJK index space and the image-to-world (IJK-to-RAS)
matrix rounded to 1e-4 mm: the same voxels on the same grid give the same fingerprint whatever
the labelmap's extent (Slicer crops or pads extents on save, load and when layers are merged).

A segment only re-gridded since, not edited (Segment Editor's "Specify geometry" resamples
every segment onto the new grid, nearest neighbour), is unchanged too: the grid it was written
on is recorded (:data:`GRID_TAG`), and a segment on another grid is unchanged when, resampled
back onto that grid (nearest neighbour, as Slicer resamples), it has the written fingerprint,
and that, resampled onto its own grid again, gives exactly its voxels: so it is precisely what
the written voxels become on its grid, and one voxel painted or erased on the finer grid is an
edit. A grid coarser than the written one along an axis loses voxels (they do not come back),
so a segment re-gridded onto it counts as edited, as does any change of grid of a segment
written before :data:`GRID_TAG`: the safe side (kept, never replaced).
"""

from __future__ import annotations

import hashlib
from typing import Optional

import numpy as np

from .geometry import array_from_oriented_image

TAG = "UNetPlusPlus.VoxelFingerprint"
#: The name the engine gave the segment: a segment renamed since (e.g. "enhancing tumor" renamed
#: "edema" by the user) is an edit too, although its voxels match (tester 13).
NAME_TAG = "UNetPlusPlus.WrittenName"
#: The grid the engine wrote the segment on: its labelmap's 3x4 image-to-world (IJK-to-RAS)
#: matrix, row by row, in mm (:func:`grid_text`).
GRID_TAG = "UNetPlusPlus.WrittenGrid"
#: The colour and terminology the engine gave the segment (:func:`look_text`): one recoloured
#: or coded as another structure in Segment Editor since is an edit too, as a renamed one is.
LOOK_TAG = "UNetPlusPlus.WrittenLook"


def _label_box(image, label_value: int) -> Optional[tuple[np.ndarray, tuple[int, int, int]]]:
    """The voxels equal to ``label_value`` in a ``vtkOrientedImageData`` cropped to their
    bounding box, as a (z, y, x) bool array, and the (i, j, k) index of its first voxel in
    the image's index space; None when there are none."""
    array = array_from_oriented_image(image) == int(label_value)
    if not array.any():
        return None
    x0, _, y0, _, z0, _ = image.GetExtent()
    nonzero = [np.flatnonzero(array.any(axis=axes)) for axes in ((1, 2), (0, 2), (0, 1))]
    (zl, zh), (yl, yh), (xl, xh) = [(int(n[0]), int(n[-1]) + 1) for n in nonzero]
    return array[zl:zh, yl:yh, xl:xh], (x0 + xl, y0 + yl, z0 + zl)


def labelmap_fingerprint(image, label_value: int) -> str:
    """The fingerprint of the voxels equal to ``label_value`` in a ``vtkOrientedImageData``."""
    elements = image_to_world(image)[:3].ravel()
    digest = hashlib.sha256(np.round(elements, 4).astype("<f8").tobytes())
    labelled = _label_box(image, label_value)
    if labelled is not None:
        box, first = labelled
        digest.update(np.asarray((*first, *box.shape), "<i8").tobytes())
        digest.update(np.packbits(box).tobytes())
    return digest.hexdigest()


def placed_fingerprint(image, label_value: int) -> str:
    """A fingerprint of the voxels equal to ``label_value`` in a ``vtkOrientedImageData`` and
    of where they are in the world, whatever the labelmap's index space: the image-to-world
    matrix at the first voxel of their bounding box (rounded to 1e-4 mm), the box's shape and
    its bits. A labelmap indexed from a volume's extent start (Crop Volume, a NRRD region) and
    the same voxels indexed from 0 give the same one (:func:`labelmap_fingerprint`, the
    segments' edit tag, holds the index and differs). An empty one holds the axes only."""
    matrix = image_to_world(image)
    labelled = _label_box(image, label_value)
    if labelled is None:
        return hashlib.sha256(np.round(matrix[:3, :3], 4).astype("<f8").tobytes()).hexdigest()
    box, first = labelled
    matrix[:3, 3] += matrix[:3, :3] @ np.asarray(first, dtype=np.float64)
    digest = hashlib.sha256(np.round(matrix[:3], 4).astype("<f8").tobytes())
    digest.update(np.asarray(box.shape, "<i8").tobytes())
    digest.update(np.packbits(box).tobytes())
    return digest.hexdigest()


def image_to_world(image) -> np.ndarray:
    """The 4x4 image-to-world (IJK-to-RAS at index 0) matrix of a ``vtkOrientedImageData``."""
    import vtk

    matrix = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def grid_text(matrix: np.ndarray) -> str:
    """A 4x4 image-to-world matrix as :data:`GRID_TAG` text: its first 3 rows, exactly."""
    return " ".join(repr(float(v)) for v in np.asarray(matrix)[:3].ravel())


def grid_from_text(text: str) -> Optional[np.ndarray]:
    """The 4x4 matrix of :func:`grid_text`, or None when ``text`` is no such matrix."""
    try:
        numbers = [float(v) for v in text.split()]
    except ValueError:
        return None
    if len(numbers) != 12 or not np.all(np.isfinite(numbers)):
        return None
    matrix = np.eye(4)
    matrix[:3] = np.reshape(numbers, (3, 4))
    return matrix if abs(np.linalg.det(matrix[:3, :3])) > 0 else None


def _mask_image(image, label_value: int, margin: int = 2):
    """The voxels equal to ``label_value`` as a 0/1 uint8 image cropped to their bounding box
    and then padded by ``margin`` voxels of 0, on ``image``'s grid (same matrix, an extent in
    its index space); None when there are none. The margin keeps nearest-neighbour resampling
    from clamping points just outside the box to its edge (vtkImageReslice's border), which
    labels voxels that a resampling of the whole labelmap leaves empty."""
    import slicer
    from vtkmodules.util import numpy_support

    labelled = _label_box(image, label_value)
    if labelled is None:
        return None
    box, first = np.pad(labelled[0], margin).astype(np.uint8), labelled[1]
    low = np.array(first) - margin
    high = low + np.array(box.shape[::-1]) - 1
    mask = slicer.vtkOrientedImageData()
    mask.SetExtent(*(int(v) for pair in zip(low, high) for v in pair))
    mask.GetPointData().SetScalars(numpy_support.numpy_to_vtk(box.ravel(), deep=True))
    mask.SetImageToWorldMatrix(_vtk_matrix(image_to_world(image)))
    return mask


def _vtk_matrix(matrix: np.ndarray):
    import vtk

    result = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            result.SetElement(r, c, float(matrix[r, c]))
    return result


def _resampled(image, matrix: np.ndarray):
    """``image`` resampled onto the grid of image-to-world ``matrix`` (nearest neighbour, the
    extent padded to hold it, as Slicer's vtkOrientedImageDataResample does); None on failure."""
    import slicer

    reference = slicer.vtkOrientedImageData()  # an empty extent: the output holds the input
    reference.SetImageToWorldMatrix(_vtk_matrix(matrix))
    output = slicer.vtkOrientedImageData()
    resample = slicer.vtkOrientedImageDataResample
    if not resample.ResampleOrientedImageToReferenceOrientedImage(
        image, reference, output, False, True
    ):
        return None
    return output


def is_regridded(image, label_value: int, written: np.ndarray, fingerprint: str) -> bool:
    """Whether the voxels equal to ``label_value`` in ``image`` (a ``vtkOrientedImageData``)
    are exactly what voxels of ``fingerprint`` on the grid of image-to-world matrix
    ``written`` become on ``image``'s grid, nearest neighbour (see the module docstring).
    False when ``image`` is on the written grid (a mismatch there is an edit)."""
    own = image_to_world(image)
    if np.allclose(own, written, rtol=0, atol=1e-9):
        return False
    mask = _mask_image(image, label_value)
    if mask is None:
        return False  # written empty: the fingerprint matched already, or it was edited
    back = _resampled(mask, written)
    if back is None or labelmap_fingerprint(back, 1) != fingerprint:
        return False
    back = _mask_image(back, 1)
    again = _resampled(back, own) if back is not None else None
    return again is not None and labelmap_fingerprint(again, 1) == labelmap_fingerprint(mask, 1)


def segment_fingerprint(segment, representation: str) -> Optional[str]:
    """The fingerprint of ``segment``'s binary labelmap, or None when it has none."""
    image = segment.GetRepresentation(representation)
    if image is None:
        return None
    return labelmap_fingerprint(image, segment.GetLabelValue())


def look_text(segment) -> str:
    """The segment's colour (RGB, 0-1, to 1e-3: a .seg.nrrd keeps it as text) and terminology
    entry (Slicer's terminology tag, as saved), as :data:`LOOK_TAG` holds them: "r g b;entry"."""
    import slicer
    import vtk

    terminology = vtk.reference("")
    segment.GetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), terminology)
    colour = " ".join(f"{float(v):.3f}" for v in segment.GetColor())
    return f"{colour};{terminology}"  # not '|': it ends a tag in a .seg.nrrd


def stamp(segment, representation: str) -> None:
    """Record the fingerprint of the segment as written by the engine in its :data:`TAG`, its
    name in :data:`NAME_TAG`, its colour and terminology in :data:`LOOK_TAG` and its
    labelmap's grid in :data:`GRID_TAG`."""
    segment.SetTag(TAG, segment_fingerprint(segment, representation) or "")
    segment.SetTag(NAME_TAG, segment.GetName())
    segment.SetTag(LOOK_TAG, look_text(segment))
    image = segment.GetRepresentation(representation)
    if image is not None:
        segment.SetTag(GRID_TAG, grid_text(image_to_world(image)))


def is_unchanged(segment, representation: str) -> bool:
    """True when ``segment`` carries the engine's tag, its voxels still match it, or are only
    re-gridded since (:func:`is_regridded`, for segments with a :data:`GRID_TAG`), and it still
    has the name, colour and terminology the engine gave it (segments written before
    :data:`NAME_TAG` or :data:`LOOK_TAG`: without that check)."""
    import vtk

    tagged = vtk.reference("")  # vtkSegment::GetTag(tag, std::string& value) -> found
    if not segment.GetTag(TAG, tagged) or not str(tagged):
        return False
    written = vtk.reference("")
    if segment.GetTag(NAME_TAG, written) and str(written) != segment.GetName():
        return False
    look = vtk.reference("")
    if segment.GetTag(LOOK_TAG, look) and str(look) != look_text(segment):
        return False
    if segment_fingerprint(segment, representation) == str(tagged):
        return True
    grid = vtk.reference("")
    image = segment.GetRepresentation(representation)
    if image is None or not segment.GetTag(GRID_TAG, grid):
        return False
    written = grid_from_text(str(grid))
    if written is None:
        return False
    return is_regridded(image, segment.GetLabelValue(), written, str(tagged))
