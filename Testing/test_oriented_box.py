"""engine/oriented_box.py: clearing a label array outside a rotated box, on oblique grids.

Voxel positions in these tests come from SimpleITK (``TransformIndexToPhysicalPoint`` via
helpers.physical_points), not from the engine's Grid, so a wrong index->LPS mapping, a swapped
(z, y, x) axis or a transposed box rotation would show.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import physical_points, rotation_matrix
from UNetPlusPlusLib.engine.oriented_box import (
    OrientedBox,
    clear_outside_box,
    clear_outside_oriented_box,
)
from UNetPlusPlusLib.engine.volume import Box, Grid

SIZE_XYZ = (23, 19, 13)
SPACING = (0.8, 1.1, 1.7)
ORIGIN = (-12.5, 30.25, -7.0)
GRID_DIRECTION = rotation_matrix((20, -35, 50))
BOX_AXES = rotation_matrix((-15, 30, 70))


def oblique_image() -> sitk.Image:
    image = sitk.Image(list(SIZE_XYZ), sitk.sitkUInt8)
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    image.SetDirection(GRID_DIRECTION.flatten().tolist())
    return image


def grid() -> Grid:
    return Grid(SIZE_XYZ, SPACING, ORIGIN, GRID_DIRECTION)


def labels(value: int = 3) -> np.ndarray:
    """A (z, y, x) label array: ``value`` everywhere but a background stripe along x."""
    array = np.full(SIZE_XYZ[::-1], value, dtype=np.uint8)
    array[:, :, :2] = 0
    return array


def test_the_grid_is_oblique_and_anisotropic():
    assert np.count_nonzero(np.abs(GRID_DIRECTION) > 1e-3) == 9
    assert np.count_nonzero(np.abs(BOX_AXES) > 1e-3) == 9


def test_exactly_the_voxel_centres_outside_the_rotated_box_are_cleared():
    points = physical_points(oblique_image())  # (z, y, x, 3), from SimpleITK
    centre = points[6, 9, 11] + (0.3, -0.2, 0.1)
    half = np.array([7.0, 4.5, 3.0])
    array = labels()
    before = array.copy()
    cleared = clear_outside_oriented_box(array, grid(), OrientedBox(centre, BOX_AXES, half))
    local = (points - centre) @ BOX_AXES
    inside = np.all(np.abs(local) <= half, axis=-1)
    assert 50 < inside.sum() < inside.size / 4  # a real cut, not all or nothing
    np.testing.assert_array_equal(array, np.where(inside, before, 0))
    assert cleared == int(np.count_nonzero(before & ~inside))  # background is not counted
    assert set(np.unique(array)) == {0, 3}  # label values are kept as they were


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("side", [-1.0, 1.0])
def test_a_voxel_just_inside_or_outside_each_box_face(axis, side):
    """A voxel centre 0.01 mm inside a face of the box is kept, 0.01 mm outside it is cleared,
    along each box axis and on both sides."""
    zyx = (5, 8, 10)
    point = physical_points(oblique_image())[zyx]
    half = np.array([4.0, 2.5, 6.0])
    for offset, kept in ((-0.01, True), (0.01, False)):
        # the point lies at (half + offset) * side along box axis ``axis`` from the centre
        centre = point - side * (half[axis] + offset) * BOX_AXES[:, axis]
        array = labels()
        clear_outside_oriented_box(array, grid(), OrientedBox(centre, BOX_AXES, half))
        assert bool(array[zyx]) is kept, (axis, side, offset)


def test_a_box_holding_the_whole_grid_clears_nothing_and_one_outside_clears_all():
    corners = grid().corner_points()
    centre = corners.mean(axis=0)
    big = OrientedBox(centre, BOX_AXES, np.full(3, 100.0))
    array = labels()
    assert clear_outside_oriented_box(array, grid(), big) == 0
    np.testing.assert_array_equal(array, labels())
    far = OrientedBox(centre + 500.0, BOX_AXES, np.full(3, 10.0))
    assert clear_outside_oriented_box(array, grid(), far) == np.count_nonzero(labels())
    assert not array.any()


def test_clear_outside_box_keeps_voxels_whose_footprint_meets_the_box():
    """The engine's axis-aligned ROI on an oblique grid: a voxel is kept when its centre lies at
    most half its extent (along each patient axis) outside the box, as before the move."""
    points = physical_points(oblique_image())
    box = Box(tuple(points[6, 9, 11] - (5.0, 3.0, 4.0)), tuple(points[6, 9, 11] + (2.0, 6.0, 3.0)))
    footprint = 0.5 * np.abs(GRID_DIRECTION @ np.diag(SPACING)).sum(axis=1)
    inside = np.all((points >= box.lower - footprint) & (points <= box.upper + footprint), -1)
    assert 50 < inside.sum() < inside.size / 4
    array = labels()
    cleared = clear_outside_box(array, grid(), box)
    np.testing.assert_array_equal(array, np.where(inside, labels(), 0))
    assert cleared == int(np.count_nonzero(labels() & ~inside))


def test_clear_outside_box_on_an_axis_aligned_grid_leaves_it_to_the_index_slices():
    flipped = Grid(SIZE_XYZ, SPACING, ORIGIN, np.diag([-1.0, 1.0, -1.0])[:, [1, 0, 2]])
    array = labels()
    assert clear_outside_box(array, flipped, Box((0, 0, 0), (1, 1, 1))) == 0
    np.testing.assert_array_equal(array, labels())


def test_bad_boxes_and_shapes_are_refused():
    with pytest.raises(ValueError, match="orthonormal"):
        OrientedBox((0, 0, 0), np.diag([1.0, 2.0, 1.0]), (1, 1, 1))
    with pytest.raises(ValueError, match="negative"):
        OrientedBox((0, 0, 0), np.eye(3), (1, -1, 1))
    with pytest.raises(ValueError, match="does not match grid"):
        clear_outside_oriented_box(np.ones((2, 2, 2), np.uint8), grid(), OrientedBox.aligned(
            (0, 0, 0), (1, 1, 1)))  # fmt: skip


def test_clear_outside_box_keeps_a_voxel_whose_footprint_touches_a_face():
    """A slab whose voxels' footprints touch the box's z faces (in-plane rotated grid, 2 mm
    slices, box from z = 3 to 43 mm) is kept, as the index slices keep it on an axis-aligned
    grid; the next slab out is cleared."""
    rotated = Grid((8, 8, 26), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), rotation_matrix((0, 0, 40)))
    array = np.ones(rotated.shape_zyx, dtype=np.uint8)
    clear_outside_box(array, rotated, Box((-50.0, -50.0, 3.0), (50.0, 50.0, 43.0)))
    kept = [k for k in range(array.shape[0]) if array[k].all()]
    assert kept == list(range(1, 23))  # z = 2 ... 44 mm
    assert not array[0].any() and not array[23:].any()
