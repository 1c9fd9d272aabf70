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

Unless it is the segmentation's geometry that changed, not the volume's: Segment Editor's
"Specify geometry" (vtkSlicerSegmentationGeometryLogic: e.g. an oversampled grid for finer
editing) rewrites the reference geometry, resamples the segments and sets the reference to
its source node (a volume, a segmentation, a model or an ROI). What changed is told by the
volume's grid that UNet++ recorded on the node when it last wrote there
(:data:`VOLUME_GRID_ATTRIBUTE`, saved with the scene): the volume still on that grid, the
user chose the segmentation's grid, and the result goes into it, resampled onto that grid
(segmentation_writer); the volume on another grid, it was cropped, resampled or moved
(:func:`grid_change` says which). A node UNet++
never wrote to (no record) is taken as re-gridded by the user when its reference geometry is
a grid "Specify geometry" makes from that volume now (:func:`is_field_of_view`: same axes,
same box within one voxel, first voxel corner where that dialog puts it within
:data:`GRID_TOLERANCE_MM`); a crop moves the box, and a volume moved since, even by a
fraction of a voxel, moves the corner, so either is another grid's.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import slicer
import vtk

from ..errors import UNetPlusPlusError
from .geometry import node_to_world_matrix, world_ijk_to_ras
from .voxel_version import voxels_version

#: Grids whose voxel corners and axes agree within this (mm) are the same grid.
GRID_TOLERANCE_MM = 1e-3
#: Segmentation node attribute: the segmented volume's grid (:func:`grid_text`) when UNet++
#: last wrote to the node.
VOLUME_GRID_ATTRIBUTE = "UNetPlusPlus.VolumeGrid"

Grid = tuple[np.ndarray, tuple[int, int, int]]


def reference_volume(segmentation_node):
    """The volume node the segmentation is bound to (its reference image geometry node
    reference), or None (no reference, the volume was removed from the scene, or the
    reference is no volume: "Specify geometry" from an ROI, a model or another segmentation
    refers to that node, which names no patient)."""
    role = slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole()
    node = segmentation_node.GetNodeReference(role)
    return node if node is not None and node.IsA("vtkMRMLVolumeNode") else None


def reference_grid(segmentation_node) -> Optional[Grid]:
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


def volume_grid(volume_node) -> Grid:
    """The volume's grid as :func:`reference_grid` gives it (world RAS: a parent transform is
    applied, as Slicer does for a segmentation that is under none)."""
    extent = volume_node.GetImageData().GetExtent()
    counts = tuple(int(extent[2 * a + 1] - extent[2 * a] + 1) for a in range(3))
    return world_ijk_to_ras(volume_node), counts


def same_grid(a: Grid, b: Grid) -> bool:
    """Whether two grids have the same voxels (counts, and corners and axes within
    :data:`GRID_TOLERANCE_MM`)."""
    return a[1] == b[1] and np.allclose(a[0], b[0], rtol=0, atol=GRID_TOLERANCE_MM)


def grid_text(grid: Grid) -> str:
    """A grid as text for :data:`VOLUME_GRID_ATTRIBUTE`: "i j k;" then the 3x4 IJK-to-RAS
    matrix row by row (mm)."""
    matrix, counts = grid
    numbers = " ".join(repr(float(v)) for v in np.asarray(matrix)[:3].ravel())
    return f"{' '.join(map(str, counts))};{numbers}"


def remembered_grid(segmentation_node) -> Optional[Grid]:
    """The volume's grid UNet++ recorded when it last wrote to the node, or None (never, or a
    record that does not parse)."""
    text = segmentation_node.GetAttribute(VOLUME_GRID_ATTRIBUTE)
    try:
        counts_text, numbers = str(text).split(";")
        counts = tuple(int(v) for v in counts_text.split())
        matrix = np.eye(4)
        matrix[:3] = np.array([float(v) for v in numbers.split()]).reshape(3, 4)
    except (ValueError, TypeError):
        return None
    return (matrix, counts) if len(counts) == 3 else None


def remember_volume_grid(segmentation_node, volume_node) -> None:
    """Record the volume's grid now on the node (:data:`VOLUME_GRID_ATTRIBUTE`)."""
    segmentation_node.SetAttribute(VOLUME_GRID_ATTRIBUTE, grid_text(volume_grid(volume_node)))


def is_field_of_view(grid: Grid, volume: Grid, start: Sequence[int] = (0, 0, 0)) -> bool:
    """Whether ``grid`` is the volume's box on other voxels as Segment Editor's "Specify
    geometry" from that volume makes it (vtkSlicerSegmentationGeometryLogic): the same axes;
    box corners within one voxel (of the coarser grid, along each axis) of the volume's (a
    crop moves a corner by a whole voxel or more); and the voxel lattice where that logic puts
    it, within :data:`GRID_TOLERANCE_MM` along each axis, give or take whole voxels of
    ``grid`` (its "pad" option, and its extents rounded from the volume's): through the corner
    of the volume's voxel of IJK index (0, 0, 0) (oversampling keeps that corner), or for an
    isotropic grid half the volume's smallest spacing before that voxel's centre (isotropic
    spacing keeps that centre). ``start``: the volume's (i, j, k) extent start, that is the
    index of its first voxel (non-zero after Crop Volume, or for a NRRD whose "space origin"
    names a region start): Slicer's image-to-world matrix is at index 0, not at the first
    voxel. So a volume moved by more than :data:`GRID_TOLERANCE_MM` since, a fraction of a
    voxel included, is not."""
    (matrix, counts), (own, own_counts) = grid, volume
    spacing, own_spacing = (np.linalg.norm(m[:3, :3], axis=0) for m in (matrix, own))
    if not np.allclose(matrix[:3, :3] / spacing, own[:3, :3] / own_spacing, atol=1e-4):
        return False
    to_index = np.linalg.inv(own)  # the grid's box corners in the volume's voxel indices
    low = (to_index @ matrix @ np.append(np.full(3, -0.5), 1.0))[:3]
    high = (to_index @ matrix @ np.append(np.array(counts) - 0.5, 1.0))[:3]
    slack = np.maximum(1.0, spacing / own_spacing) - GRID_TOLERANCE_MM
    own_high = np.array(own_counts) - 0.5
    if not (np.all(np.abs(low + 0.5) < slack) and np.all(np.abs(high - own_high) < slack)):
        return False
    offset = (low + 0.5) * own_spacing  # mm from the volume's first voxel corner, per axis
    index_zero = -np.asarray(start, dtype=np.float64) * own_spacing  # voxel (0, 0, 0)'s corner
    anchors = [index_zero]
    if np.ptp(spacing) < GRID_TOLERANCE_MM:  # isotropic: voxel (0, 0, 0)'s centre is kept
        anchors.append(index_zero + (own_spacing - own_spacing.min()) / 2)
    for anchor in anchors:
        voxels = (offset - anchor) / spacing
        if np.all(np.abs(voxels - np.round(voxels)) * spacing < GRID_TOLERANCE_MM):
            return True
    return False


def user_grid(segmentation_node, volume_node) -> bool:
    """Whether the segmentation's reference geometry is another grid than the volume's because
    the user chose it (the volume is unchanged; see the module docstring): results go into
    the node, resampled onto that grid. False when it is the volume's grid, or has none."""
    grid = reference_grid(segmentation_node)
    if grid is None or volume_node.GetImageData() is None:
        return False
    own = volume_grid(volume_node)
    if same_grid(grid, own):
        return False
    remembered = remembered_grid(segmentation_node)
    if remembered is not None:
        return same_grid(remembered, own)
    return is_field_of_view(grid, own, extent_start(volume_node))


def extent_start(volume_node) -> tuple[int, int, int]:
    """The (i, j, k) index of the volume's first voxel: its image extent's start (vtkImageData
    extents need not start at 0; the node's IJK-to-RAS matrix is at index 0)."""
    extent = volume_node.GetImageData().GetExtent()
    return int(extent[0]), int(extent[2]), int(extent[4])


def other_volume_binding(segmentation_node, volume_node) -> Optional[str]:
    """Why ``segmentation_node`` belongs to another volume than ``volume_node``, or None when
    it may take ``volume_node``'s segments (bound to it and to its grid now, to its grid, to a
    grid the user chose for it (:func:`user_grid`), or to nothing).

    The reason names what it is bound to: "it was made for volume 'A'"; "it was made for
    volume 'A' on another grid (20 x 20 x 10 voxels ...); the volume was cropped or resampled
    since" (or "moved by transform 'T'", :func:`grid_change`); without a reference, "its
    reference geometry is another grid (20 x 20 x 10 voxels ...)".
    """
    bound = reference_volume(segmentation_node)
    if bound is not None and bound.GetID() != volume_node.GetID():
        return f"it was made for volume '{bound.GetName()}'"
    grid = reference_grid(segmentation_node)
    if grid is None or volume_node.GetImageData() is None:
        return None
    if same_grid(grid, volume_grid(volume_node)) or user_grid(segmentation_node, volume_node):
        return None
    matrix, counts = grid
    origin = ", ".join(f"{v:.1f}" for v in matrix[:3, 3])
    other = f"{' x '.join(map(str, counts))} voxels from ({origin}) mm RAS"
    if bound is not None:  # the same volume node, on another grid now
        change = grid_change(grid, volume_node, remembered_grid(segmentation_node))
        return f"it was made for volume '{bound.GetName()}' on another grid ({other}); {change}"
    return f"its reference geometry is another grid ({other})"


def changed_during_run(
    volume_nodes: Sequence, grids: Sequence[Grid], versions: Optional[Sequence[str]] = None
) -> Optional[str]:
    """Why a result made for ``volume_nodes`` on ``grids`` (their :func:`volume_grid` when the
    run started) must not be written now, or None. A volume moved (a parent transform set or
    changed, its origin or axes edited), cropped or resampled while the engine ran would get a
    segmentation where its voxels were, not where they are; one whose voxels were edited in
    place (``versions``: their :func:`.voxel_version.voxels_version` when the run started: a
    digest of their content, so a ``Modified()`` that changed no voxel is no edit) would get
    the result of its old voxels as if it were that of the new ones. Nodes no longer in a
    scene, or without image data, are the writer's to refuse."""
    for index, (node, grid) in enumerate(zip(volume_nodes, grids)):
        if node.GetScene() is None or node.GetImageData() is None:
            continue
        try:
            now = volume_grid(node)
        except UNetPlusPlusError as error:  # now under a non-linear transform
            return f"Volume '{node.GetName()}' changed during the run: {error}"
        if not same_grid(grid, now):
            change = grid_change(grid, node, grid).replace(" since", " since the run started", 1)
            return (
                f"Volume '{node.GetName()}' changed during the run: {change}; its result, "
                "for where its voxels were then, was not written and the scene is as it was. "
                "Click Segment to segment it as it is now."
            )
        if versions is not None and voxels_version(node) != versions[index]:
            return (
                f"Volume '{node.GetName()}' changed during the run: its voxels were edited "
                "since the run started; its result, for its voxels then, was not written and "
                "the scene is as it was. Click Segment to segment it as it is now."
            )
    return None


def grid_change(old: Grid, volume_node, remembered: Optional[Grid] = None) -> str:
    """What was done to the volume since a segmentation was made on ``old`` (its world
    reference grid then), as a clause. ``remembered``: the volume's own grid UNet++ recorded
    when it last wrote to the segmentation (:func:`remembered_grid`), the volume's grid then;
    without it, the volume's grid then is ``old``, or for a grid the user chose in "Specify
    geometry" (finer, isotropic: other voxels) one whose box ``old`` is.

    "the volume was moved by transform 'T' since" (put under a transform that moved it: its
    own grid is still what it was), "the volume was moved since (...)" (the same voxels,
    counts and spacing, elsewhere: its origin or axes were edited, or its transform changed),
    else "the volume was cropped or resampled since"."""
    matrix, counts = volume_grid(volume_node)
    transform = volume_node.GetParentTransformNode()
    if transform is not None:
        own = np.linalg.inv(node_to_world_matrix(volume_node)) @ matrix  # before the transform
        if _was_on(old, remembered, (own, counts), extent_start(volume_node)):
            return f"the volume was moved by transform '{transform.GetName()}' since"
    then = remembered if remembered is not None else old
    if not (
        same_voxels(then, (matrix, counts))
        or (remembered is None and same_box(old, counts, matrix))
    ):
        return "the volume was cropped or resampled since"
    if transform is not None:
        return f"the volume was moved since (it is under transform '{transform.GetName()}')"
    return "the volume was moved since (its origin or axes were changed)"


def _was_on(old: Grid, remembered: Optional[Grid], grid: Grid, start: Sequence[int]) -> bool:
    """Whether the volume was on ``grid`` when the segmentation was made on ``old``: its
    recorded grid, or without a record ``old`` itself or a "Specify geometry" grid of it."""
    if remembered is not None:
        return same_grid(remembered, grid)
    return same_grid(old, grid) or is_field_of_view(old, grid, start)


def same_voxels(a: Grid, b: Grid) -> bool:
    """Whether two grids have the same voxel counts and spacing (wherever they are)."""
    spacing_a, spacing_b = (np.linalg.norm(m[:3, :3], axis=0) for m in (a[0], b[0]))
    return a[1] == b[1] and np.allclose(spacing_a, spacing_b, rtol=0, atol=GRID_TOLERANCE_MM)


def same_box(grid: Grid, counts: Sequence[int], matrix: np.ndarray) -> bool:
    """Whether ``grid`` has the size of the box of a volume of ``counts`` voxels on IJK-to-RAS
    ``matrix``, as "Specify geometry" makes it (wherever it is): along each axis exactly (an
    oversampled grid), or up to one voxel of ``grid`` less (isotropic spacing rounds the count
    down); a crop removes a whole voxel of the volume, so its box is smaller. (A volume
    resampled in place onto exactly the same box size would pass too: without UNet++'s record
    the two cannot be told apart, and moving a volume in place is the common case.)"""
    spacing, own_spacing = (np.linalg.norm(m[:3, :3], axis=0) for m in (grid[0], matrix))
    shorter = np.array(counts) * own_spacing - np.array(grid[1]) * spacing  # mm per axis
    return bool(
        np.all(shorter > -GRID_TOLERANCE_MM) and np.all(shorter < spacing - GRID_TOLERANCE_MM)
    )
