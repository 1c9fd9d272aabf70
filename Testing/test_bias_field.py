"""The bias-field (intensity non-uniformity) check of MR inputs (engine/bias_field.py).

A synthetic brain-like phantom (folded grey and white matter, ventricles, a lesion; no shared
data needed) passes, and the same phantom under a smooth field (linear or quadratic, oblique
too, on all channels or on one) is warned about, naming the channel(s); the streamed ``--roi``
path decides on the same voxels; models without a reference (CT, older packages) skip the check.
Then a real BraTS case (skipped without ../shared/data): no warning as it is, a warning under a
2x field.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from UNetPlusPlusLib.engine import bias_field as bf
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.manifest import ModelManifest
from UNetPlusPlusLib.engine.sanity import check_model_input
from UNetPlusPlusLib.engine.streamed_checks import check_files
from UNetPlusPlusLib.engine.volume import Volume
from UNetPlusPlusLib.errors import UNetPlusPlusError

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "UNetPlusPlus" / "UNetPlusPlusLib" / "Resources" / "Models"
NAMES = ("FLAIR", "T1", "T1ce", "T2")
# intensity of (white matter, grey matter, CSF, lesion) in each synthetic sequence
CONTRASTS = np.array(
    [[300, 350, 80, 700], [500, 400, 150, 350], [500, 420, 160, 900], [250, 350, 900, 700]],
    dtype=np.float32,
)
SPACING = (1.5, 1.5, 1.5)
SHAPE = (100, 112, 96)  # z, y, x: 100 slices, so streamed slabs start off the coarse grid


def phantom(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """((4, z, y, x) float32 skull-stripped 'brain', (z, y, x) coordinates in mm about its
    centre): an ellipsoid of folded grey / white matter, two ventricles and a lesion on one
    side, each sequence with its own contrast and noise; 0 outside."""
    rng = np.random.default_rng(seed)
    axes = [(np.arange(n) - n / 2) * s for n, s in zip(SHAPE, SPACING[::-1])]
    z, y, x = np.meshgrid(*axes, indexing="ij", sparse=True)
    inside = (z / 70) ** 2 + (y / 80) ** 2 + (x / 68) ** 2 < 1
    folds = np.sin(z / 4.0) * np.sin(y / 5.0) * np.sin(x / 4.5) > 0.1
    tissue = np.where(folds, 1, 0)
    ventricles = ((np.abs(x) - 12) / 6) ** 2 + (y / 25) ** 2 + (z / 10) ** 2 < 1
    lesion = (x - 35) ** 2 + (y + 10) ** 2 + (z - 10) ** 2 < 18**2
    tissue = np.where(ventricles, 2, np.where(lesion, 3, tissue))
    image = CONTRASTS[:, tissue] + rng.normal(0, 20, (4, *SHAPE)).astype(np.float32)
    image = np.where(inside, np.maximum(image, 1.0), 0.0).astype(np.float32)
    return image, np.stack(np.broadcast_arrays(z, y, x))


def field(coords: np.ndarray, ratio: float, direction_xyz, quadratic: bool = False):
    """A smooth (z, y, x) field with max/min ``ratio`` over the phantom's ellipsoid (its
    brain), log-linear or log-quadratic along ``direction_xyz``."""
    d = np.asarray(direction_xyz, dtype=np.float64)[::-1] / np.linalg.norm(direction_xyz)
    along = np.tensordot(d, coords, axes=1)
    along = along**2 if quadratic else along
    brain = phantom()[0][0] > 0
    low, high = along[brain].min(), along[brain].max()
    return np.exp(np.log(ratio) * ((along - low) / (high - low) - 0.5)).astype(np.float32)


def manifest_with(tmp_path: Path, reference: dict | None, model: str = "brain-tumor"):
    """The shipped model's manifest with ``inference.bias_field`` = ``reference`` (None: none)
    and no other inference reference (no weights are read by the checks)."""
    data = json.loads((MODELS / model / "model.json").read_text(encoding="utf-8"))
    data["inference"] = {} if reference is None else {"bias_field": reference}
    path = tmp_path / "model" / "model.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return ModelManifest.load(path)


REFERENCE = {"version": 1, "warn_ratio": 2.2, "linear_warn_ratio": 1.8, "channel_warn_ratio": 3.6}


def as_volume(array: np.ndarray) -> Volume:
    return Volume(array, SPACING, (-70.0, 20.0, 5.0), np.eye(3), channel_names=NAMES)


# ------------------------------------------------------------------------ synthetic phantom
def test_uniform_phantom_is_not_warned(tmp_path):
    image, _ = phantom()
    manifest = manifest_with(tmp_path, REFERENCE)
    assert check_model_input(manifest, as_volume(image)) == []
    steps = bf.grid_steps(SPACING)
    found = bf.field_strength([bf.coarse_grid(c, steps) for c in image], [6.0] * 3)
    assert found.common < 1.5 and max(found.channels) < 2.0


@pytest.mark.parametrize(
    "direction, quadratic, ratio",
    [
        ((1, 0, 0), False, 3),
        ((0, 0, 1), False, 3),
        ((1, 1, 1), False, 3),
        ((1, -1, 2), False, 3),
        ((1, 0, 1), True, 4),
        ((0, 1, 0), True, 4),
    ],
)  # a quadratic field is strongest at the brain edge, which the blocks miss: 4x
def test_a_strong_field_on_every_channel_is_warned(tmp_path, direction, quadratic, ratio):
    image, coords = phantom()
    biased = image * field(coords, ratio, direction, quadratic)
    before = biased.copy()
    volume = as_volume(biased)
    warnings = check_model_input(manifest_with(tmp_path, REFERENCE), volume)
    assert len(warnings) == 1
    message = warnings[0]
    assert "bias field" in message and "N4" in message and "\n" not in message
    assert all(name in message for name in NAMES)
    assert np.array_equal(volume.array, before) and volume.spacing == SPACING  # untouched


def test_a_weak_field_is_not_warned(tmp_path):
    image, coords = phantom()
    biased = image * field(coords, 1.2, (1, 1, 1))
    assert check_model_input(manifest_with(tmp_path, REFERENCE), as_volume(biased)) == []


def test_a_field_in_one_channel_names_that_channel(tmp_path):
    image, coords = phantom()
    image[1] *= field(coords, 6.0, (1, -1, 1))
    warnings = check_model_input(manifest_with(tmp_path, REFERENCE), as_volume(image))
    assert len(warnings) == 1
    assert "in T1 " in warnings[0] and "above 3.6x in one channel" in warnings[0]
    assert not any(f"{name} " in warnings[0] for name in ("FLAIR", "T1ce", "T2"))


def test_streamed_grids_decide_as_the_whole_array(tmp_path):
    """``--roi`` checks the files slab by slab: the same coarse voxels, the same warning."""
    image, coords = phantom()
    image = image * field(coords, 3.0, (1, 1, 0))
    manifest = manifest_with(tmp_path, REFERENCE)
    paths = []
    for name, channel in zip(NAMES, image):
        paths.append(tmp_path / f"{name}.nii.gz")
        itk = sitk.GetImageFromArray(channel)
        itk.SetSpacing(SPACING)
        sitk.WriteImage(itk, str(paths[-1]))
    volume = read_volume(paths, NAMES)
    whole = check_model_input(manifest, volume)

    def bias_check(grids, spacing):
        assert [g.shape for g in grids] == [(34, 38, 32)] * 4
        return bf.check_bias_field(manifest, [], spacing, grids)

    streamed = check_files(paths, ["MR"] * 4, NAMES, slab_voxels=20_000, bias_check=bias_check)
    assert len(whole) == 1 and streamed == whole


def test_warm_cache_and_slicer_logic_warn_too(tmp_path):
    """``unetpp serve``'s cached checks and the Slicer Logic (real MRML, int16 nodes, slicer-core)
    give the same warning before any job starts."""
    from test_channel_order import mrml_channel_nodes
    from UNetPlusPlusLib.warm_cache import WarmCache

    image, coords = phantom()
    image = image * field(coords, 3.0, (1, 1, 1))
    manifest = manifest_with(tmp_path, REFERENCE)
    cached = WarmCache().input_checks(manifest, as_volume(image))
    assert len(cached) == 1 and "bias field" in cached[0]
    scene, nodes = mrml_channel_nodes(image)  # int16 nodes at 1 mm
    from UNetPlusPlusLib.adapter.logic import SegmentationLogic

    logic = SegmentationLogic(persistent=False)
    try:
        warnings = logic.check_inputs(nodes, manifest)
    finally:
        logic.shutdown()
    assert len(warnings) == 1 and "bias field" in warnings[0]
    assert all(name in warnings[0] for name in NAMES)


def test_models_without_a_reference_are_not_checked(tmp_path):
    image, coords = phantom()
    biased = image * field(coords, 4.0, (1, 0, 1))
    assert check_model_input(manifest_with(tmp_path, None), as_volume(biased)) == []
    liver = ModelManifest.load(MODELS / "liver" / "model.json")  # a CT model: no reference
    assert bf.manifest_reference(liver) is None
    assert bf.check_bias_field(liver, [biased[0]], SPACING) == []


def test_too_little_brain_is_not_measured():
    image, _ = phantom()
    assert bf.field_strength([c[:8, :8, :8] for c in image], [6.0] * 3) is None
    with pytest.raises(ValueError):
        bf.field_strength([image[0], image[1][:-4]], [6.0] * 3)


@pytest.mark.parametrize(
    "change, message",
    [({"version": 2}, "version"), ({"warn_ratio": 0.9}, "warn_ratio"),
     ({"channel_warn_ratio": "high"}, "channel_warn_ratio")],
)  # fmt: skip
def test_a_bad_reference_is_refused_when_the_manifest_loads(tmp_path, change, message):
    reference = {**copy.deepcopy(REFERENCE), **change}
    with pytest.raises(UNetPlusPlusError, match="bias_field") as error:
        manifest_with(tmp_path, reference)
    assert message in str(error.value)


def test_build_reference_refuses_a_threshold_a_training_case_reaches():
    found = [bf.FieldStrength(1.5, [1.6, 2.0], 1.2), bf.FieldStrength(1.8, [1.7, 2.5], 1.4)]
    reference = bf.build_reference(found, 2.2, 1.8, 3.6, ["a", "b"])
    expected = {"common": 1.8, "linear": 1.4, "channels": [1.7, 2.5]}
    assert reference["training_max"] == expected
    assert bf.parse_reference(reference, 2) == reference
    for ratios in ((1.7, 1.8, 3.6), (2.2, 1.3, 3.6), (2.2, 1.8, 2.5)):
        with pytest.raises(ValueError):
            bf.build_reference(found, *ratios)


# ------------------------------------------------------------------------ a real case
def test_brats_case_passes_and_warns_under_a_2x_field(brats_store):
    manifest = ModelManifest.load(MODELS / "brain-tumor" / "model.json")  # the shipped reference
    volume = brats_store.volume("Brats18_2013_11_1")  # read_volume of its four files, read-only
    assert not [w for w in check_model_input(manifest, volume) if "bias field" in w]
    brain = np.all(volume.array != 0, axis=0)
    z = np.arange(volume.array.shape[1], dtype=np.float32)[:, None, None]  # 1 mm slices
    low, high = np.nonzero(brain.any(axis=(1, 2)))[0][[0, -1]]
    ramp = np.exp(np.log(2.0) * ((z - low) / (high - low) - 0.5))  # 2x over the brain
    biased = Volume(volume.array * ramp, volume.spacing, volume.origin, volume.direction, NAMES)
    warnings = [w for w in check_model_input(manifest, biased) if "bias field" in w]
    assert len(warnings) == 1 and all(name in warnings[0] for name in NAMES)
