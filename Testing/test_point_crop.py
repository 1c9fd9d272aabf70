"""A nodule click stays inside its crop (issue 14): same labels as the full-grid path, and the
written labelmap has the smallest extent that holds them, exactly on the input's voxels."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.engine.image_read import read_labelmap
from UNetPlusPlusLib.engine.point_crop import content_slices, grid_offset, smallest_extent
from UNetPlusPlusLib.engine.postprocess import keep_component_at_point
from UNetPlusPlusLib.engine.predictor import POINT_TOLERANCE_MM, Predictor
from UNetPlusPlusLib.engine.volume import Grid, Volume, volume_to_sitk

SPACING = (0.7, 0.7, 1.25)
ANGLE = np.deg2rad(20.0)
OBLIQUE = np.array(  # a rotation about z: an oblique LPS direction
    [[np.cos(ANGLE), -np.sin(ANGLE), 0.0], [np.sin(ANGLE), np.cos(ANGLE), 0.0], [0, 0, 1.0]]
)
ORIGIN = (-12.3, 40.1, -7.9)


@pytest.fixture(scope="module")
def oblique_ct():
    """-850 HU lung with noise, a 4 mm nodule at the click and a 5 mm one 14 mm away."""
    size_xyz = (96, 96, 40)
    rng = np.random.default_rng(1)
    array = (-850 + rng.normal(0, 30, size_xyz[::-1])).astype(np.float32)
    grid = Grid(size_xyz, SPACING, ORIGIN, OBLIQUE)
    k, j, i = np.indices(size_xyz[::-1])
    points = grid.index_to_physical(np.stack([i, j, k], axis=-1).reshape(-1, 3)).reshape(
        array.shape + (3,)
    )
    click = grid.index_to_physical((40.3, 47.6, 20.2))
    other = click + np.array([0.0, 14.0, 0.0])
    array[np.linalg.norm(points - click, axis=-1) <= 4.0] = 40.0
    array[np.linalg.norm(points - other, axis=-1) <= 5.0] = 40.0
    return Volume(array[np.newaxis], SPACING, ORIGIN, OBLIQUE, ("CT",)), tuple(click)


@pytest.fixture(scope="module")
def nodule_model():
    return Predictor.from_task("lung-nodule", device="cpu", threads=2)


def _full_grid_reference(model, volume, point):
    """The previous path: whole-grid labels, then the component at the click on the whole grid."""
    raw = model.segment(volume, point=point, largest_component=False).labels.array
    index_zyx = volume.grid.physical_to_index(np.asarray(point))[::-1]
    kept, _ = keep_component_at_point(raw, index_zyx, SPACING[::-1], POINT_TOLERANCE_MM)
    return raw, kept


@pytest.mark.slow
def test_cropped_click_equals_the_full_grid_path_on_an_oblique_ct(oblique_ct, nodule_model):
    volume, click = oblique_ct
    raw, expected = _full_grid_reference(nodule_model, volume, click)
    assert expected.any() and (raw != expected).any()  # the neighbour was there and is removed
    full = nodule_model.segment(volume, point=click)
    np.testing.assert_array_equal(full.labels.array, expected)
    assert full.labels.grid.isclose(volume.grid)

    cropped = nodule_model.segment(volume, point=click, crop_output=True)
    offset = grid_offset(cropped.labels.grid, volume.grid)
    assert offset is not None
    assert cropped.labels.array.size < expected.size // 50
    box = tuple(slice(o, o + n) for o, n in zip(offset[::-1], cropped.labels.array.shape))
    np.testing.assert_array_equal(cropped.labels.array, expected[box])
    assert content_slices(expected) == box  # the smallest extent that holds the nodule
    np.testing.assert_allclose(cropped.labels.direction, OBLIQUE, atol=1e-12)


@pytest.mark.slow
def test_cli_click_writes_a_cropped_labelmap_on_the_input_grid(oblique_ct, nodule_model, tmp_path):
    volume, click = oblique_ct
    path = tmp_path / "ct.nrrd"
    sitk.WriteImage(volume_to_sitk(volume), str(path))
    out = tmp_path / "nodule.nrrd"
    argv = ["segment", str(path), "--task", "lung-nodule", "--threads", "2", "--lps"]
    assert main(argv + ["--point", *map(str, click), "--labelmap", str(out)]) == 0
    written = read_labelmap(out)
    offset = grid_offset(written.grid, volume.grid)
    assert offset is not None and written.array.shape[0] < volume.array.shape[1]
    np.testing.assert_allclose(written.origin, volume.grid.index_to_physical(offset), atol=1e-6)
    expected = nodule_model.segment(volume, point=click).labels.array
    box = tuple(slice(o, o + n) for o, n in zip(offset[::-1], written.array.shape))
    np.testing.assert_array_equal(written.array, expected[box])
    assert expected.sum() == written.array.sum() > 0


def test_smallest_extent_keeps_the_labels_and_their_place():
    grid = Grid((20, 16, 12), SPACING, ORIGIN, OBLIQUE)
    region = np.zeros((6, 8, 10), np.uint8)
    region[2:4, 3:7, 1:2] = 1
    labels, part = smallest_extent(region, (slice(3, 9), slice(4, 12), slice(5, 15)), grid)
    assert labels.shape == (2, 4, 1) and labels.all()
    assert grid_offset(part, grid) == (6, 7, 5)
    empty, whole = smallest_extent(
        np.zeros_like(region), (slice(3, 9), slice(4, 12), slice(5, 15)), grid
    )
    assert empty.shape == region.shape and grid_offset(whole, grid) == (5, 4, 3)


def test_grid_offset_refuses_a_labelmap_off_the_input_voxels():
    grid = Grid((20, 16, 12), SPACING, ORIGIN, OBLIQUE)
    part = Grid((4, 4, 4), SPACING, tuple(grid.index_to_physical((2, 3, 4))), OBLIQUE)
    assert grid_offset(part, grid) == (2, 3, 4)
    shifted = Grid((4, 4, 4), SPACING, tuple(grid.index_to_physical((2.5, 3, 4))), OBLIQUE)
    assert grid_offset(shifted, grid) is None  # half a voxel off
    assert grid_offset(Grid((4, 4, 4), (0.7, 0.7, 1.0), part.origin, OBLIQUE), grid) is None
    assert grid_offset(Grid((4, 4, 4), SPACING, part.origin, np.eye(3)), grid) is None
    outside = Grid((4, 4, 4), SPACING, tuple(grid.index_to_physical((18, 3, 4))), OBLIQUE)
    assert grid_offset(outside, grid) is None  # would reach past the input
