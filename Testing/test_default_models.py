"""The shipped default models (UNetPlusPlusLib/Resources/Models): packages, checksums, a real case.

Each model segments one small real case it did not train on, and must reach a Dice floor set a
little below what the shipped weights measured on that case (see the model cards). Liver runs on
the bundled example CT (held out from training) with its bundled TotalSegmentator liver label;
the nodule and brain-tumour checks need ../shared/data and skip without it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.manifest import ModelManifest, load_weights, sha256_file
from UNetPlusPlusLib.engine.predictor import Predictor
from UNetPlusPlusLib.engine.volume import Box
from UNetPlusPlusLib.errors import ChecksumError

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "UNetPlusPlus" / "UNetPlusPlusLib" / "Resources" / "Models"
TASKS = ("liver", "lung-nodule", "brain-tumor")
EXAMPLE_CT = REPO / "Resources" / "Examples" / "example_ct.nii.gz"
EXAMPLE_LIVER = REPO / "Testing" / "fixtures" / "example_ct_liver.nii.gz"

# Dice floors, a little below what the shipped models measured on these very cases.
# Measured with the retrained models (issue 11): liver 0.896 in the ROI below (0.914 on the whole
# CT, volume -8.4 %), brain whole tumour 0.832 (0.808 before the small-component removal of
# session 5); the session-5 nodule model 0.776 (session 4: 0.786).
LIVER_FLOOR = 0.87
LIVER_WHOLE_CT_FLOOR = 0.89
LIVER_VOLUME_TOLERANCE = 0.10  # the target: predicted volume within 10 % of the reference
NODULE_FLOOR = 0.76
BRAIN_WHOLE_TUMOUR_FLOOR = 0.81
NODULE_CASE = "LIDC-IDRI-0004_R_1"
BRAIN_CASE = "Brats18_CBICA_ALU_1"


def dice(prediction: np.ndarray, reference: np.ndarray) -> float:
    total = int(prediction.sum()) + int(reference.sum())
    return 1.0 if total == 0 else 2.0 * int((prediction & reference).sum()) / total


def package(task: str) -> ModelManifest:
    return ModelManifest.load(MODELS / task / "model.json")


def predictor(task: str) -> Predictor:
    return Predictor.from_manifest_path(MODELS / task / "model.json", device="cpu", threads=2)


def box_around(mask: np.ndarray, image: sitk.Image, margin_mm: float) -> Box:
    """Physical box (LPS corners) around a (z, y, x) mask on an axis-aligned image."""
    where = np.argwhere(mask)
    low = image.TransformIndexToPhysicalPoint([int(v) for v in where.min(axis=0)[::-1]])
    high = image.TransformIndexToPhysicalPoint([int(v) for v in where.max(axis=0)[::-1]])
    low, high = np.minimum(low, high) - margin_mm, np.maximum(low, high) + margin_mm
    return Box(tuple(low), tuple(high))


@pytest.mark.parametrize("task", TASKS)
def test_package_loads_with_checksum_and_per_depth_validation(task):
    manifest = package(task)
    assert manifest.task == task
    weights = MODELS / task / manifest.weights
    assert sha256_file(weights) == manifest.sha256
    state = load_weights(manifest)
    assert all(t.dtype.is_floating_point for t in state.values())
    raw = json.loads((MODELS / task / "model.json").read_text(encoding="utf-8"))
    assert weights.stat().st_size < 8 * 2**20, "keep the packages a few MB (fp16 weights)"
    per_depth = raw["validation"]["per_depth"]
    assert set(per_depth) == {"1", "2", "3", "4", "ensemble"}
    for entry in per_depth.values():
        assert entry["seconds_per_volume"] > 0
        assert all(0.0 <= v <= 1.0 for v in entry["dice"].values() if v is not None)
    assert raw["validation"]["cases"], "the validation split must be recorded"
    assert raw["training"]["command"] and raw["training"]["commit"]
    assert (MODELS / task / "CARD.md").is_file()
    assert (MODELS / task / "speed_accuracy.png").is_file()


def test_checksum_mismatch_is_refused(tmp_path):
    source = MODELS / "liver"
    for name in ("model.json", "weights.safetensors"):
        (tmp_path / name).write_bytes((source / name).read_bytes())
    data = bytearray((tmp_path / "weights.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / "weights.safetensors").write_bytes(bytes(data))
    with pytest.raises(ChecksumError):
        load_weights(ModelManifest.load(tmp_path / "model.json"))


def test_interfaces_names_codes_channels_and_prompt():
    liver, nodule, brain = (package(t) for t in TASKS)
    assert [(x.name, x.terminology["type"]["code"]) for x in liver.labels] == [
        ("liver", "10200004")
    ]
    assert [(x.name, x.terminology["type"]["code"]) for x in nodule.labels] == [
        ("nodule", "27925004")
    ]
    assert nodule.prompt is not None and nodule.prompt["kind"] == "point"
    assert [c.name for c in brain.channels] == ["FLAIR", "T1", "T1ce", "T2"]
    assert [x.name for x in brain.labels] == [
        "necrotic / non-enhancing tumour core",
        "oedema",
        "enhancing tumour",
    ]
    assert [x.value for x in brain.labels] == [1, 2, 3]
    assert all(x.terminology and x.terminology.get("type") for x in brain.labels)


def test_liver_segments_the_held_out_example_ct():
    """The demo case; it was held out from the liver model's training."""
    assert "ts-example-ct" in package("liver").validation["cases"]
    volume = read_volume([EXAMPLE_CT])
    reference_image = sitk.ReadImage(str(EXAMPLE_LIVER))
    reference = sitk.GetArrayFromImage(reference_image) > 0
    roi = box_around(reference, reference_image, margin_mm=15.0)
    result = predictor("liver").segment(volume, roi=roi)
    labels = result.labels
    assert labels.array.shape == reference.shape
    assert labels.spacing == volume.spacing
    score = dice(labels.array == 1, reference)
    assert score >= LIVER_FLOOR, f"liver Dice {score:.3f} on the example CT"


def test_liver_volume_on_the_whole_example_ct_is_within_ten_percent():
    """The first shipped model under-segmented this case by 28 %; the retrained one must not."""
    volume = read_volume([EXAMPLE_CT])
    reference = sitk.GetArrayFromImage(sitk.ReadImage(str(EXAMPLE_LIVER))) > 0
    mask = predictor("liver").segment(volume).labels.array == 1
    assert dice(mask, reference) >= LIVER_WHOLE_CT_FLOOR
    error = (int(mask.sum()) - int(reference.sum())) / int(reference.sum())
    assert abs(error) <= LIVER_VOLUME_TOLERANCE, f"liver volume {100 * error:+.1f} %"


def test_lung_nodule_point_prompt_on_a_held_out_crop(shared_data):
    assert NODULE_CASE in package("lung-nodule").validation["cases"]
    folder = shared_data / "lung-nodule" / "lidc-vois"
    image_path = folder / "image" / f"{NODULE_CASE}.nii.gz"
    image = sitk.ReadImage(str(image_path))
    reference = (
        sitk.GetArrayFromImage(
            sitk.ReadImage(str(folder / "nodule_mask" / f"{NODULE_CASE}.nii.gz"))
        )
        > 0
    )
    centre = image.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2.0 for s in image.GetSize()])
    result = predictor("lung-nodule").segment(read_volume([image_path]), point=tuple(centre))
    score = dice(result.labels.array == 1, reference)
    assert score >= NODULE_FLOOR, f"nodule Dice {score:.3f} on {NODULE_CASE}"


def test_brain_tumour_on_a_held_out_case(shared_data):
    assert BRAIN_CASE in package("brain-tumor").validation["cases"]
    folder = shared_data / "brain-tumor" / "brats2018" / BRAIN_CASE
    paths = [folder / f"{BRAIN_CASE}_{s}.nii.gz" for s in ("flair", "t1", "t1ce", "t2")]
    volume = read_volume(paths, channel_names=("FLAIR", "T1", "T1ce", "T2"))
    reference_image = sitk.ReadImage(str(folder / f"{BRAIN_CASE}_seg.nii.gz"))
    reference = sitk.GetArrayFromImage(reference_image)
    # the whole volume, as the card reports it (an ROI now uses the whole volume's MR statistics)
    labels = predictor("brain-tumor").segment(volume).labels.array
    assert set(np.unique(labels)) <= {0, 1, 2, 3}
    score = dice(labels > 0, reference > 0)
    assert score >= BRAIN_WHOLE_TUMOUR_FLOOR, f"whole-tumour Dice {score:.3f} on {BRAIN_CASE}"
