"""The body's box of an oblique CT on the model grid (engine/body_box_lps.py): the LPS extent of
a mask against every voxel's centre, the box against the index box's, and the rotated demo CT,
whose body crop was skipped (as many tiles as the whole grid of mostly air)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import rotation_matrix
from UNetPlusPlusLib.engine import body_crop
from UNetPlusPlusLib.engine.body_box_lps import is_oblique, lps_extent, model_box
from UNetPlusPlusLib.engine.image_read import volume_from_sitk
from UNetPlusPlusLib.engine.volume import Grid, canonical_grid

WINDOW = [{"kind": "ct", "window": [-160.0, 240.0]}]


@pytest.mark.parametrize(
    "direction",
    [rotation_matrix((25, 0, 0)), rotation_matrix((20, -15, 25)), np.diag([-1.0, -1.0, 1.0])],
)
def test_the_lps_extent_is_that_of_every_voxel_centre(direction):
    rng = np.random.default_rng(3)
    grid = Grid((23, 17, 11), (1.3, 0.9, 2.5), (-40.0, 12.0, 7.0), direction)
    mask = np.zeros(grid.shape_zyx, bool)
    mask[2:9, 3:15, 4:20] = rng.random((7, 12, 16)) < 0.3
    points = grid.index_to_physical(np.argwhere(mask)[:, ::-1])
    low, high = lps_extent(mask, grid)
    np.testing.assert_allclose(low, points.min(axis=0), atol=1e-9)
    np.testing.assert_allclose(high, points.max(axis=0), atol=1e-9)
    assert lps_extent(np.zeros_like(mask), grid) is None
    assert is_oblique(direction) == (not np.allclose(np.abs(direction), np.diag([1, 1, 1])))


def _rotated_demo(example_ct, angles):
    """The demo CT resampled onto a grid rotated by ``angles`` that holds all of it (3 mm,
    air outside), as an oblique acquisition of the same patient."""
    image = sitk.ReadImage(str(example_ct), sitk.sitkFloat32)
    direction = rotation_matrix(angles) @ np.array(image.GetDirection()).reshape(3, 3)
    size = np.array(image.GetSize())
    corners = np.stack(np.meshgrid(*[[-0.5, n - 0.5] for n in size]), -1).reshape(-1, 3)
    points = np.array([image.TransformContinuousIndexToPhysicalPoint(c.tolist()) for c in corners])
    local = points @ direction
    out = np.ceil((local.max(0) - local.min(0)) / 3.0).astype(int) + 1
    rotated = sitk.Resample(
        image,
        [int(n) for n in out],
        sitk.Transform(),
        sitk.sitkLinear,
        (direction @ local.min(0)).tolist(),
        (3.0, 3.0, 3.0),
        direction.flatten().tolist(),
        -1024.0,
    )
    return volume_from_sitk([rotated], ["CT"]), volume_from_sitk([image], ["CT"])


@pytest.mark.parametrize("angles", [(25, 0, 0), (20, -15, 25)])
def test_the_rotated_demo_ct_is_cropped_to_its_body_like_the_axis_aligned_one(repo_root, angles):
    """Before: the box of the body's indices, mapped to LPS, needed as many tiles as the whole
    model grid (192 x 189 x 123 voxels at 25 degrees about x), so no crop; the network ran on
    mostly air and found 7 % less liver (docs/BENCHMARK_E2E.md, "Oblique CTs")."""
    rotated, original = _rotated_demo(repo_root / "Resources/Examples/example_ct.nii.gz", angles)
    found = body_crop.body_crop(rotated, WINDOW, (3.0, 3.0, 3.0), (48, 48, 48), 0.25)
    assert found is not None
    crop, _ = found
    upright = canonical_grid(original, (3.0, 3.0, 3.0))  # the axis-aligned run's model grid
    assert np.prod(crop.grid.size_xyz) < 1.15 * np.prod(upright.size_xyz)
    assert np.prod(crop.grid.size_xyz) < 0.5 * np.prod(canonical_grid(rotated, (3.0,) * 3).size_xyz)
    # every body voxel's centre lies inside the crop (none cut off): the crop is exact
    body = rotated.array[0] > -500.0
    index = crop.grid.physical_to_index(rotated.grid.index_to_physical(np.argwhere(body)[:, ::-1]))
    assert (index >= -1e-6).all() and (index <= np.array(crop.grid.size_xyz) - 1 + 1e-6).all()
    # and no index box could do as well: its LPS box holds the rotated box's empty corners
    full = canonical_grid(rotated, (3.0, 3.0, 3.0))
    lps = model_box(body, rotated.grid, full, (48, 48, 48))
    assert [s.stop - s.start for s in lps] == list(crop.grid.shape_zyx)
