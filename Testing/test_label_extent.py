"""label_extent: resampling only where a label can win gives the labels of the full resampling."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import rotation_matrix
from UNetPlusPlusLib.engine.label_extent import candidate_boxes, candidate_slices
from UNetPlusPlusLib.engine.result_grid import region_labels
from UNetPlusPlusLib.engine.volume import Grid, Volume, canonical_grid, resample_to_reference


def _full_argmax(probabilities, grid, region) -> np.ndarray:
    """The old path: every class on the whole input grid, then argmax (ties to class 0)."""
    return np.argmax(resample_to_reference(probabilities, grid, region), axis=0).astype(np.uint8)


def _probabilities(grid: Grid, classes: int, blobs, seed: int = 0) -> np.ndarray:
    """Smooth-ish class probabilities: background everywhere but in a few boxes."""
    rng = np.random.default_rng(seed)
    logits = np.zeros((classes,) + grid.shape_zyx, dtype=np.float32)
    logits[0] = 2.0
    for k, (z, y, x) in blobs:
        logits[k][z, y, x] = 3.0 + rng.random(logits[k][z, y, x].shape)
    logits += 0.3 * rng.standard_normal(logits.shape).astype(np.float32)
    exp = np.exp(logits - logits.max(axis=0))
    return (exp / exp.sum(axis=0)).astype(np.float32)


@pytest.mark.parametrize(
    "direction,spacing,classes,blobs",
    [
        (np.eye(3), (0.7, 0.7, 1.1), 2, [(1, (slice(5, 9), slice(6, 12), slice(4, 10)))]),
        # oblique, anisotropic, four classes, one blob on the model grid's edge (extrapolation)
        (
            rotation_matrix((20, -15, 30)),
            (1.3, 0.9, 2.1),
            4,
            [
                (1, (slice(0, 3), slice(6, 12), slice(4, 10))),
                (2, (slice(8, 11), slice(0, 4), slice(12, 16))),
                (3, (slice(10, 14), slice(10, 15), slice(15, 18))),
            ],
        ),
    ],
)
def test_labels_equal_the_full_resampling(direction, spacing, classes, blobs):
    size_xyz = (37, 29, 23)
    region = Volume(np.zeros((1,) + size_xyz[::-1], np.float32), spacing, (4.0, -7.0, 12.0),
                    direction)  # fmt: skip
    grid = canonical_grid(region, (2.0, 2.0, 2.0))
    probabilities = _probabilities(grid, classes, blobs)
    expected = _full_argmax(probabilities, grid, region)
    got = region_labels(probabilities, grid, region.grid, None, classes)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    assert (got > 0).sum() > 20  # a real test: labels were found
    slices = candidate_slices(probabilities, grid, region.grid)
    inside = np.prod([s.stop - s.start for s in slices])
    assert inside < expected.size  # and only part of the grid was resampled
    boxes = candidate_boxes(probabilities, grid, region.grid)
    resampled = sum(np.prod([s.stop - s.start for s in box]) for box in boxes)
    covered = np.zeros(expected.shape, bool)
    for box in boxes:
        covered[box] = True
    assert not expected[~covered].any()  # every label lies in a box
    if len(blobs) > 1:  # one box per separate group: fewer voxels than one box around all
        assert len(boxes) > 1 and resampled < inside


def test_distant_groups_get_their_own_boxes():
    """An organ and a distant false positive: two small boxes, not one around both."""
    region = Volume(np.zeros((1, 40, 40, 40), np.float32), (1.0, 1.0, 1.0), (0, 0, 0), np.eye(3))
    grid = canonical_grid(region, (2.0, 2.0, 2.0))
    blobs = [(1, (slice(2, 6), slice(2, 6), slice(2, 6))), (1, (slice(15, 17),) * 3)]
    probabilities = _probabilities(grid, 2, blobs)
    boxes = candidate_boxes(probabilities, grid, region.grid)
    assert len(boxes) >= 2
    resampled = sum(np.prod([s.stop - s.start for s in box]) for box in boxes)
    single = candidate_slices(probabilities, grid, region.grid)
    assert resampled < 0.5 * np.prod([s.stop - s.start for s in single])
    expected = _full_argmax(probabilities, grid, region)
    got = region_labels(probabilities, grid, region.grid, None, 2)
    np.testing.assert_array_equal(got, expected)


def test_all_background_needs_no_resampling():
    region = Volume(np.zeros((1, 10, 12, 14), np.float32), (1.0, 1.0, 1.0), (0, 0, 0), np.eye(3))
    grid = canonical_grid(region, (2.0, 2.0, 2.0))
    probabilities = _probabilities(grid, 2, [])
    assert candidate_slices(probabilities, grid, region.grid) is None
    labels = region_labels(probabilities, grid, region.grid, None, 2)
    assert labels.shape == (10, 12, 14) and not labels.any()
