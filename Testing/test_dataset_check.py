"""Training validates the whole dataset before preprocessing and reports every problem at once,
writing nothing (training/dataset_check.py, output_guard.py); issue 9, cases 5 and 6.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from test_training_dataset import _image, ball, write_slicer_case
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.training.cli import main
from UNetPlusPlusLib.training.dataset_check import check_dataset
from UNetPlusPlusLib.training.dataset_json import load_dataset_json
from UNetPlusPlusLib.training.dataset_slicer import describe_slicer_export
from UNetPlusPlusLib.training.output_guard import remove_on_failure

TINY = [
    "--tile", "32", "32", "32", "--features", "4", "8", "16", "32", "64", "4",
    "--batch-size", "1", "--no-progress", "--threads", "1", "--no-augment",
]  # fmt: skip
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def write_labelmap_dataset(tmp_path: Path, liver_value: int = 64) -> tuple[Path, Path]:
    """Two cases whose labelmaps hold 0/63/126, and a dataset.json mapping liver to a value."""
    root = tmp_path / "data"
    (root / "image").mkdir(parents=True)
    (root / "label").mkdir()
    for i in range(2):
        rng = np.random.default_rng(i)
        image = rng.normal(-800, 20, (24, 24, 24))
        labels = np.zeros((24, 24, 24), np.uint8)
        labels[ball((8, 8, 8), 4)] = 63
        labels[ball((16, 16, 16), 4)] = 126
        image[labels > 0] = 60
        sitk.WriteImage(_image(image.astype(np.int16)), str(root / "image" / f"c{i}.nii.gz"))
        sitk.WriteImage(_image(labels), str(root / "label" / f"c{i}.nii.gz"))
    description = {
        "name": "values",
        "channels": [{"name": "CT", "modality": "CT"}],
        "labels": ["liver", "spleen"],
        "sources": [
            {
                "images": ["image/{case}.nii.gz"],
                "label": "label/{case}.nii.gz",
                "label_map": {"liver": [liver_value], "spleen": [126]},
            }
        ],
    }
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps(description))
    return root, path


def test_issue_case_5_absent_label_value_is_refused_before_anything_is_written(tmp_path, capsys):
    root, description = write_labelmap_dataset(tmp_path, liver_value=64)
    out = tmp_path / "model"
    assert main([str(root), "--dataset-json", str(description), "-o", str(out), *TINY]) == 2
    error = capsys.readouterr().err
    assert "label 'liver' (value 64) occurs in no case" in error
    assert "the label files hold the values 0, 63, 126" in error
    assert not out.exists()
    # the right value passes the check
    _, fixed = write_labelmap_dataset(tmp_path / "fixed", liver_value=63)
    assert check_dataset(load_dataset_json(fixed, tmp_path / "fixed" / "data")) == []


def test_label_values_become_classes_in_one_lookup_later_labels_winning(tmp_path):
    """A value mapped to two labels goes to the later one (as one np.isin per label did),
    values the label file cannot hold are ignored, and the class counts (np.bincount's, in
    one comparison per class) say which labels occur."""
    from UNetPlusPlusLib.training.cases import read_case
    from UNetPlusPlusLib.training.dataset import find_cases
    from UNetPlusPlusLib.training.dataset_check import _label_counts

    root, path = write_labelmap_dataset(tmp_path, liver_value=63)
    description = json.loads(path.read_text())
    description["sources"][0]["label_map"] = {"liver": [63, 126], "spleen": [126, 999, -1]}
    path.write_text(json.dumps(description))
    dataset = load_dataset_json(path, root)
    case = find_cases(dataset)[0]
    labels = read_case(case, dataset).labels
    raw = sitk.GetArrayFromImage(sitk.ReadImage(str(case.label)))
    assert labels.dtype == np.uint8 and labels.shape == raw.shape
    assert np.array_equal(labels, np.select([raw == 126, raw == 63], [2, 1], 0))
    for size in (3, 2, 40):
        expected = np.bincount(raw.ravel(), minlength=size)[:size]
        assert np.array_equal(_label_counts(raw, size), expected)
    assert check_dataset(dataset) == []
    description["sources"][0]["label_map"]["liver"] = [126]  # 126 goes to spleen: no liver
    path.write_text(json.dumps(description))
    with pytest.raises(UNetPlusPlusError, match="label 'liver' .value 126. occurs in no case"):
        check_dataset(load_dataset_json(path, root))


def test_every_problem_is_reported_in_one_error(tmp_path):
    channels = ("flair", "t1")
    for i, name in enumerate("abcd"):
        write_slicer_case(tmp_path, name, seed=i, channels=channels)
    (tmp_path / "b_t1.nrrd").unlink()  # a missing channel
    image = sitk.ReadImage(str(tmp_path / "c_flair.nrrd"))  # a grid that does not match
    image.SetSpacing((1.0, 1.0, 1.0))
    sitk.WriteImage(image, str(tmp_path / "c_flair.nrrd"))
    sitk.WriteImage(image * 0, str(tmp_path / "c_t1.nrrd"))
    flat = sitk.ReadImage(str(tmp_path / "d_t1.nrrd")) * 0  # an empty channel
    sitk.WriteImage(flat, str(tmp_path / "d_t1.nrrd"))
    dataset = describe_slicer_export(tmp_path, labels=["tumor"], modality="MR")
    with pytest.raises(UNetPlusPlusError) as caught:
        check_dataset(dataset)
    message = str(caught.value)
    assert "has 4 problem(s); nothing was trained or written" in message
    assert "(1) Case 'b' has 1 of the 2 channels" in message
    # case 'a' (CT-like values given as MR) has no zero background (dataset_mr_checks.py), but
    # its label was read and holds the tumour: no "occurs in no case" (it said so before)
    assert "(2) Case 'a': Input 'flair' has 0.00% of its voxels exactly 0" in message
    assert "(3) Case 'c': the geometry of the label c.seg.nrrd does not match" in message
    assert "(4) Case 'd'" in message and "'t1' is empty" in message
    assert "occurs in" not in message


def test_a_case_that_cannot_be_read_is_not_counted_as_lacking_a_label(tmp_path):
    """A NIfTI-2 training image was refused with its conversion hint and also with "label
    'liver' occurs in no case", which was not true: the case's label was never read."""
    from test_nifti_headers import _nifti2

    root, description = write_labelmap_dataset(tmp_path, liver_value=63)
    nifti1 = sitk.ReadImage(str(root / "image" / "c1.nii.gz"))
    values = sitk.GetArrayFromImage(nifti1).astype(np.int16)
    srow = np.hstack([np.diag([-1.0, -1.0, 1.0]) * nifti1.GetSpacing(), np.zeros((3, 1))])
    for case in ("c0", "c1"):  # both NIfTI-2
        _nifti2(root / "image" / f"{case}.nii.gz", values, srow)
    dataset = load_dataset_json(description, root)
    with pytest.raises(UNetPlusPlusError) as caught:
        check_dataset(dataset)
    message = str(caught.value)
    assert "has 2 problem(s)" in message and message.count("is a NIfTI-2 file") == 2
    assert "occurs in" not in message  # no case's label was read: nothing to say about labels
    # with one readable case that lacks the label (value 64), say so for the cases read only
    root, description = write_labelmap_dataset(tmp_path / "two", liver_value=64)
    _nifti2(root / "image" / "c1.nii.gz", values, srow)
    with pytest.raises(UNetPlusPlusError) as caught:
        check_dataset(load_dataset_json(description, root))
    message = str(caught.value)
    assert "has 2 problem(s)" in message and "(2) Case 'c1': " in message
    assert "(1) label 'liver' (value 64) occurs in none of the 1 case(s) whose label could " in (
        message
    )


def test_label_names_that_collide_after_normalisation_are_refused(tmp_path):
    write_slicer_case(tmp_path, "a", seed=0, segments=("Liver", "liver"))
    out = tmp_path / "model"
    code = main([str(tmp_path), "-o", str(out), "--labels", "Liver,liver", *TINY])
    assert code == 2 and not out.exists()
    dataset = describe_slicer_export(tmp_path, labels=["Liver", "left_lung", "Left Lung"])
    with pytest.raises(UNetPlusPlusError, match="'left_lung' and 'Left Lung' are the same name"):
        check_dataset(dataset)


@pytest.mark.slow
def test_issue_case_6_liver_and_liver_segments_are_merged_and_said_in_the_log(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        write_slicer_case(data, f"case{i}", seed=i, segments=("Liver", "liver"))
    dataset = describe_slicer_export(data)
    assert dataset.label_names == ["Liver"]
    out = tmp_path / "model"
    args = [str(data), "-o", str(out), *TINY, "--epochs", "1", "--iterations-per-epoch", "1"]
    assert main(args) == 0
    assert (out / "model.json").is_file()
    log = (out / "train.log").read_text()
    assert "segments 'Liver', 'liver' of case 'case0' differ only by case" in log


def test_a_class_emptied_by_overlapping_segments_is_refused_saying_why(tmp_path):
    # the second segment ("oedema") lies inside the first ("tumor"), so with the labels in the
    # order oedema, tumor (later labels win) the oedema class keeps none of its voxels
    write_slicer_case(tmp_path, "a", seed=0, segments=("tumor", "oedema"))
    dataset = describe_slicer_export(tmp_path, labels=["oedema", "tumor"], modality="CT")
    with pytest.raises(UNetPlusPlusError) as caught:
        check_dataset(dataset)
    message = str(caught.value)
    assert "label 'oedema' (segment 'oedema') occurs in no case" in message
    assert "class 'oedema' keeps 0 of its" in message and "label(s) 'tumor'" in message
    dataset = describe_slicer_export(tmp_path, labels=["tumor", "oedema"], modality="CT")
    assert check_dataset(dataset) == []  # inner structure last: no loss worth a warning


def test_failed_training_removes_the_folder_it_created(tmp_path):
    out = tmp_path / "model"
    with pytest.raises(RuntimeError):
        with remove_on_failure(out):
            (out / "cache").mkdir(parents=True)
            (out / "weights.safetensors").write_bytes(b"half")
            raise RuntimeError("boom")
    assert not out.exists()
    with pytest.raises(RuntimeError):  # a checkpoint is kept for --resume
        with remove_on_failure(out):
            (out / "checkpoint").mkdir(parents=True)
            raise RuntimeError("boom")
    assert (out / "checkpoint").is_dir()
    with pytest.raises(RuntimeError):  # a folder that existed before is never removed
        with remove_on_failure(out):
            raise RuntimeError("boom")
    assert out.is_dir()


def test_failed_training_removes_the_parent_folders_it_created(tmp_path):
    """``unetpp train -o new/sub/model`` stopped by SIGTERM said "nothing was written" and left
    the empty ``new/sub`` it had created (tester 9); a parent that existed, or that holds
    something else by then, is kept."""
    out = tmp_path / "new" / "sub" / "model"
    with pytest.raises(KeyboardInterrupt):
        with remove_on_failure(out):
            (out / "cache").mkdir(parents=True)
            raise KeyboardInterrupt("Stopped by SIGTERM")
    assert not (tmp_path / "new").exists() and tmp_path.is_dir()
    with pytest.raises(RuntimeError):
        with remove_on_failure(out):
            (out / "cache").mkdir(parents=True)
            (tmp_path / "new" / "other.txt").write_text("kept")
            raise RuntimeError("boom")
    assert not (tmp_path / "new" / "sub").exists()
    assert (tmp_path / "new" / "other.txt").read_text() == "kept"
