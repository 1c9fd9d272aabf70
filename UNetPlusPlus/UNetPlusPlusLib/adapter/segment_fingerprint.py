"""Tell a segment the engine wrote from one the user has edited since.

``write_segments`` tags every segment it writes with a fingerprint of its voxels
(:data:`TAG`, a vtkSegment tag, saved with the scene and in ``.seg.nrrd``). Before a rerun with
"Replace segments of the same name" replaces a segment, the fingerprint is computed again from
the segment's current binary labelmap: a segment painted, erased, smoothed or otherwise changed
in Segment Editor since (or one the user made, with no tag) no longer matches and is kept.

The fingerprint is the sha256 of the voxels of ``label value`` cropped to their bounding box,
that box's position in the labelmap's IJK index space and the image-to-world (IJK-to-RAS)
matrix rounded to 1e-4 mm: the same voxels on the same grid give the same fingerprint whatever
the labelmap's extent (Slicer crops or pads extents on save, load and when layers are merged).
A change of grid (e.g. a new reference geometry) counts as an edit: the safe side.
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


def labelmap_fingerprint(image, label_value: int) -> str:
    """The fingerprint of the voxels equal to ``label_value`` in a ``vtkOrientedImageData``."""
    import vtk

    array = array_from_oriented_image(image) == int(label_value)
    matrix = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(matrix)
    elements = np.array([matrix.GetElement(r, c) for r in range(3) for c in range(4)])
    digest = hashlib.sha256(np.round(elements, 4).astype("<f8").tobytes())
    if array.any():
        x0, _, y0, _, z0, _ = image.GetExtent()
        nonzero = [np.flatnonzero(array.any(axis=axes)) for axes in ((1, 2), (0, 2), (0, 1))]
        (zl, zh), (yl, yh), (xl, xh) = [(int(n[0]), int(n[-1]) + 1) for n in nonzero]
        box = array[zl:zh, yl:yh, xl:xh]
        corner = (x0 + xl, y0 + yl, z0 + zl, *box.shape)
        digest.update(np.asarray(corner, "<i8").tobytes())
        digest.update(np.packbits(box).tobytes())
    return digest.hexdigest()


def segment_fingerprint(segment, representation: str) -> Optional[str]:
    """The fingerprint of ``segment``'s binary labelmap, or None when it has none."""
    image = segment.GetRepresentation(representation)
    if image is None:
        return None
    return labelmap_fingerprint(image, segment.GetLabelValue())


def stamp(segment, representation: str) -> None:
    """Record the fingerprint of the segment as written by the engine in its :data:`TAG`."""
    segment.SetTag(TAG, segment_fingerprint(segment, representation) or "")
    segment.SetTag(NAME_TAG, segment.GetName())


def is_unchanged(segment, representation: str) -> bool:
    """True when ``segment`` carries the engine's tag, its voxels still match it and it still
    has the name the engine gave it (segments written before :data:`NAME_TAG`: voxels only)."""
    import vtk

    tagged = vtk.reference("")  # vtkSegment::GetTag(tag, std::string& value) -> found
    if not segment.GetTag(TAG, tagged) or not str(tagged):
        return False
    written = vtk.reference("")
    if segment.GetTag(NAME_TAG, written) and str(written) != segment.GetName():
        return False
    return segment_fingerprint(segment, representation) == str(tagged)
