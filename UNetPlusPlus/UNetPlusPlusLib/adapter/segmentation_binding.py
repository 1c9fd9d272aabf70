"""Which volume a segmentation node belongs to: results never go into another volume's node.

Slicer binds a segmentation to a volume in two ways, both set by
``vtkMRMLSegmentationNode::SetReferenceImageGeometryParameterFromVolumeNode``
(Libs/MRML/Core/vtkMRMLSegmentationNode.cxx): the node reference of role
``GetReferenceImageGeometryReferenceRole()`` ("referenceImageGeometryRef") to the volume, and
the segmentation's "ReferenceImageGeometry" conversion parameter (the volume's IJK-to-RAS
matrix and extent, serialized by ``vtkSegmentationConverter::SerializeImageGeometry``; a
.seg.nrrd file keeps it, not the reference).

A node is the segmented volume's when its reference is that volume and its reference
geometry, if it has one, is that volume's grid now; without a reference, when its reference
geometry is that volume's grid; a node with neither (a new, empty segmentation the user made)
is nobody's, and the writer binds it to the volume it segments.

The reference alone is not enough: a volume cropped or resampled in place (the same node, a new
grid) keeps the references to it, while the segmentation's reference geometry, the grid its
segments are edited and exported on, stays the old one. Segments written there for the new grid
would be resampled onto the old one by the Segment Editor and on export (cut off where the grids
differ, blurred across an oblique direction), so such a node is another grid's: the result
goes into a new node, with a warning (segmentation_writer.write_segments, ``rebound``).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import slicer
import vtk

from .geometry import world_ijk_to_ras

#: Grids whose voxel corners and axes agree within this (mm) are the same grid.
GRID_TOLERANCE_MM = 1e-3


def reference_volume(segmentation_node):
    """The volume node the segmentation is bound to (its reference image geometry node
    reference), or None (no reference, or the volume was removed from the scene)."""
    role = slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole()
    return segmentation_node.GetNodeReference(role)


def reference_grid(segmentation_node) -> Optional[tuple[np.ndarray, tuple[int, int, int]]]:
    """The segmentation's reference image geometry: (4x4 IJK-to-RAS at its first voxel,
    (i, j, k) voxel counts), or None when it has none (or it does not parse)."""
    name = slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
    text = segmentation_node.GetSegmentation().GetConversionParameter(name)
    if not text:
        return None
    matrix, extent = vtk.vtkMatrix4x4(), [0, -1, 0, -1, 0, -1]
    if not slicer.vtkSegmentationConverter.DeserializeImageGeometry(text, matrix, extent):
        return None
    ijk_to_ras = np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])
    start = np.array(extent[0::2], dtype=np.float64)
    ijk_to_ras[:3, 3] += ijk_to_ras[:3, :3] @ start
    counts = tuple(int(extent[2 * a + 1] - extent[2 * a] + 1) for a in range(3))
    return ijk_to_ras, counts


def volume_grid(volume_node) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The volume's grid as :func:`reference_grid` gives it (world RAS: a parent transform is
    applied, as Slicer does for a segmentation that is under none)."""
    extent = volume_node.GetImageData().GetExtent()
    counts = tuple(int(extent[2 * a + 1] - extent[2 * a] + 1) for a in range(3))
    return world_ijk_to_ras(volume_node), counts


def other_volume_binding(segmentation_node, volume_node) -> Optional[str]:
    """Why ``segmentation_node`` belongs to another volume than ``volume_node``, or None when
    it may take ``volume_node``'s segments (bound to it and to its grid now, to its grid, or
    to nothing).

    The reason names what it is bound to: "it was made for volume 'A'"; "it was made for
    volume 'A' on another grid (20 x 20 x 10 voxels ...); the volume was cropped or resampled
    since"; without a reference, "its reference geometry is another grid (20 x 20 x 10 voxels
    ...)".
    """
    bound = reference_volume(segmentation_node)
    if bound is not None and bound.GetID() != volume_node.GetID():
        return f"it was made for volume '{bound.GetName()}'"
    grid = reference_grid(segmentation_node)
    if grid is None or volume_node.GetImageData() is None:
        return None
    matrix, counts = grid
    own_matrix, own_counts = volume_grid(volume_node)
    if counts == own_counts and np.allclose(matrix, own_matrix, rtol=0, atol=GRID_TOLERANCE_MM):
        return None
    origin = ", ".join(f"{v:.1f}" for v in matrix[:3, 3])
    other = f"{' x '.join(map(str, counts))} voxels from ({origin}) mm RAS"
    if bound is not None:  # the same volume node, on another grid now
        return (
            f"it was made for volume '{bound.GetName()}' on another grid ({other}); the volume "
            "was cropped or resampled since"
        )
    return f"its reference geometry is another grid ({other})"
