"""Does the ``--init`` model fit the dataset (training/init_match.py)? ``--init lung-nodule`` on
a liver CT folder trained in silence with the nodule model's lung window, 0.7 mm spacing and
48 x 48 x 16 tile, its heads re-initialised; an MR folder with ``--init liver`` was normalised
with the liver CT window with only per-case warnings. Now another task or modality is one
warning that says what carries over and what starts afresh, and what cannot fit (another
channel count, other widths, a contradicting ``--modality``) is refused before any case is read.
Shipped models on tiny synthetic 24^3 cases, ``--plan-only``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from test_training_dataset import write_slicer_dataset
from UNetPlusPlusLib.training.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")
PLAN = ["--plan-only", "--epochs", "1", "--iterations-per-epoch", "1", "--no-progress"]
PLAN += ["--threads", "1", "--device", "cpu"]


def _run(data: Path, out: Path, capsys, *options: str) -> tuple[int, str, str]:
    code = main([str(data), "-o", str(out), *PLAN, *options])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _init_warnings(printed: str) -> list[str]:
    return [line for line in printed.splitlines() if line.startswith("warning: the --init")]


@pytest.fixture(scope="module")
def liver_ct(tmp_path_factory) -> Path:
    """Three CT cases whose segment is named liver."""
    return write_slicer_dataset(tmp_path_factory.mktemp("ct") / "data", 3, segments=("liver",))


def test_another_tasks_model_is_a_warning_naming_what_it_brings(liver_ct, tmp_path, capsys):
    code, printed, _ = _run(liver_ct, tmp_path / "out", capsys, "--init", "lung-nodule")
    assert code == 0
    (warning,) = _init_warnings(printed)
    assert warning.startswith(
        "warning: the --init model lung-nodule-ct was trained for the task 'lung-nodule' "
        "(nodule), this dataset learns liver: its output heads start afresh"
    ), warning
    assert "the channel normalisation (CT window -1000 to 400 HU)" in warning
    assert "the spacing 0.7 x 0.7 x 1.25 mm and the tile 48 x 48 x 16 voxels" in warning
    # what it says is what the run does: the heads are new, the rest loaded
    assert "output heads re-initialised (the labels differ)" in printed
    assert warning in (tmp_path / "out" / "train.log").read_text()


def test_a_given_spacing_and_tile_are_not_said_to_come_from_the_parent(liver_ct, tmp_path, capsys):
    options = ["--init", "lung-nodule", "--spacing", "2", "2", "2", "--tile", "32", "32", "32"]
    code, printed, _ = _run(liver_ct, tmp_path / "out", capsys, *options)
    assert code == 0
    (warning,) = _init_warnings(printed)
    assert "the channel normalisation (CT window -1000 to 400 HU), chosen" in warning
    assert "spacing 0.7" not in warning and "tile 48" not in warning


def test_the_same_task_fine_tune_says_nothing(liver_ct, tmp_path, capsys):
    code, printed, _ = _run(liver_ct, tmp_path / "out", capsys, "--init", "liver")
    assert code == 0 and _init_warnings(printed) == []
    assert "output heads kept" in printed


@pytest.fixture(scope="module")
def mr_cases(tmp_path_factory) -> Path:
    """The CT cases shifted and scaled to MR-like values (no air below -500)."""
    data = write_slicer_dataset(tmp_path_factory.mktemp("mr") / "data", 3, segments=("liver",))
    for path in data.glob("case??.nrrd"):
        image = sitk.ReadImage(str(path))
        values = (sitk.GetArrayFromImage(image).astype(np.float32) + 1000.0) * 0.5
        mr = sitk.GetImageFromArray(values.astype(np.int16))
        mr.CopyInformation(image)
        sitk.WriteImage(mr, str(path))
    return data


def test_a_ct_model_on_mr_cases_is_a_warning(mr_cases, tmp_path, capsys):
    code, printed, _ = _run(mr_cases, tmp_path / "out", capsys, "--init", "liver")
    assert code == 0
    (warning,) = _init_warnings(printed)
    assert warning.startswith(
        "warning: the --init model liver-ct takes CT (CT window -160 to 240 HU), but the cases "
        "look like MR: the cases are normalised as its channels"
    ), warning


def test_a_modality_the_parent_contradicts_is_refused(mr_cases, tmp_path, capsys):
    out = tmp_path / "out"
    code, printed, error = _run(mr_cases, out, capsys, "--init", "liver", "--modality", "MR")
    assert code == 2 and not out.exists()
    assert error.startswith("error: --modality MR contradicts the --init model liver-ct"), error
    assert error.count("\n") == 1 and "fingerprint" not in printed


def _unreadable(folder: Path) -> Path:
    data = write_slicer_dataset(folder, cases=2)
    for image in data.glob("case??.nrrd"):
        image.write_bytes(b"NRRD0004\nnot an image\n")
    return data


def test_another_channel_count_is_refused_before_any_case_is_read(tmp_path, capsys):
    out = tmp_path / "out"
    data = _unreadable(tmp_path / "data")  # any read of a case would be another error
    code, printed, error = _run(data, out, capsys, "--init", "brain-tumor")
    assert code == 2 and not out.exists()
    assert error.startswith(
        "error: The --init model brain-tumor-mr takes 4 channel(s) (FLAIR, T1, T1ce, T2), but "
        "the first case has 1 (one image): its first layer cannot take another number"
    ), error
    assert error.count("\n") == 1


def test_other_widths_than_the_parents_are_refused(tmp_path, capsys):
    out = tmp_path / "out"
    data = _unreadable(tmp_path / "data")
    wide = ["16", "32", "64", "128", "256", "16"]
    code, _, error = _run(data, out, capsys, "--init", "liver", "--features", *wide)
    assert code == 2 and not out.exists()
    assert error.startswith(
        "error: --features gives the widths 16 32 64 128 256 16, but the --init model liver-ct "
        "has 8 16 32 64 128 8: its layers of other widths cannot load"
    ), error


def _description(channels: list[tuple[str, str]], labels: list[str]):
    """A dataset.json's description (no case read) with ``channels`` (name, modality)."""
    from UNetPlusPlusLib.training.dataset_json import dataset_from_dict

    images = [f"{{case}}_{name.lower()}.nii.gz" for name, _ in channels]
    return dataset_from_dict(
        {
            "name": "mine",
            "channels": [{"name": name, "modality": kind} for name, kind in channels],
            "labels": labels,
            "sources": [{"images": images, "label": "{case}_seg.nii.gz",
                         "label_map": {label: [i + 1] for i, label in enumerate(labels)}}],
        },
        ".",
        source="dataset.json",
    )  # fmt: skip


def _fit_notes(model: str, dataset) -> list[str]:
    import argparse

    from UNetPlusPlusLib.engine.registry import find_model
    from UNetPlusPlusLib.training.init_match import channels_modality, check_init_fit

    args = argparse.Namespace(
        resume=False, features=None, modality="auto", dataset_json="dataset.json",
        spacing=None, tile=None,
    )  # fmt: skip
    own = list(dataset.channels)
    where = ("the dataset description declares",) * 2
    return check_init_fit(find_model(model), dataset, args, own, channels_modality(own), where)


def test_a_description_naming_mr_sequences_is_mr_for_the_modality_check():
    """A dataset.json may declare each channel's sequence as its modality ("FLAIR", "T1w", as
    nnU-Net's do) with the MR z-score. Before, "FLAIR/T1GD/T1W/T2W" was compared with the
    parent's "MR" and a brain-tumour fine-tune on BraTS-like cases was warned that its cases
    were "made for another kind of image"; the z-score was named four times."""
    sequences = [("FLAIR", "FLAIR"), ("T1", "T1w"), ("T1ce", "t1gd"), ("T2", "T2w")]
    labels = ["necrotic / non-enhancing tumour core", "oedema", "enhancing tumour"]
    assert _fit_notes("brain-tumor", _description(sequences, labels)) == []
    # a sequence-named channel still differs from a CT parent, and is named as MR
    (note,) = _fit_notes("liver", _description([("T2", "T2w")], ["liver"]))
    assert note.startswith(
        "the --init model liver-ct takes CT (CT window -160 to 240 HU), but the dataset "
        "description declares MR: "
    ), note
    ct = [(name, "CT") for name, _ in sequences]  # the parent's normalisation named once
    (note,) = _fit_notes("brain-tumor", _description(ct, labels))
    assert note.startswith(
        "the --init model brain-tumor-mr takes MR (z-score per case), but the dataset "
        "description declares CT: "
    ), note
