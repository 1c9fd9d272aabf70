"""region_read: only a ROI and its context are read from the file; the Predictor on that part
(full_grid) gives the labels and geometry of the whole-volume path."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import make_sphere_image, rotation_matrix
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.normalize import volume_statistics
from UNetPlusPlusLib.engine.region_read import read_region
from UNetPlusPlusLib.engine.volume import Box, crop_to_box


@pytest.fixture(scope="module")
def oblique_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("roi") / "ct.nii.gz"
    image = make_sphere_image(
        (56, 48, 40), (1.6, 1.9, 2.4), (-20.0, 15.0, 40.0), rotation_matrix((15, -10, 25)),
        center_lps=None, radius_mm=14, noise=8,
    )  # fmt: skip
    sitk.WriteImage(image, str(path), True)
    return path


def _roi_around_centre(path, half_mm=(14.0, 12.0, 10.0)) -> Box:
    full = read_volume([path])
    centre = full.grid.index_to_physical([(n - 1) / 2 for n in full.grid.size_xyz])
    return Box(tuple(centre - half_mm), tuple(centre + half_mm))


def test_region_is_the_crop_of_the_whole_volume(oblique_file):
    box = _roi_around_centre(oblique_file)
    region, full_grid, specs = read_region([oblique_file], box, ["CT"], [{"kind": "ct"}])
    whole = read_volume([oblique_file], channel_names=["CT"])
    expected, slices = crop_to_box(whole, box)
    assert full_grid.isclose(whole.grid, tolerance=0)
    np.testing.assert_array_equal(region.array, expected.array)
    np.testing.assert_allclose(region.origin, expected.origin, atol=1e-9)
    np.testing.assert_array_equal(region.spacing, whole.spacing)
    np.testing.assert_array_equal(region.direction, whole.direction)
    assert region.array.shape[1:] != whole.array.shape[1:]  # really a part
    assert specs == [{"kind": "ct"}]


def test_mr_channels_get_the_whole_images_statistics(oblique_file):
    box = _roi_around_centre(oblique_file)
    _, _, specs = read_region([oblique_file], box, ["T1"], [{"kind": "mr"}])
    whole = read_volume([oblique_file])
    expected = volume_statistics(whole.array[0])
    assert specs[0]["mean"] == pytest.approx(expected["mean"])
    assert specs[0]["std"] == pytest.approx(expected["std"]) and "clip" not in specs[0]


def test_predictor_on_the_region_gives_the_whole_volume_labels(sphere_predictor, oblique_file):
    box = _roi_around_centre(oblique_file)
    whole = read_volume([oblique_file], channel_names=["CT"])
    expected = sphere_predictor.segment(whole, depth=3, roi=box).labels
    needed = sphere_predictor.context_box(box)
    specs = [c.normalization for c in sphere_predictor.manifest.channels]
    region, full_grid, norms = read_region([oblique_file], needed, ["CT"], specs)
    got = sphere_predictor.segment(
        region, depth=3, roi=box, full_grid=full_grid, channel_norms=norms
    ).labels
    np.testing.assert_array_equal(got.array, expected.array)
    assert got.array.sum() > 100  # the sphere is found inside the ROI
    np.testing.assert_allclose(got.spacing, whole.spacing, atol=1e-9)
    np.testing.assert_allclose(got.origin, whole.origin, atol=1e-9)
    np.testing.assert_allclose(got.direction, whole.direction, atol=1e-9)
