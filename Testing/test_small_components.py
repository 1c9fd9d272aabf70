"""Removal of small foreground components (``postprocess.min_component_fraction``): the engine
function, the manifest field, the Predictor (on by the manifest, off with --all-components) and
the CLI, on a two-ball image with a non-trivial direction."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import BACKGROUND_HU, SPHERE_HU, physical_points
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.engine.image_read import read_labelmap, volume_from_sitk
from UNetPlusPlusLib.engine.manifest import ModelManifest
from UNetPlusPlusLib.engine.postprocess import remove_small_components
from UNetPlusPlusLib.engine.predictor import Predictor
from UNetPlusPlusLib.errors import UNetPlusPlusError


def test_components_below_the_fraction_of_the_largest_are_removed():
    labels = np.zeros((20, 20, 20), dtype=np.uint8)
    labels[1:9, 1:9, 1:9] = 2  # 512 voxels: the tumour ...
    labels[3:6, 3:6, 3:6] = 1  # ... with a core inside, one component with it
    labels[12:18, 12:18, 12:18] = 1  # 216 voxels = 0.42 of the largest: a second focus
    labels[15:17, 1:3, 15:17] = 3  # 8 voxels = 0.016: a false positive
    out, removed = remove_small_components(labels, 0.1)
    assert removed == 1
    assert (out[15:17, 1:3, 15:17] == 0).all()
    keep = np.ones_like(labels, dtype=bool)
    keep[15:17, 1:3, 15:17] = False
    np.testing.assert_array_equal(out[keep], labels[keep])  # labels inside kept parts as given
    assert (labels[15:17, 1:3, 15:17] == 3).all()  # a copy by default
    out, removed = remove_small_components(labels, 0.5)
    assert removed == 2 and set(np.unique(out)) == {0, 1, 2}
    assert (out[12:18, 12:18, 12:18] == 0).all()


def test_in_place_empty_and_bad_arguments():
    labels = np.zeros((6, 6, 6), dtype=np.uint8)
    out, removed = remove_small_components(labels, 0.1, copy=False)
    assert out is labels and removed == 0
    labels[0, 0, 0], labels[3:6, 3:6, 3:6] = 1, 1
    out, removed = remove_small_components(labels, 0.1, copy=False)
    assert out is labels and removed == 1 and labels[0, 0, 0] == 0
    with pytest.raises(ValueError, match="min_fraction"):
        remove_small_components(labels, 0.0)
    with pytest.raises(ValueError, match="integer"):
        remove_small_components(labels.astype(np.float32), 0.1)


def test_diagonal_neighbours_join_only_with_full_connectivity():
    labels = np.zeros((8, 8, 8), dtype=np.uint8)
    labels[0:4, 0:4, 0:4] = 1
    labels[4, 4, 4] = 1  # touches the cube's corner only
    assert remove_small_components(labels, 0.1)[1] == 0
    assert remove_small_components(labels, 0.1, fully_connected=False)[1] == 1


def _package(tmp_path, sphere_model, fraction):
    folder = tmp_path / "model"
    shutil.copytree(sphere_model.parent, folder)
    data = json.loads((folder / "model.json").read_text())
    data["postprocess"] = {"largest_component": False, "min_component_fraction": fraction}
    (folder / "model.json").write_text(json.dumps(data))
    return folder / "model.json"


@pytest.mark.parametrize("fraction", [0, 1.5, "0.1", True])
def test_the_manifest_refuses_a_bad_fraction(tmp_path, sphere_model, fraction):
    with pytest.raises(UNetPlusPlusError, match="min_component_fraction"):
        ModelManifest.load(_package(tmp_path, sphere_model, fraction))


def two_balls(tmp_path):
    """A 300 HU ball of 9 mm and one of 3 mm (1/27 of its volume) on an oblique grid."""
    angle = np.deg2rad(25)
    direction = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    )
    image = sitk.Image([40, 32, 32], sitk.sitkFloat32)
    image.SetSpacing([2.0, 2.0, 2.0])
    image.SetOrigin([-12.5, 30.0, -7.0])
    image.SetDirection(direction.flatten().tolist())
    points = physical_points(image)
    big = image.TransformContinuousIndexToPhysicalPoint([12, 16, 16])
    small = image.TransformContinuousIndexToPhysicalPoint([32, 16, 16])
    inside = (np.linalg.norm(points - big, axis=-1) <= 9.0) | (
        np.linalg.norm(points - small, axis=-1) <= 3.5
    )
    out = sitk.GetImageFromArray(np.where(inside, SPHERE_HU, BACKGROUND_HU).astype(np.float32))
    out.CopyInformation(image)
    path = tmp_path / "two_balls.nrrd"
    sitk.WriteImage(out, str(path))
    return path, out


def test_the_predictor_applies_the_manifest_fraction_unless_all_components(tmp_path, sphere_model):
    path, image = two_balls(tmp_path)
    volume = volume_from_sitk([image])
    plain = Predictor.from_manifest_path(sphere_model, device="cpu", threads=1)
    both = plain.segment(volume).labels.array
    right_half = np.zeros_like(both, dtype=bool)
    right_half[:, :, 24:] = True
    assert both[right_half].any() and both[~right_half].any()  # the model finds both balls
    filtered = Predictor.from_manifest_path(
        _package(tmp_path, sphere_model, 0.2), device="cpu", threads=1
    )
    result = filtered.segment(volume).labels
    assert not result.array[right_half].any()
    np.testing.assert_array_equal(result.array[~right_half], both[~right_half])
    assert result.origin == pytest.approx(image.GetOrigin())
    np.testing.assert_allclose(result.direction.flatten(), image.GetDirection())
    kept = filtered.segment(volume, largest_component=False).labels.array
    np.testing.assert_array_equal(kept, both)


def test_the_cli_filters_by_default_and_keeps_all_with_all_components(
    tmp_path, sphere_model, capsys
):
    path, image = two_balls(tmp_path)
    model = _package(tmp_path, sphere_model, 0.2)
    base = [str(path), "--model", str(model), "--device", "cpu", "--threads", "1"]
    assert main(["segment", *base, "--labelmap", str(tmp_path / "a.nrrd")]) == 0
    assert main(["segment", *base, "--all-components", "--labelmap", str(tmp_path / "b.nrrd")]) == 0
    filtered = read_labelmap(tmp_path / "a.nrrd").array
    every = read_labelmap(tmp_path / "b.nrrd").array
    assert 0 < np.count_nonzero(filtered) < np.count_nonzero(every)
    assert np.count_nonzero(every & (filtered == 0)) > 10  # the small ball, kept only in b
