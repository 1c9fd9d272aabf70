"""``unetpp train`` runs the MR input checks of inference on every case before training
(training/dataset_mr_checks.py): a non-zero background, a channel that is another one rescaled
and a swapped sequence order are refused in one error naming each case, with nothing written;
``--no-channel-check`` skips only the order, with a warning. Synthetic four-sequence phantoms
(``test_channel_order.phantom``), then the 18 shared BraTS 2018 cases (no false alarm).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from test_channel_order import NAMES, SPACING, phantom, synthetic_manifest
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.training.cli import main
from UNetPlusPlusLib.training.dataset_check import check_dataset
from UNetPlusPlusLib.training.dataset_json import load_dataset_json
from UNetPlusPlusLib.training.dataset_mr_checks import MIN_REFERENCE_CASES

SUFFIXES = ("flair", "t1", "t1ce", "t2")
TINY = [
    "--tile", "32", "32", "32", "--features", "4", "8", "16", "32", "64", "4",
    "--batch-size", "1", "--no-progress", "--threads", "1", "--no-augment",
    "--epochs", "1", "--iterations-per-epoch", "1",
]  # fmt: skip
DATASETS = Path(__file__).resolve().parents[1] / "UNetPlusPlus/UNetPlusPlusLib/Resources/Datasets"


def write_mr_dataset(root: Path, images: dict) -> Path:
    """``<case>_<sequence>.nii`` + ``<case>_seg.nii`` per case of ``images`` (case ->
    (4, z, y, x) array, at the phantoms' SPACING: a real brain's volume; uncompressed: gzip is
    not what is tested) and a four-sequence MR dataset.json; returns its path."""
    root.mkdir(parents=True, exist_ok=True)
    for case, image in images.items():
        for channel, suffix in zip(image, SUFFIXES):
            item = sitk.GetImageFromArray(np.ascontiguousarray(channel))
            item.SetSpacing(SPACING)
            sitk.WriteImage(item, str(root / f"{case}_{suffix}.nii"))
        label = np.zeros(image.shape[1:], np.uint8)
        label[18:22, 20:24, 22:26] = 1
        item = sitk.GetImageFromArray(label)
        item.SetSpacing(SPACING)
        sitk.WriteImage(item, str(root / f"{case}_seg.nii"))
    description = {
        "name": "phantoms",
        "channels": [{"name": n, "modality": "MR"} for n in NAMES],
        "labels": ["lesion"],
        "sources": [
            {
                "images": [f"{{case}}_{s}.nii" for s in SUFFIXES],
                "label": "{case}_seg.nii",
                "label_map": {"lesion": [1]},
            }
        ],
    }
    path = root / "dataset.json"
    path.write_text(json.dumps(description))
    return path


def background_one(image: np.ndarray) -> np.ndarray:
    """A skull-stripped case whose background was set to 1 (every channel)."""
    out = image.copy()
    out[:, np.all(image == 0, axis=0)] = 1.0
    return out


def test_good_mr_dataset_passes_and_bad_cases_are_refused_by_name(tmp_path, capsys):
    good = {f"good{s}": phantom(s) for s in range(3)}
    path = write_mr_dataset(tmp_path / "good", good)
    warnings = check_dataset(load_dataset_json(path, path.parent))
    # three cases: too few to compare each case's sequence order with the others, said once
    assert len(warnings) == 1 and "sequence order (FLAIR, T1, T1ce, T2)" in warnings[0]
    assert f"more than {MIN_REFERENCE_CASES} needed" in warnings[0]

    bad = dict(good)
    bad["bg1"] = background_one(phantom(10))
    duplicated = phantom(11)
    duplicated[2] = duplicated[0] * 1000.0  # FLAIR x 1000 given as T1ce
    bad["dup"] = duplicated
    path = write_mr_dataset(tmp_path / "bad", bad)
    with pytest.raises(UNetPlusPlusError) as caught:
        check_dataset(load_dataset_json(path, path.parent))
    message = str(caught.value)
    assert "\n" not in message and "has 2 problem(s); nothing was trained or written" in message
    assert "Case 'bg1': Input 'FLAIR'" in message and "background set to exactly 0" in message
    assert "Case 'dup': Input channels 'FLAIR' and 'T1ce' are the same image up to scale" in message
    assert "good" not in message

    out = tmp_path / "model"  # the command line: one line, status 2, nothing written
    assert main([str(path.parent), "--dataset-json", str(path), "-o", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("error:") == 1 and "Case 'bg1'" in error and "Case 'dup'" in error
    assert not out.exists()


def test_a_swapped_case_is_refused_against_the_other_cases(tmp_path):
    count = MIN_REFERENCE_CASES + 2
    images = {f"case{s:02d}": phantom(s) for s in range(count)}
    images["case03"] = images["case03"][[3, 1, 2, 0]].copy()  # FLAIR and T2 swapped
    path = write_mr_dataset(tmp_path, images)
    dataset = load_dataset_json(path, path.parent)
    with pytest.raises(UNetPlusPlusError) as caught:
        check_dataset(dataset)
    message = str(caught.value)
    assert "has 1 problem(s)" in message and "Case 'case03': The input volumes seem" in message
    assert "the volume given as T2 looks like FLAIR" in message
    assert "contrast fingerprint of the other cases" in message
    # --no-channel-check: the order is not checked, and the log says so
    warnings = check_dataset(dataset, channel_check=False)
    assert len(warnings) == 1 and "was not checked (--no-channel-check)" in warnings[0]
    # the same cases in their right order pass with no warning
    images["case03"] = phantom(3)
    path = write_mr_dataset(tmp_path / "fixed", images)
    assert check_dataset(load_dataset_json(path, path.parent)) == []


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_train_command_refuses_a_swapped_case_unless_no_channel_check(tmp_path, capsys):
    images = {f"case{s:02d}": phantom(s) for s in range(MIN_REFERENCE_CASES + 1)}
    images["case05"] = images["case05"][[0, 2, 1, 3]].copy()  # T1 and T1ce swapped
    path = write_mr_dataset(tmp_path / "data", images)
    out = tmp_path / "model"  # outside the dataset (training/output_guard.py)
    args = [str(path.parent), "--dataset-json", str(path), "-o", str(out), *TINY, "--plan-only"]
    assert main(args) == 2 and not out.exists()
    assert "Case 'case05': The input volumes seem" in capsys.readouterr().err
    assert main([*args, "--no-channel-check"]) == 0  # the plan is made and written
    log = (out / "train.log").read_text()
    assert "warning: the sequence order (FLAIR, T1, T1ce, T2) of the training cases was not " in log
    assert (out / "plan.json").is_file()


def test_fine_tune_checks_each_case_against_the_init_models_fingerprint(tmp_path):
    init = synthetic_manifest(tmp_path)  # four-sequence MR model with a phantom reference
    images = {"a": phantom(20), "b": phantom(21)[[1, 0, 2, 3]].copy()}  # b: FLAIR <-> T1
    path = write_mr_dataset(tmp_path / "data", images)
    dataset = load_dataset_json(path, path.parent)
    with pytest.raises(UNetPlusPlusError, match=r"1 problem.*Case 'b': The input volumes seem"):
        check_dataset(dataset, init=init)
    assert check_dataset(dataset, init=init, channel_check=False) == [
        "the sequence order (FLAIR, T1, T1ce, T2) of the training cases was not checked "
        "(--no-channel-check); a case with swapped sequences trains a wrong model"
    ]
    # an --init model that bounds the non-zero extent (not skull-stripped) bounds its cases
    init.inference["max_nonzero_ml"] = 10.0
    with pytest.raises(UNetPlusPlusError, match=r"Case 'a': Input 'FLAIR' is non-zero over \d+ ml"):
        check_dataset(dataset, init=init, channel_check=False)
    del init.inference["max_nonzero_ml"]
    # an --init model without the non-zero crop does not need a zero background
    init.inference["crop_nonzero"] = False
    path = write_mr_dataset(tmp_path / "bg", {"a": background_one(phantom(22))})
    warnings = check_dataset(load_dataset_json(path, path.parent), init=init)
    # (the background joins the fingerprint's mask: unlike the reference, so only a warning)
    assert [w[:49] for w in warnings] == ["Case 'a': The sequence order could not be checked"]
    with pytest.raises(UNetPlusPlusError, match="Case 'a': Input 'FLAIR' has 0"):
        check_dataset(load_dataset_json(path, path.parent))


@pytest.mark.slow
def test_shipped_brats_cases_pass_with_no_warning(shared_data):
    dataset = load_dataset_json(
        DATASETS / "brats2018.json", shared_data / "brain-tumor" / "brats2018"
    )
    assert check_dataset(dataset) == []


# ------------------------------------------- T1 / T1ce: the enhancement asymmetry (session 15)
def test_a_t1_t1ce_swap_is_warned_by_name_when_too_few_cases_for_a_reference(tmp_path):
    """Three cases, too few to compare each with the others: the fingerprint is not judged,
    but the enhancement asymmetry needs no reference; the swapped case is named (a warning:
    without a reference the fit to training data is unknown, as for data unlike a model's)."""
    from test_contrast_pair import SWAP
    from test_contrast_pair import phantom as enhancing

    images = {"a": enhancing(50), "b": enhancing(51)[SWAP].copy(), "c": enhancing(52)}
    path = write_mr_dataset(tmp_path, images)
    warnings = check_dataset(load_dataset_json(path, path.parent))
    assert len(warnings) == 2 and "T1 and T1ce only by their contrast enhancement" in warnings[0]
    assert warnings[1].startswith("Case 'b': The input volumes may be in the wrong order: the ")
    assert "given as T1 looks like T1ce" in warnings[1] and "contrast enhancement" in warnings[1]


def test_leave_one_out_refuses_a_t1_t1ce_swap_the_fingerprint_cannot_see():
    """Each case against the other cases' reference now names the T1 / T1ce pair, as the model
    ``unetpp train`` writes does: a case whose contrasts fit the others (its fingerprint as the
    right order's) but whose T1 and T1ce are swapped by their enhancement is refused by name,
    with inference's threshold; the right cases pass."""
    from types import SimpleNamespace

    from test_contrast_pair import SWAP
    from test_contrast_pair import phantom as enhancing
    from UNetPlusPlusLib.engine import channel_order as co
    from UNetPlusPlusLib.engine.sanity import channel_samples
    from UNetPlusPlusLib.training.dataset_mr_checks import CaseModelChecks

    dataset = SimpleNamespace(channels=[SimpleNamespace(name=n, modality="MR") for n in NAMES])
    checks = CaseModelChecks(dataset)
    for seed in range(MIN_REFERENCE_CASES + 1):
        checks.prints.append(
            (f"case{seed:02d}", co.fingerprint(channel_samples(list(enhancing(seed)))))
        )
    right = checks.prints[4][1]
    swapped = co.fingerprint(channel_samples(list(enhancing(4)[SWAP])))
    assert swapped.asymmetry[1, 2] < -0.25  # inference's refusal threshold (contrast_pair.py)
    checks.prints[4] = (
        "case04",
        co.Fingerprint(right.spearman, right.skewness, right.voxels, swapped.asymmetry),
    )
    problems, warnings = checks.finish()
    assert warnings == [] and len(problems) == 1, (problems, warnings)
    assert problems[0].startswith("Case 'case04': The input volumes seem to be in the wrong order")
    assert "given as T1ce looks like T1" in problems[0] and "contrast enhancement" in problems[0]
