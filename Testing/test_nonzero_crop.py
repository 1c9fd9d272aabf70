"""The non-zero crop of all-MR models (engine/nonzero_crop.py) and its use by the Predictor."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from helpers import dice, make_sphere_image, rotation_matrix, sphere_mask
from UNetPlusPlusLib.engine.manifest import ModelManifest
from UNetPlusPlusLib.engine.nonzero_crop import crop_enabled, nonzero_crop
from UNetPlusPlusLib.engine.normalize import normalize
from UNetPlusPlusLib.engine.predictor import Predictor
from UNetPlusPlusLib.engine.volume import Volume, canonical_grid, resample_volume
from UNetPlusPlusLib.errors import UNetPlusPlusError

DIRECTION = rotation_matrix((15, -10, 25))
SPACING = (1.6, 1.9, 2.4)
SIZE = (80, 72, 56)  # about 128 x 137 x 134 mm: the "brain" below fills a small part of it
ORIGIN = (-20.0, 15.0, 40.0)
# MR with fixed statistics: (x - 100) / 600 puts tissue (100 + noise) near 0, as zero outside,
# and the lesion (400) 0.5 above it, the contrast of the sphere model's training balls
MR_NORM = {"kind": "mr", "mean": 100.0, "std": 600.0}


def _mr_package(sphere_model, tmp_path, normalization=MR_NORM, inference=None):
    folder = tmp_path / "mr-model"
    folder.mkdir()
    shutil.copy(sphere_model.parent / "weights.safetensors", folder)
    data = json.loads(sphere_model.read_text(encoding="utf-8"))
    data["channels"] = [{"name": "T1", "modality": "MR", "normalization": normalization}]
    if inference is not None:
        data["inference"] = inference
    (folder / "model.json").write_text(json.dumps(data), encoding="utf-8")
    return folder / "model.json"


@pytest.fixture(scope="module")
def mr_predictor(sphere_model, tmp_path_factory):
    path = _mr_package(sphere_model, tmp_path_factory.mktemp("mr"))
    return Predictor.from_manifest_path(path, device="cpu", threads=2)


@pytest.fixture(scope="module")
def brain():
    """A skull-stripped-like MR on an oblique grid: a 'brain' ball of tissue (100 + noise), a
    bright lesion (400) inside it, exactly 0 outside; returns (Volume, lesion mask)."""
    image = make_sphere_image(SIZE, SPACING, ORIGIN, DIRECTION)
    centre = np.array(image.TransformContinuousIndexToPhysicalPoint([28, 26, 20]))
    lesion_mask = sphere_mask(image, centre, 10.0)
    head = sphere_mask(image, centre + [4.0, -3.0, 2.0], 26.0)
    noise = np.random.default_rng(0).normal(0.0, 25.0, lesion_mask.shape).clip(-90, 90)
    array = np.where(head, np.where(lesion_mask, 400.0, 100.0) + noise, 0.0).astype(np.float32)
    volume = Volume(array[None], SPACING, ORIGIN, DIRECTION, ("T1",))
    return volume, lesion_mask & head


def _model_slices(full, part):
    start = np.rint(full.physical_to_index(part.origin)).astype(int)[::-1]
    return tuple(slice(int(a), int(a) + n) for a, n in zip(start, part.shape_zyx))


def _surface(labels: np.ndarray) -> np.ndarray:
    """Voxels with a 6-neighbour of another label, and those neighbours' neighbours."""
    near = np.zeros(labels.shape, bool)
    for axis in range(3):
        edge = np.diff(labels, axis=axis) != 0
        lower = [slice(None)] * 3
        lower[axis] = slice(0, -1)
        upper = [slice(None)] * 3
        upper[axis] = slice(1, None)
        near[tuple(lower)] |= edge
        near[tuple(upper)] |= edge
    grown = near.copy()
    for axis in range(3):
        grown |= np.roll(near, 1, axis) | np.roll(near, -1, axis)
    return grown


def test_the_normalised_crop_is_part_of_the_normalised_whole_volume(brain):
    volume, _ = brain
    two = Volume(np.stack([volume.array[0], 2.0 * volume.array[0] ** 0.5]), SPACING, ORIGIN,
                 DIRECTION, ("T1", "T2"))  # fmt: skip
    norms = [{"kind": "mr"}, {"kind": "mr"}]  # statistics from the resampled voxels
    crop = nonzero_crop(two, (2.0, 2.0, 2.0), (32, 32, 32))
    assert crop is not None
    full = canonical_grid(two, (2.0, 2.0, 2.0))
    whole = normalize(resample_volume(two, full), norms).array
    part = normalize(resample_volume(crop.region, crop.grid, default=0.0), norms).array
    inside = _model_slices(full, crop.grid)
    np.testing.assert_allclose(crop.grid.direction, full.direction, atol=0)
    np.testing.assert_allclose(full.physical_to_index(crop.grid.origin) % 1, 0, atol=1e-9)
    np.testing.assert_allclose(part, whole[(slice(None),) + inside], rtol=0, atol=2e-6)
    outside = np.ones(full.shape_zyx, bool)
    outside[inside] = False
    assert not whole[:, outside].any()  # the crop holds every non-zero model voxel
    assert np.prod(crop.grid.shape_zyx) < 0.5 * np.prod(full.shape_zyx)


def test_same_labels_with_and_without_the_crop_on_an_oblique_grid(mr_predictor, brain):
    volume, lesion = brain
    on = mr_predictor.segment(volume, depth=2, return_probabilities=True)
    off = mr_predictor.segment(volume, depth=2, crop_nonzero=False)
    assert on.info["nonzero_crop"] is not None and off.info["nonzero_crop"] is None
    for result in (on, off):
        assert result.labels.grid.isclose(volume.grid, tolerance=0)
    assert dice(off.labels.array, lesion) > 0.9  # the model finds the lesion
    # the model sees the same voxels, but the tiles lie elsewhere in the crop (each tile's
    # instance normalisation sees other voxels), so a few voxels on the lesion's surface flip:
    # 13 of the ~530 labelled ones here (13 to 17 at depths 1 to 4; BraTS: docs/BENCHMARK_E2E.md)
    assert dice(on.labels.array, off.labels.array) > 0.98
    changed = on.labels.array != off.labels.array
    assert changed.sum() < 0.03 * lesion.sum()
    assert not (changed & ~_surface(off.labels.array)).any()
    assert on.probabilities.grid.isclose(volume.grid, tolerance=0)


def test_outside_the_box_is_background(mr_predictor, brain):
    volume, _ = brain
    crop = nonzero_crop(volume, (2.0, 2.0, 2.0), (32, 32, 32))
    result = mr_predictor.segment(volume, depth=2, return_probabilities=True, disagreement=True)
    assert result.info["nonzero_crop"] == list(crop.grid.shape_zyx)
    outside = np.ones(volume.shape_zyx, bool)
    outside[crop.slices] = False
    assert outside.any() and not outside.all()
    assert not result.labels.array[outside].any()
    np.testing.assert_array_equal(result.probabilities.array[0][outside], 1.0)
    np.testing.assert_array_equal(result.probabilities.array[1][outside], 0.0)
    assert result.disagreement.grid.isclose(volume.grid, tolerance=0)
    assert not result.disagreement.array[0][outside].any()
    assert result.disagreement.array[0][crop.slices].any()
    assert result.labels.array[crop.slices].any()


def test_ct_and_mixed_models_are_not_cropped(sphere_predictor, sphere_model, brain):
    volume, _ = brain
    ct = Volume(volume.array - 200.0, SPACING, ORIGIN, DIRECTION, ("CT",))  # air outside
    result = sphere_predictor.segment(ct, depth=1, crop_nonzero=True)
    assert result.info["nonzero_crop"] is None
    assert not crop_enabled(sphere_predictor.manifest, True)
    mixed = json.loads(sphere_model.read_text(encoding="utf-8"))
    mixed["network"]["in_channels"] = 2
    mixed["channels"].append({"name": "T1", "modality": "MR", "normalization": {"kind": "mr"}})
    assert not crop_enabled(ModelManifest.from_dict(mixed), True)


def test_the_manifest_option_switches_it_off(sphere_model, tmp_path, brain):
    path = _mr_package(sphere_model, tmp_path, inference={"crop_nonzero": False})
    manifest = ModelManifest.load(path)
    assert manifest.to_dict()["inference"] == {"crop_nonzero": False}
    assert not crop_enabled(manifest) and crop_enabled(manifest, True)
    predictor = Predictor(manifest, device="cpu", threads=2)
    assert predictor.segment(brain[0], depth=1).info["nonzero_crop"] is None
    data = json.loads(path.read_text(encoding="utf-8"))
    data["inference"] = {"crop_nonzero": "yes"}
    with pytest.raises(UNetPlusPlusError, match="crop_nonzero"):
        ModelManifest.from_dict(data)
    data["inference"] = {"crop": True}
    with pytest.raises(UNetPlusPlusError, match="inference.crop"):
        ModelManifest.from_dict(data)


def test_all_zero_and_negative_inputs_behave_as_before(mr_predictor, brain):
    volume, _ = brain
    zero = volume.with_array(np.zeros_like(volume.array))
    assert nonzero_crop(zero, (2.0, 2.0, 2.0), (32, 32, 32)) is None
    messages = []
    for crop in (True, False):
        with pytest.raises(UNetPlusPlusError) as error:
            mr_predictor.segment(zero, depth=1, crop_nonzero=crop)
        messages.append(str(error.value))
    assert messages[0] == messages[1]
    negative = volume.array.copy()
    negative[0, 0, 0, 0] = -1.0  # outside the image would not be 0: no crop
    assert nonzero_crop(volume.with_array(negative), (2.0, 2.0, 2.0), (32, 32, 32)) is None
    with pytest.raises(ValueError, match="margin"):
        nonzero_crop(volume, (2.0, 2.0, 2.0), (32, 32, 32), margin=-1)


def test_a_small_box_grows_to_a_tile(brain):
    volume, _ = brain
    dot = np.zeros_like(volume.array)
    dot[0, 20, 30, 30] = 7.0
    crop = nonzero_crop(volume.with_array(dot), (2.0, 2.0, 2.0), (32, 32, 32))
    assert crop is not None and crop.grid.shape_zyx == (32, 32, 32)
    full = canonical_grid(volume, (2.0, 2.0, 2.0))
    inside = _model_slices(full, crop.grid)
    assert all(0 <= s.start and s.stop <= n for s, n in zip(inside, full.shape_zyx))


def test_the_crop_reads_the_volume_in_place_without_a_copy(brain):
    # the crop's voxels are only resampled (SimpleITK copies them then): a read-only view of
    # the user's volume, not a second copy of it (228 MB on a 512x512x300 CT)
    volume, _ = brain
    crop = nonzero_crop(volume, (2.0, 2.0, 2.0), (32, 32, 32))
    assert crop is not None and np.shares_memory(crop.region.array, volume.array)
    assert not crop.region.array.flags.writeable and volume.array.flags.writeable
    assert np.array_equal(crop.region.array, volume.array[(slice(None),) + crop.slices])


def test_tiles_beyond_the_volume_are_padded_with_each_channels_value():
    import torch
    from UNetPlusPlusLib.engine.normalize import padding_values
    from UNetPlusPlusLib.engine.tiling import _pad_to_tile

    image = torch.arange(2 * 4 * 5 * 6, dtype=torch.float32).reshape(2, 4, 5, 6) - 50.0
    padded, crop = _pad_to_tile(image, (8, 5, 6), [0.0, None])
    assert tuple(padded.shape) == (2, 8, 5, 6)
    assert torch.equal(padded[(slice(None),) + crop], image)
    outside = torch.ones(8, dtype=torch.bool)
    outside[crop[0]] = False
    assert bool((padded[0, outside] == 0.0).all())  # MR: 0, the value outside the anatomy
    assert bool((padded[1, outside] == image[1].min()).all())  # otherwise: the minimum (air)
    kinds = [{"kind": "mr"}, {"kind": "ct", "window": [-1000, 1000]}, {"kind": "none"}]
    assert padding_values(kinds) == [0.0, None, None]


def test_a_slab_thinner_than_half_a_tile_warns_and_is_not_labelled_everywhere(mr_predictor, brain):
    volume, _ = brain
    whole = mr_predictor.segment(volume, depth=2)
    assert not any("thick along" in w for w in whole.info["warnings"])
    slab = Volume(
        np.ascontiguousarray(volume.array[:, 18:22]),  # 4 slices of 2.4 mm through the lesion
        volume.spacing,
        volume.grid.index_to_physical((0, 0, 18)),
        volume.direction,
        volume.channel_names,
    )
    result = mr_predictor.segment(slab, depth=2)
    assert any("thick along its head-feet (k) axis" in w for w in result.info["warnings"])
    labelled = result.labels.array > 0
    assert not labelled[slab.array[0] == 0].any()  # nothing outside the 'brain'
    assert labelled.mean() < 0.5


def test_a_kept_prepared_input_gives_the_same_labels(mr_predictor, sphere_predictor, brain):
    """``memo`` (the warm engine's, engine/prepare.py): another depth, TTA or a click on the same
    volume reuse or replace the prepared input; the labels and their geometry are those of a
    run without it, and the kept image is never written into."""
    import torch

    volume, _ = brain
    memo: dict = {}
    first = mr_predictor.segment(volume, depth=1, memo=memo)
    kept = memo["prepared"][1]
    image = kept.image.clone()
    runs = {
        "L2": {"depth": 2},
        "L1 tta": {"depth": 1, "tta": True},  # TTA at L1: half the cost of L2
        "L1": {"depth": 1},
    }
    for name, options in runs.items():
        reused = mr_predictor.segment(volume, memo=memo, **options)
        # L1 without a kept input: ``first`` (it prepared its own)
        fresh = first if name == "L1" else mr_predictor.segment(volume, **options)
        assert memo["prepared"][1] is kept, name  # the same region: nothing prepared again
        np.testing.assert_array_equal(reused.labels.array, fresh.labels.array, err_msg=name)
        assert reused.labels.grid.isclose(volume.grid, tolerance=0)
        assert reused.info["nonzero_crop"] == fresh.info["nonzero_crop"] is not None
    assert torch.equal(kept.image, image)
    np.testing.assert_array_equal(first.labels.array, reused.labels.array)  # L1 again
    centre = volume.grid.index_to_physical([28, 26, 20])
    mr_predictor.segment(volume, depth=1, point=centre, memo=memo)  # another region: replaced
    assert memo["prepared"][1] is not kept
    again = mr_predictor.segment(volume, depth=1, memo=memo)
    np.testing.assert_array_equal(again.labels.array, first.labels.array)
    off = mr_predictor.segment(volume, depth=1, crop_nonzero=False, memo=memo)
    assert off.info["nonzero_crop"] is None  # the crop setting is part of what is kept
    mr_kept = memo["prepared"][1]
    sphere_predictor.segment(volume, depth=1, crop_nonzero=False, memo=memo)  # another model
    assert memo["prepared"][1] is not mr_kept
