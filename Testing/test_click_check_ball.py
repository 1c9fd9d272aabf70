"""The click check's ball (engine/click_check.py ``_ball``): the separable computation gives the
same voxels, in the same order, and the same seen share as the plain element-wise one it
replaced (kept here as the reference), on several radii, spacings, directions and clicks (on
voxel centres, half-way between them, near and off the image's edges)."""

from __future__ import annotations

import numpy as np
import pytest
from UNetPlusPlusLib.engine.click_check import _ball
from UNetPlusPlusLib.engine.volume import Volume


def _reference_ball(volume: Volume, point, radius: float) -> tuple[np.ndarray, float]:
    """The former element-wise ``_ball``: every box position's distance by one matrix product."""
    grid = volume.grid
    centre = grid.physical_to_index(np.asarray(point, dtype=np.float64))
    reach = np.ceil(radius / np.asarray(grid.spacing)).astype(int)
    offsets = [np.arange(-r, r + 1) for r in reach]
    base = np.floor(centre + 0.5).astype(int)
    di, dj, dk = np.meshgrid(*offsets, indexing="ij")
    index = np.stack([di, dj, dk], axis=-1).reshape(-1, 3) + base
    step = (index - centre) * np.asarray(grid.spacing)
    near = np.linalg.norm(step @ grid.direction.T, axis=1) <= max(radius, 0.5 * min(grid.spacing))
    index = index[near]
    size = np.asarray(grid.size_xyz)
    inside = np.all((index >= 0) & (index < size), axis=1)
    kept = index[inside]
    values = volume.array[0][kept[:, 2], kept[:, 1], kept[:, 0]]
    return values, float(inside.mean()) if len(inside) else 0.0


def _rotation(a: float, b: float, c: float) -> np.ndarray:
    """A proper rotation (x, then y, then z axis; radians)."""
    ca, sa, cb, sb, cc, sc = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(c), np.sin(c)
    rx = np.array([[1, 0, 0], [0, ca, -sa], [0, sa, ca]])
    ry = np.array([[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]])
    rz = np.array([[cc, -sc, 0], [sc, cc, 0], [0, 0, 1]])
    return rz @ ry @ rx


DIRECTIONS = {
    "identity": np.eye(3),
    "ras": np.diag([-1.0, -1.0, 1.0]),
    "permuted": np.array([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [-1.0, 0.0, 0.0]]),
    "oblique": _rotation(0.3, 0.1, -0.2),
}


@pytest.mark.parametrize("direction", DIRECTIONS, ids=list(DIRECTIONS))
@pytest.mark.parametrize(
    "spacing", [(0.7, 0.7, 1.25), (1.0, 1.0, 1.0), (0.513671875, 0.513671875, 0.5), (2.0, 0.8, 3.0)]
)
def test_the_ball_is_the_element_wise_one(spacing, direction):
    rng = np.random.default_rng(7)
    array = rng.normal(-500, 300, (1, 21, 30, 44)).astype(np.float32)  # z, y, x: a small crop
    volume = Volume(array, spacing, (10.0, -20.0, 5.0), DIRECTIONS[direction], ("CT",))
    clicks = [np.round(rng.uniform(0, 40, 3)) for _ in range(3)]  # on voxel centres
    clicks += [np.round(rng.uniform(0, 40, 3)) + 0.5 for _ in range(3)]  # half-way between
    clicks += [rng.uniform(-15, 60, 3) for _ in range(6)]  # anywhere, some off the image
    clicks += [np.array([0.0, 0.0, 0.0]), np.array([43.0, 29.0, 20.0])]  # corners
    cases = [(radius, index) for radius in (0.2, 1.0, 3.0, 5.5) for index in clicks]
    cases += [(20.0, index) for index in clicks[::7]]  # the lung ball: larger than the crop
    for radius, index in cases:
        point = volume.grid.index_to_physical(index)
        values, seen = _ball(volume, point, radius)
        expected, expected_seen = _reference_ball(volume, point, radius)
        assert values.dtype == expected.dtype
        assert np.array_equal(values, expected), (radius, index)
        assert seen == expected_seen, (radius, index)


def test_a_ball_off_the_image_is_empty_and_unseen():
    volume = Volume(
        np.zeros((1, 5, 6, 7), np.float32), (1.0, 1.0, 1.0), (0, 0, 0), np.eye(3), ("CT",)
    )
    values, seen = _ball(volume, (100.0, 100.0, 100.0), 3.0)
    assert values.size == 0 and seen == 0.0
    values, seen = _ball(volume, (3.0, 2.0, 2.0), 1.0)  # the 7-voxel cross, all inside
    assert values.size == 7 and seen == 1.0
