"""`unetpp train --resume` after a case's image or label was replaced: refused, naming the case,
before any preprocessing or training (the checkpoint records each case's training print:
image, labels, spacing); ``--accept-changed-cases`` continues with a warning, and a checkpoint
of an older version (no record) resumes with a warning that nothing could be checked. Before,
such a resume went on silently with weights trained on other data. Tiny runs on four synthetic
24^3 cases, as test_training_resume_plan.py."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from test_training_dataset import write_slicer_case, write_slicer_dataset
from UNetPlusPlusLib.training.case_content import training_print
from UNetPlusPlusLib.training.cli import main
from UNetPlusPlusLib.training.resume_checks import CASES_METHOD, check_resume_cases

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = ["--labels", "tumor", "--no-progress", "--threads", "1", "--precision", "fp32"]
TINY += ["--features", "4", "8", "16", "32", "64", "4", "--tile", "32", "16", "16"]
TINY += ["--batch-size", "1", "--iterations-per-epoch", "1", "--lr", "0.003"]


def _state(out) -> dict:
    return json.loads((out / "checkpoint" / "state.json").read_text())


@pytest.fixture()
def trained(tmp_path, capsys):
    """One epoch on four cases; the arguments, the output folder and a spare case's files."""
    data = write_slicer_dataset(tmp_path / "data", cases=4)
    spare = tmp_path / "spare"
    spare.mkdir()
    write_slicer_case(spare, "other", seed=11)
    out = tmp_path / "out"
    args = [str(data), "-o", str(out), *TINY]
    assert main([*args, "--epochs", "1"]) == 0
    capsys.readouterr()
    return args, data, out, spare


@pytest.mark.parametrize("replaced", ["case01.seg.nrrd", "case02.nrrd"])
def test_resume_refuses_a_replaced_label_or_image_naming_the_case(trained, capsys, replaced):
    args, data, out, spare = trained
    record = _state(out)["cases"]
    assert sorted(record["prints"]) == ["case00", "case01", "case02", "case03"]
    plan, state = (out / "plan.json").read_text(), (out / "checkpoint" / "state.json").read_text()
    shutil.copyfile(spare / ("other" + replaced[6:]), data / replaced)
    assert main([*args, "--epochs", "2", "--resume"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1, err
    case = replaced[:6]
    assert (
        f"the image or label of 1 case(s) changed since the checkpoint was written ({case})"
        in (err[0])
    )
    assert "--resume --accept-changed-cases" in err[0] and "--overwrite" in err[0]
    assert "epoch 2" not in captured.out and "resumed after" not in captured.out  # no training
    assert (out / "plan.json").read_text() == plan
    assert (out / "checkpoint" / "state.json").read_text() == state


def test_accept_changed_cases_continues_with_a_warning_and_records_the_new_content(trained, capsys):
    args, data, out, spare = trained
    before = _state(out)["cases"]["prints"]
    shutil.copyfile(spare / "other.seg.nrrd", data / "case01.seg.nrrd")
    assert main([*args, "--epochs", "2", "--resume", "--accept-changed-cases"]) == 0
    printed = capsys.readouterr().out
    assert "warning: --accept-changed-cases: the image or label of 1 case(s) changed" in printed
    after = _state(out)
    assert after["epoch"] == 2
    assert after["cases"]["prints"]["case01"] != before["case01"]
    assert {k: v for k, v in after["cases"]["prints"].items() if k != "case01"} == {
        k: v for k, v in before.items() if k != "case01"
    }
    assert main([*args, "--epochs", "3", "--resume"]) == 0  # compared with the new content now
    assert "case(s) changed since" not in capsys.readouterr().out


def test_an_old_checkpoint_without_the_record_resumes_with_a_warning(trained, capsys):
    args, data, out, spare = trained
    path = out / "checkpoint" / "state.json"
    state = json.loads(path.read_text())
    del state["cases"]  # as a checkpoint of an older version
    path.write_text(json.dumps(state))
    shutil.copyfile(spare / "other.seg.nrrd", data / "case01.seg.nrrd")
    assert main([*args, "--epochs", "2", "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "the checkpoint records no content of its cases" in printed
    assert "cannot be checked" in printed and _state(out)["epoch"] == 2


def test_an_unchanged_dataset_resumes_without_a_word_about_cases(trained, capsys):
    args, data, out, spare = trained
    assert main([*args, "--epochs", "2", "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "case(s) changed since" not in printed and "records no content" not in printed


def test_accept_changed_cases_without_resume_is_refused(tmp_path, capsys):
    args = [str(tmp_path / "data"), "-o", str(tmp_path / "out"), "--accept-changed-cases"]
    assert main(args) == 2
    assert "--accept-changed-cases only applies to --resume" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_training_print_follows_content_not_the_stored_axis_order():
    rng = np.random.default_rng(0)
    labels = (rng.random((6, 5, 4)) > 0.7).astype(np.uint8)
    eye = np.eye(3)
    base = training_print("a" * 32, labels, (1.0, 2.0, 3.0), eye)
    # the same labels stored with x flipped (direction -x), and with x and z swapped
    assert (
        training_print("a" * 32, labels[:, :, ::-1], (1.0, 2.0, 3.0), np.diag([-1, 1, 1])) == base
    )
    swapped = eye[:, [2, 1, 0]]  # index x runs along LPS z, index z along LPS x
    assert training_print("a" * 32, labels.transpose(2, 1, 0), (3.0, 2.0, 1.0), swapped) == base
    edited = labels.copy()
    edited[0, 0, 0] ^= 1
    assert training_print("a" * 32, edited, (1.0, 2.0, 3.0), eye) != base
    assert training_print("b" * 32, labels, (1.0, 2.0, 3.0), eye) != base  # another image
    assert training_print("a" * 32, labels, (1.0, 2.0, 2.5), eye) != base  # another spacing


@pytest.mark.parametrize("prints", ["garbage", ["case01"], None])
def test_a_damaged_record_resumes_with_a_warning_that_nothing_was_checked(prints):
    """A record whose prints are no object: "garbage" was searched as text (no case id in it),
    so the resume went on without a word although nothing had been compared."""
    state = {"cases": {"method": CASES_METHOD, "prints": prints}}
    (warning,) = check_resume_cases(state, {"case01": "b" * 32}, ["case01"])
    assert "record of its cases is damaged" in warning and "cannot be checked" in warning
    assert (
        check_resume_cases(
            {"cases": {"method": CASES_METHOD, "prints": {}}}, {"case01": "b" * 32}, ["case01"]
        )
        == []
    )  # an empty record (no case recorded) is not damaged


@pytest.mark.parametrize(
    "done, asked, said",
    [
        (
            1,
            1,
            "already holds 1 epoch, all this run asks for (1); ask for more with --epochs (at "
            "least 2).",
        ),
        (
            5,
            3,
            "already holds 5 epochs, more than this run asks for (3); ask for more with "
            "--epochs (at least 6).",
        ),
    ],
)
def test_a_finished_run_resumed_says_how_many_epochs_to_ask_for(done, asked, said):
    """Fresh user 27: `unetpp train ... --resume` after a finished 1-epoch run said 'already
    holds 1 epochs; ask for more with --epochs.', not how many."""
    from types import SimpleNamespace

    from UNetPlusPlusLib.errors import UNetPlusPlusError
    from UNetPlusPlusLib.training.resume_checks import check_resume
    from UNetPlusPlusLib.training.trainer import TrainConfig

    config = TrainConfig(out_dir="o", spacing=(1.0, 1.0, 1.0), tile_size=(16, 16, 16))
    config.epochs = asked
    dataset = SimpleNamespace(label_names=["nodule"], channels=[])
    with pytest.raises(UNetPlusPlusError) as caught:
        check_resume({"epoch": done}, config, dataset)
    assert str(caught.value) == f"--resume: the checkpoint {said}"
