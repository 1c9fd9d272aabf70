"""training/dataset_label_checks.py: the model's result checks on each training case's labels.

The fresh-user tester's case: the liver model's result on the heart of ``pulm_ct_cropped``
(warned at inference) exported as a "liver" training label, and a fine-tune of the liver model
on it ran without a word. Real labelled cases of each task stay silent; a mirrored label, a
10x voxel volume and a CT flipped front-back are warned; ``--strict-labels`` refuses before any
training step.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
import SimpleITK as sitk
from UNetPlusPlusLib.engine.registry import find_model
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.training.cli import main
from UNetPlusPlusLib.training.dataset_check import check_dataset
from UNetPlusPlusLib.training.dataset_json import load_dataset_json

DATASETS = Path(__file__).resolve().parents[1] / "UNetPlusPlus/UNetPlusPlusLib/Resources/Datasets"
EXAMPLES = Path("liver") / "totalsegmentator-examples"
TINY = [
    "--tile", "32", "32", "32", "--batch-size", "1", "--no-progress", "--threads", "1",
    "--no-augment", "--epochs", "1", "--iterations-per-epoch", "1", "--precision", "fp32",
]  # fmt: skip
HEART = "is not where a liver lies: it lies between the lungs, where the heart is"


def write_liver_dataset(root: Path, cases: dict, postprocess: Optional[dict] = None) -> Path:
    """``image/<case>.nii`` + ``label/<case>.nii`` (1 = liver) per case of ``cases`` (name ->
    (CT image, label image)) and a one-channel CT dataset.json (with ``postprocess``, if
    given); returns its path."""
    for folder in ("image", "label"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for case, (image, label) in cases.items():
        sitk.WriteImage(image, str(root / "image" / f"{case}.nii"))
        sitk.WriteImage(label, str(root / "label" / f"{case}.nii"))
    description = {
        "name": "my-livers",
        "task": "liver",
        "channels": [{"name": "CT", "modality": "CT", "window": [-160, 240]}],
        "labels": ["liver"],
        "sources": [
            {
                "images": ["image/{case}.nii"],
                "label": "label/{case}.nii",
                "label_map": {"liver": [1]},
            }
        ],
    }
    if postprocess is not None:
        description["postprocess"] = postprocess
    path = root / "dataset.json"
    path.write_text(json.dumps(description))
    return path


def as_label(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    label = sitk.GetImageFromArray(array.astype(np.uint8))
    label.CopyInformation(reference)
    return label


@pytest.fixture(scope="module")
def heart_label(shared_data):
    """pulm_ct_cropped and the liver model's depth-1 result on it: "liver" on the heart."""
    from UNetPlusPlusLib.engine.image_read import read_volume
    from UNetPlusPlusLib.engine.predictor import Predictor

    path = shared_data / EXAMPLES / "pulm_ct_cropped.nii.gz"
    volume = read_volume([path], ["CT"])
    result = Predictor.from_task("liver", device="cpu", threads=2).segment(volume, depth=1)
    ct = sitk.ReadImage(str(path))
    return ct, as_label(result.labels.array > 0, ct)


@pytest.fixture()
def heart_dataset(heart_label, tmp_path):
    return write_liver_dataset(tmp_path / "data", {"pulm": heart_label})


def test_a_liver_label_on_the_heart_is_warned_with_the_case_and_label(heart_dataset):
    dataset = load_dataset_json(heart_dataset, heart_dataset.parent)
    warnings = check_dataset(dataset, init=find_model("liver"))
    assert len(warnings) == 1
    assert warnings[0].startswith(f"Case 'pulm': its label 'liver' {HEART}")
    assert "--strict-labels" in warnings[0]
    # the rules are the --init model's: training from scratch declares none
    assert check_dataset(dataset) == []


def test_the_dataset_descriptions_own_volume_range_applies_without_init(heart_label, tmp_path):
    ranges = {"plausible_ml": {"liver": [0, 300]}}
    path = write_liver_dataset(tmp_path, {"pulm": heart_label}, postprocess=ranges)
    warnings = check_dataset(load_dataset_json(path, tmp_path))
    assert len(warnings) == 1
    assert warnings[0].startswith("Case 'pulm': its label 'liver' is 442 ml, more than the 300 ml")


def test_strict_labels_refuses_before_any_training(heart_dataset, capsys):
    out = heart_dataset.parent.parent / "model"
    args = [str(heart_dataset.parent), "--dataset-json", str(heart_dataset), "-o", str(out)]
    args += ["--init", "liver", *TINY]
    assert main([*args, "--strict-labels"]) == 2
    error = capsys.readouterr().err
    assert "has 1 problem(s); nothing was trained or written" in error
    assert f"Case 'pulm': its label 'liver' {HEART}" in error
    assert not out.exists()  # no plan, no log, no step


def test_mirrored_label_tenfold_volume_and_flipped_image_are_warned(shared_data, tmp_path):
    ct = sitk.ReadImage(str(shared_data / EXAMPLES / "example_ct.nii.gz"))
    seg = sitk.GetArrayFromImage(
        sitk.ReadImage(str(shared_data / EXAMPLES / "example_seg_fast_force_split.nii.gz"))
    )
    liver = seg == 5
    big_ct = sitk.Image(ct)
    big_ct.SetSpacing([s * 10 ** (1 / 3) for s in ct.GetSpacing()])  # 10x the voxel volume
    flipped_ct = sitk.GetImageFromArray(sitk.GetArrayFromImage(ct)[:, ::-1].copy())
    flipped_ct.CopyInformation(ct)  # the array flipped front-back, the header kept
    cases = {
        "good": (ct, as_label(liver, ct)),
        "mirrored": (ct, as_label(liver[:, :, ::-1], ct)),
        "tenfold": (big_ct, as_label(liver, big_ct)),
        "flipped": (flipped_ct, as_label(liver[:, ::-1], flipped_ct)),
    }
    path = write_liver_dataset(tmp_path, cases)
    warnings = check_dataset(load_dataset_json(path, tmp_path), init=find_model("liver"))
    by_case = {w.split("'")[1]: w for w in warnings}
    assert sorted(by_case) == ["flipped", "mirrored", "tenfold"] and len(warnings) == 3
    assert "its label 'liver' is not where a liver lies: its centre lies" in by_case["mirrored"]
    assert "left of the body's midline" in by_case["mirrored"]
    assert "its label 'liver' is 11257 ml, more than the 3000 ml" in by_case["tenfold"]
    assert "its image 'CT' seems flipped front to back" in by_case["flipped"]
    assert "A model trained on it learns a mirrored body" in by_case["flipped"]
    with pytest.raises(UNetPlusPlusError, match="has 3 problem"):
        check_dataset(
            load_dataset_json(path, tmp_path), init=find_model("liver"), strict_labels=True
        )


@pytest.mark.parametrize(
    "task, description, folder, max_cases",
    [
        ("liver", "liver-lits.json", "liver", None),
        ("brain-tumor", "brats2018.json", "brain-tumor/brats2018", 6),
        ("lung-nodule", "lidc-vois.json", "lung-nodule/lidc-vois", 60),
    ],
)
def test_real_labelled_cases_of_each_task_pass_in_silence(
    shared_data, task, description, folder, max_cases
):
    dataset = load_dataset_json(DATASETS / description, shared_data / folder)
    assert check_dataset(dataset, max_cases, init=find_model(task)) == []


@pytest.mark.parametrize(
    "postprocess, said",
    [
        ({"plausible_ml": {"liver": [3000, 0]}}, "'postprocess.plausible_ml' ['liver'] must"),
        ({"plausible_ml": {"heart": [0, 900]}}, "'postprocess.plausible_ml' names 'heart'"),
        ({"largest_component": "yes"}, "'postprocess.largest_component' must be true or false"),
        ({"min_component_fraction": 2}, "'postprocess.min_component_fraction' must be a number"),
        ([0, 3000], "'postprocess' must be a JSON object (got list)"),
    ],
)
def test_a_bad_postprocess_is_one_dataset_error_before_anything_is_written(
    tmp_path, capsys, postprocess, said
):
    """The manifest's postprocess checks, on dataset.json when it is read: a bad
    ``largest_component`` failed only when the trained model was saved (after planning and
    training, the checkpoint kept), a list with an AttributeError traceback."""
    values = np.full((16, 16, 16), -1000, dtype=np.int16)
    values[4:12, 4:12, 4:12] = 60
    image = sitk.GetImageFromArray(values)
    path = write_liver_dataset(
        tmp_path / "data", {"a": (image, as_label(values > 0, image))}, postprocess
    )
    out = tmp_path / "model"
    assert main([str(path.parent), "--dataset-json", str(path), "-o", str(out), *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: Dataset description {path}: "), err
    assert said in err[0] and not out.exists()


def test_label_checks_refuse_ranges_that_bypassed_the_description_checks(tmp_path):
    """A DatasetDescription built in code (not read from dataset.json) with a bad range: an
    error naming the field, not the range ignored in silence."""
    import dataclasses

    image = sitk.GetImageFromArray(np.zeros((4, 4, 4), dtype=np.int16))
    path = write_liver_dataset(tmp_path, {"a": (image, image)})
    dataset = load_dataset_json(path, tmp_path)
    from UNetPlusPlusLib.training.dataset_label_checks import LabelChecks

    bad = dataclasses.replace(dataset, postprocess={"plausible_ml": {"liver": [-1, 5]}})
    with pytest.raises(UNetPlusPlusError, match=r"'postprocess.plausible_ml' \['liver'\] must"):
        LabelChecks(bad)


@pytest.mark.parametrize(
    "field, value, said",
    [
        ("prompt", {"kind": "box"}, "'prompt.kind' must be one of point or null"),
        ("features", ["a", 32, 64, 128, 256, 16], "'features[0]' must be an integer"),
    ],
)
def test_the_model_fields_of_a_description_are_checked_when_it_is_read(
    tmp_path, field, value, said
):
    """``prompt`` failed only at the model's save; a feature that is not a number with a
    ValueError traceback."""
    image = sitk.GetImageFromArray(np.zeros((4, 4, 4), dtype=np.int16))
    path = write_liver_dataset(tmp_path, {"a": (image, image)})
    description = json.loads(path.read_text())
    description[field] = value
    path.write_text(json.dumps(description))
    with pytest.raises(UNetPlusPlusError, match=rf"^Dataset description {path}: ") as raised:
        load_dataset_json(path, tmp_path)
    assert said in str(raised.value)
