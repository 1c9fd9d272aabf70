"""MRML volume nodes <-> engine ``Volume`` / ``LabelVolume``, and the one RAS<->LPS conversion.

Slicer's world coordinates are RAS; the engine speaks ITK's LPS (docs/ARCHITECTURE.md,
"Conventions"). The two differ by the sign of x and y, applied by :func:`ras_to_lps` and
:func:`lps_to_ras`, the only place in the project where that conversion happens.

A volume node's geometry is its IJK-to-RAS matrix: column ``a`` of its upper 3x3 block is the RAS
step of index axis ``a`` (spacing times direction), and its last column is the RAS position of
voxel (0, 0, 0). A linear parent transform is folded in, so the engine sees world coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import vtk
from vtkmodules.util import numpy_support

from ..engine.volume import Grid, LabelVolume, Volume
from ..errors import UNetPlusPlusError

_RAS_LPS_FLIP = np.array([-1.0, -1.0, 1.0])

# Channels whose geometry differs by less than this (mm for positions, unitless for
# directions) are treated as sharing one grid.
GEOMETRY_TOLERANCE = 1e-4


@dataclass(eq=False)
class NativeImages:
    """Channels as (z, y, x) arrays in the volume nodes' own voxel types, on one LPS grid."""

    arrays: list[np.ndarray]
    grid: Grid

    @property
    def num_channels(self) -> int:
        return len(self.arrays)


def ras_to_lps(xyz: Sequence[float] | np.ndarray) -> np.ndarray:
    """RAS coordinates (last axis x, y, z) to LPS: negate x and y."""
    return np.asarray(xyz, dtype=np.float64) * _RAS_LPS_FLIP


def lps_to_ras(xyz: Sequence[float] | np.ndarray) -> np.ndarray:
    """LPS coordinates (last axis x, y, z) to RAS: negate x and y (the flip is its own inverse)."""
    return np.asarray(xyz, dtype=np.float64) * _RAS_LPS_FLIP


def _numpy_from_vtk_matrix(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def _vtk_matrix_from_numpy(array: np.ndarray) -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def geometry_from_ijk_to_ras(
    ijk_to_ras: np.ndarray,
) -> tuple[tuple[float, float, float], tuple[float, float, float], np.ndarray]:
    """A 4x4 IJK-to-RAS matrix to ITK ``(spacing, origin, direction)`` in LPS."""
    step_ras = np.asarray(ijk_to_ras, dtype=np.float64)[:3, :3]
    spacing = np.linalg.norm(step_ras, axis=0)
    if np.any(spacing <= 0):
        raise UNetPlusPlusError("A volume has a zero voxel spacing; check its image geometry.")
    direction_lps = ras_to_lps((step_ras / spacing).T).T  # flip the rows: each column is a vector
    origin_lps = ras_to_lps(np.asarray(ijk_to_ras)[:3, 3])
    return (
        tuple(float(s) for s in spacing),
        tuple(float(o) for o in origin_lps),
        direction_lps,
    )


def ijk_to_ras_from_geometry(
    spacing: Sequence[float], origin: Sequence[float], direction: np.ndarray
) -> np.ndarray:
    """ITK ``(spacing, origin, direction)`` in LPS to a 4x4 IJK-to-RAS matrix."""
    direction_ras = lps_to_ras(np.asarray(direction, dtype=np.float64).T).T
    matrix = np.eye(4)
    matrix[:3, :3] = direction_ras * np.asarray(spacing, dtype=np.float64)
    matrix[:3, 3] = lps_to_ras(origin)
    return matrix


def node_to_world_matrix(node) -> np.ndarray:
    """The 4x4 matrix from a transformable node's coordinates to world (identity if none)."""
    transform_node = node.GetParentTransformNode()
    if transform_node is None:
        return np.eye(4)
    if not transform_node.IsTransformToWorldLinear():
        raise UNetPlusPlusError(
            f"'{node.GetName()}' is under a non-linear transform; harden the transform "
            "(Data module, right-click, Harden transform) before segmenting."
        )
    matrix = vtk.vtkMatrix4x4()
    transform_node.GetMatrixTransformToWorld(matrix)
    return _numpy_from_vtk_matrix(matrix)


def first_voxel_ijk_to_ras(volume_node) -> np.ndarray:
    """The node's own 4x4 IJK-to-RAS matrix (no parent transform) moved to its first voxel:
    the index of the image extent's start, which need not be 0 (Crop Volume, a NRRD region,
    ``SetExtent``), is (0, 0, 0) of the (z, y, x) voxel array; Slicer's NRRD writer puts the
    file's "space origin" there. Raises UNetPlusPlusError for a node without image data."""
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    ijk_to_ras = _numpy_from_vtk_matrix(matrix)
    image = volume_node.GetImageData()
    if image is None:  # an AttributeError in Logic.start_job's input key before (tester 12)
        raise UNetPlusPlusError(
            f"Volume '{volume_node.GetName()}' has no image data; load it again."
        )
    extent = image.GetExtent()
    start = np.array([extent[0], extent[2], extent[4]], dtype=np.float64)
    if start.any():  # the array begins at a non-zero index: move the origin there
        ijk_to_ras[:3, 3] += ijk_to_ras[:3, :3] @ start
    return ijk_to_ras


def world_ijk_to_ras(volume_node) -> np.ndarray:
    """IJK-to-world-RAS of a volume node: its own matrix, its extent start, its parent transform."""
    return node_to_world_matrix(volume_node) @ first_voxel_ijk_to_ras(volume_node)


def in_volume_index_space(image, volume_node) -> None:
    """Re-index a ``vtkOrientedImageData`` on the volume's voxels (e.g. a labelmap made from
    an engine result, whose index 0 is its first voxel) in place into the volume's own IJK
    index space: its image-to-world matrix becomes the volume's world IJK-to-RAS at index
    (0, 0, 0) and its extent is shifted by whole voxels, as Slicer keeps a segmentation's
    labelmaps (vtkSegmentationConverter::SerializeImageGeometry keeps the volume's extent,
    which need not start at 0: Crop Volume, a NRRD region). The voxels stay where they are.
    An image that is not on the volume's lattice (axes, spacing, whole-voxel offset within
    1e-4 voxel) is left as it is."""
    ijk_to_ras = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(ijk_to_ras)
    zero = node_to_world_matrix(volume_node) @ _numpy_from_vtk_matrix(ijk_to_ras)
    first = image_to_world_matrix(image)
    if not np.allclose(first[:3, :3], zero[:3, :3], rtol=0, atol=GEOMETRY_TOLERANCE):
        return
    offset = np.linalg.solve(zero[:3, :3], first[:3, 3] - zero[:3, 3])  # voxels
    if not np.allclose(offset, np.round(offset), rtol=0, atol=1e-4):
        return
    x0, x1, y0, y1, z0, z1 = image.GetExtent()
    i, j, k = (int(v) for v in np.round(offset))
    image.SetExtent(i, i + x1 - x0, j, j + y1 - y0, k, k + z1 - z0)
    image.SetImageToWorldMatrix(_vtk_matrix_from_numpy(zero))


def array_from_volume_node(volume_node, copy: bool = True) -> np.ndarray:
    """The voxels of a scalar volume node as a (z, y, x) array in their own type: a copy, or
    with ``copy=False`` a view of the node's memory (valid while the node keeps its image)."""
    image = volume_node.GetImageData()
    scalars = image.GetPointData().GetScalars() if image is not None else None
    if scalars is None:
        raise UNetPlusPlusError(
            f"Volume '{volume_node.GetName()}' has no image data; load it again."
        )
    if scalars.GetNumberOfComponents() != 1:
        raise UNetPlusPlusError(
            f"Volume '{volume_node.GetName()}' has {scalars.GetNumberOfComponents()} components "
            "per voxel (colour or vector image); choose a scalar (greyscale) volume."
        )
    nx, ny, nz = image.GetDimensions()
    array = numpy_support.vtk_to_numpy(scalars).reshape(nz, ny, nx)
    return array.copy() if copy else array


def _channels_on_one_grid(
    volume_nodes: Sequence, labels: Sequence[str], copy: bool
) -> tuple[list[np.ndarray], np.ndarray]:
    """The nodes' (z, y, x) arrays in their own types and the shared IJK-to-world-RAS matrix;
    raises ``UNetPlusPlusError`` (see :func:`volume_from_nodes`)."""
    if len(volume_nodes) == 0:
        raise UNetPlusPlusError("No input volume selected; choose one in the Inputs section.")
    labels = list(labels) or [f"channel {i + 1}" for i in range(len(volume_nodes))]
    for label, node in zip(labels, volume_nodes):
        if node is None:
            raise UNetPlusPlusError(
                f"No input volume selected for {label}; choose one in the Inputs section."
            )
    arrays = [array_from_volume_node(node, copy=copy) for node in volume_nodes]
    matrices = [world_ijk_to_ras(node) for node in volume_nodes]
    first = volume_nodes[0]
    for node, array, matrix in zip(volume_nodes[1:], arrays[1:], matrices[1:]):
        same_grid = array.shape == arrays[0].shape and np.allclose(
            matrix, matrices[0], atol=GEOMETRY_TOLERANCE
        )
        if not same_grid:
            raise UNetPlusPlusError(
                f"Volumes '{first.GetName()}' and '{node.GetName()}' are not on the same voxel "
                "grid; register and resample them to one grid (e.g. Resample Scalar/Vector/DWI "
                "Volume) before segmenting."
            )
    check_not_sheared(first)
    return arrays, matrices[0]


def _skew_degrees(step_ras: np.ndarray) -> float:
    """How far (degrees) the most skewed pair of a 3x3 IJK-to-RAS block's axes is from
    perpendicular; 0 for an orthogonal grid."""
    axes = step_ras / np.linalg.norm(step_ras, axis=0)
    cosines = np.abs((axes.T @ axes)[np.triu_indices(3, 1)])
    return float(np.degrees(np.arcsin(np.clip(cosines.max(), 0.0, 1.0))))


def check_not_sheared(volume_node) -> None:
    """Refuse a volume whose world grid is sheared, naming the remedy for its cause: a linear
    parent transform that shears it (hardening keeps the shear in the node's own matrix, as
    ``ApplyTransformMatrix`` does: resample through the transform), or a grid sheared in the
    node itself (resample it). Raises UNetPlusPlusError; the engine's refusal (sanity.py)
    named neither (polish 6)."""
    from ..engine.sanity import DIRECTION_TOLERANCE

    world = world_ijk_to_ras(volume_node)[:3, :3]
    steps = np.linalg.norm(world, axis=0)  # the voxel spacing in world mm
    if not np.all(np.isfinite(world)) or np.any(steps < 1e-6):
        under = volume_node.GetParentTransformNode()
        where = f" under transform '{under.GetName()}'" if under is not None else ""
        raise UNetPlusPlusError(
            f"Volume '{volume_node.GetName()}'{where} has a voxel spacing of "
            f"{' x '.join(f'{v:g}' for v in steps)} mm: a zero or non-finite spacing (or axis) "
            "is no image grid. Fix its spacing (Volumes module, Volume Information) or load "
            "the file again."
        )
    unit = world / steps
    if np.allclose(unit.T @ unit, np.eye(3), atol=DIRECTION_TOLERANCE):
        return
    name = volume_node.GetName()
    own = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(own)
    own_block = _numpy_from_vtk_matrix(own)[:3, :3]
    transform = volume_node.GetParentTransformNode()
    if transform is not None and _skew_degrees(own_block) < 0.1:
        raise UNetPlusPlusError(
            f"'{name}' is under the transform '{transform.GetName()}', which shears it (axes "
            f"{_skew_degrees(world):.1f} degrees from perpendicular), and the model needs an "
            "orthogonal voxel grid; hardening the transform keeps the shear. Resample the "
            f"volume through it (Resample Scalar/Vector/DWI Volume: input '{name}', transform "
            f"'{transform.GetName()}') and segment the result, or remove the transform."
        )
    raise UNetPlusPlusError(
        f"'{name}' has a sheared voxel grid (axes {_skew_degrees(world):.1f} degrees from "
        "perpendicular), and the model needs an orthogonal one: resample it onto an "
        "orthogonal grid (Crop Volume module with Interpolated cropping, or Resample "
        "Scalar/Vector/DWI Volume onto an orthogonal reference) and segment the result."
    )


def volume_from_nodes(
    volume_nodes: Sequence, channel_names: Sequence[str] = (), labels: Sequence[str] = ()
) -> Volume:
    """Scalar volume nodes (one per channel, on one grid) to an engine ``Volume`` in LPS.

    ``labels`` names each channel in error messages (for example the manifest's channel names);
    ``channel_names`` is stored in the ``Volume``. Raises ``UNetPlusPlusError`` for a missing
    node, a node without voxels, a colour volume, or channels whose grids differ.
    """
    arrays, matrix = _channels_on_one_grid(volume_nodes, labels, copy=False)
    spacing, origin, direction = geometry_from_ijk_to_ras(matrix)
    return Volume(
        array=np.stack(arrays).astype(np.float32, copy=False),
        spacing=spacing,
        origin=origin,
        direction=direction,
        channel_names=tuple(channel_names),
    )


def native_images_from_nodes(volume_nodes: Sequence, labels: Sequence[str] = ()) -> NativeImages:
    """Scalar volume nodes (one per channel, on one grid) as views of their voxels in their own
    type (int16 CT stays int16: no float copy) on one LPS ``Grid``; the engine process casts.
    Raises ``UNetPlusPlusError`` as :func:`volume_from_nodes` does."""
    arrays, matrix = _channels_on_one_grid(volume_nodes, labels, copy=False)
    spacing, origin, direction = geometry_from_ijk_to_ras(matrix)
    nz, ny, nx = arrays[0].shape
    return NativeImages(arrays, Grid((nx, ny, nz), spacing, origin, direction))


def volume_node_from_volume(scene, volume: Volume, name: str, channel: int = 0):
    """Add one channel of an engine ``Volume`` to ``scene`` as a scalar volume node (same voxels,
    same place); e.g. to show probabilities, or to build scenes in tests."""
    import slicer

    array = np.ascontiguousarray(volume.array[channel])
    nz, ny, nx = array.shape
    image = vtk.vtkImageData()
    image.SetDimensions(nx, ny, nz)
    image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(array.ravel(), deep=True))
    node = slicer.vtkMRMLScalarVolumeNode()
    node.SetName(scene.GenerateUniqueName(name))
    node.SetAndObserveImageData(image)
    matrix = ijk_to_ras_from_geometry(volume.spacing, volume.origin, volume.direction)
    node.SetIJKToRASMatrix(_vtk_matrix_from_numpy(matrix))
    scene.AddNode(node)
    return node


def content_extent(array: np.ndarray) -> tuple[int, int, int, int, int, int] | None:
    """The smallest VTK extent (x0, x1, y0, y1, z0, z1), in voxels, holding every non-zero
    voxel of a (z, y, x) array, or None when all voxels are zero."""
    ranges = []
    for axes in ((0, 1), (0, 2), (1, 2)):  # x, y, z
        hits = np.flatnonzero(array.any(axis=axes))
        if hits.size == 0:
            return None
        ranges += [int(hits[0]), int(hits[-1])]
    return tuple(ranges)


def oriented_image_from_labels(labels: LabelVolume, crop_to_content: bool = False):
    """An engine ``LabelVolume`` to a ``vtkOrientedImageData`` on the same voxels, in RAS.

    The label values are kept (one shared labelmap); the image-to-world matrix is the
    volume's IJK-to-RAS, so the labelmap is voxel-aligned with the volume it came from.
    ``crop_to_content``: keep only the smallest extent that holds the non-zero voxels (an empty
    extent when there are none), on the same voxel grid; a small lesion in a large CT then
    costs kilobytes rather than the whole volume (about 80 MB for 512x512x300 uint8).
    """
    import slicer  # the adapter needs MRML; imported here so geometry math works without it

    array = labels.array
    if array.ndim != 3:
        raise ValueError(f"label array must be (z, y, x), got shape {array.shape}")
    nz, ny, nx = array.shape
    extent = (0, nx - 1, 0, ny - 1, 0, nz - 1)
    if crop_to_content:
        extent = content_extent(array) or (0, -1, 0, -1, 0, -1)
        x0, x1, y0, y1, z0, z1 = extent
        array = array[z0 : z1 + 1, y0 : y1 + 1, x0 : x1 + 1]
    array = np.ascontiguousarray(array)
    if array.dtype not in (np.uint8, np.uint16, np.int16, np.int32):
        array = array.astype(np.uint16 if array.max(initial=0) > 255 else np.uint8)
    image = slicer.vtkOrientedImageData()
    image.SetExtent(*extent)
    if array.size:
        image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(array.ravel(), deep=True))
    else:
        image.AllocateScalars(numpy_support.get_vtk_array_type(array.dtype), 1)
    matrix = ijk_to_ras_from_geometry(labels.spacing, labels.origin, labels.direction)
    image.SetImageToWorldMatrix(_vtk_matrix_from_numpy(matrix))
    return image


def array_from_oriented_image(image, shape: Sequence[int] | None = None) -> np.ndarray:
    """The voxels of a ``vtkOrientedImageData`` as a (z, y, x) array (a copy).

    ``shape``: the (z, y, x) size of the whole grid the image's extent indexes (e.g. the
    reference volume's); the image is placed at its extent in a zero array of that shape, so a
    labelmap cropped to its content compares voxel by voxel with the volume.
    """
    x0, x1, y0, y1, z0, z1 = image.GetExtent()
    nx, ny, nz = max(x1 - x0 + 1, 0), max(y1 - y0 + 1, 0), max(z1 - z0 + 1, 0)
    scalars = image.GetPointData().GetScalars()
    if scalars is None or nx * ny * nz == 0:
        array = np.zeros((nz, ny, nx), dtype=np.uint8)
    else:
        array = numpy_support.vtk_to_numpy(scalars).reshape(nz, ny, nx).copy()
    if shape is None:
        return array
    full = np.zeros(tuple(shape), dtype=array.dtype)
    if array.size:
        full[z0 : z1 + 1, y0 : y1 + 1, x0 : x1 + 1] = array
    return full


def image_to_world_matrix(image) -> np.ndarray:
    """The 4x4 image-to-world (IJK-to-RAS) matrix of a ``vtkOrientedImageData``, at its extent
    start."""
    matrix = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(matrix)
    result = _numpy_from_vtk_matrix(matrix)
    extent = image.GetExtent()
    start = np.array([extent[0], extent[2], extent[4]], dtype=np.float64)
    result[:3, 3] += result[:3, :3] @ start
    return result


def roi_corners_ras(roi_node) -> tuple[np.ndarray, np.ndarray]:
    """The axis-aligned world (RAS) bounding box of a markups ROI as (min corner, max corner)."""
    bounds = [0.0] * 6
    roi_node.GetRASBounds(bounds)
    low = np.array(bounds[0::2], dtype=np.float64)
    high = np.array(bounds[1::2], dtype=np.float64)
    if np.any(high <= low):
        raise UNetPlusPlusError(
            f"ROI '{roi_node.GetName()}' is empty; place it around the target or click "
            "'Fit ROI to volume'."
        )
    return low, high


def roi_box_lps(roi_node) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """A markups ROI as an engine box: two opposite LPS corners (x, y, z) in mm."""
    low, high = roi_corners_ras(roi_node)
    a, b = ras_to_lps(low), ras_to_lps(high)
    return tuple(float(v) for v in a), tuple(float(v) for v in b)


def control_point_ras(markups_node, index: int) -> np.ndarray:
    """World (RAS) position of control point ``index`` of a markups node."""
    if not 0 <= index < markups_node.GetNumberOfControlPoints():
        raise UNetPlusPlusError(
            f"Point list '{markups_node.GetName()}' has no point {index + 1}; place a point first."
        )
    position = [0.0, 0.0, 0.0]
    markups_node.GetNthControlPointPositionWorld(index, position)
    return np.array(position, dtype=np.float64)
