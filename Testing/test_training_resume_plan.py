"""`unetpp train --resume` to more epochs: plan.json and the plan table describe the resumed run
(the epochs it trains to, the estimate for the rest), and the first run's estimate is kept and
labelled as such; before, plan.json kept the old epochs and the table repeated the first run's
ETA ("done about 16:51" printed at 16:52) and validation count. Changed fixed settings are still
refused. Tiny runs on four synthetic 24^3 cases."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from test_training_dataset import write_slicer_dataset
from UNetPlusPlusLib.training.checkpoint import read_checkpoint_state
from UNetPlusPlusLib.training.cli import main
from UNetPlusPlusLib.training.schedule import LAST_VALIDATION_FACTOR

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = ["--labels", "tumor", "--no-progress", "--threads", "1", "--precision", "fp32"]
TINY += ["--features", "4", "8", "16", "32", "64", "4", "--tile", "32", "16", "16"]
TINY += ["--batch-size", "1", "--iterations-per-epoch", "1", "--lr", "0.003"]


def _row(printed: str, start: str) -> str:
    return next(line for line in printed.splitlines() if line.strip().startswith(start))


def test_resume_to_more_epochs_updates_plan_json_and_the_table(tmp_path, capsys):
    data = write_slicer_dataset(tmp_path / "data", cases=4)
    out = tmp_path / "out"
    args = [str(data), "-o", str(out), *TINY]
    assert main([*args, "--epochs", "2"]) == 0
    first = json.loads((out / "plan.json").read_text())
    pace = read_checkpoint_state(out)["pace"]  # a fixed schedule: its epochs' measured pace
    logged = re.findall(r"validation on \d+ case\(s\) in ([\d.]+) s", capsys.readouterr().out)
    # the pace is kept per one-pass validation: epoch 2's, the last, ran per depth (timed)
    assert len(logged) == 2  # epoch 1 from one pass, epoch 2 per depth
    assert LAST_VALIDATION_FACTOR * pace["seconds_per_validation"] == pytest.approx(
        float(logged[-1]), abs=0.07
    )

    assert main([*args, "--epochs", "3", "--resume"]) == 0
    printed = capsys.readouterr().out
    plan = json.loads((out / "plan.json").read_text())
    assert plan["epochs"] == 3 and plan["sources"]["epochs"] == "--epochs (on resume)"
    assert json.loads((out / "model.json").read_text())["training"]["epochs"] == 3
    assert plan["estimate"] == first["estimate"]  # the first run's, as model.json's estimate_s
    (resumed,) = plan["resumes"]
    assert (resumed["after_epoch"], resumed["epochs_before"], resumed["epochs"]) == (2, 2, 3)
    rest = resumed["estimate"]
    assert rest["iterations"] == 1 and rest["validations"] == 1  # epoch 3, validated as the last
    assert first["estimate"]["timed"] is False and "seconds_per_iteration" not in first["measured"]
    assert pace["seconds_per_iteration"] > 0 and pace["seconds_per_validation"] > 0
    # plan.json rounds seconds to 0.1 (1.25 -> 1.2 failed abs=0.05 by a float's last bit)
    assert rest["training"] == pytest.approx(pace["seconds_per_iteration"], abs=0.0501)
    # the rest's one validation (epoch 3, the last) runs per depth again
    per_depth = LAST_VALIDATION_FACTOR * pace["seconds_per_validation"]
    assert rest["validation"] == pytest.approx(per_depth, abs=0.0501)
    assert {k: v for k, v in plan.items() if k not in ("epochs", "sources", "resumes")} == {
        k: v for k, v in first.items() if k not in ("epochs", "sources", "resumes")
    }
    assert "overridden by --epochs (on resume)" in _row(printed, "epochs ")
    eta = _row(printed, "ETA")
    assert "for the rest, resumed after epoch 2 of 3" in eta and "1 iterations" in eta
    assert "1 validation(s)" in eta
    original = _row(printed, "first run's estimate")  # nothing timed before its first epoch
    assert "not timed before the first epoch" in original and "2 iterations" in original
    assert f"{first['estimate']['validations']} validation(s)" in original
    assert printed.count("done about") == 2  # the table's ETA row and the resumed line
    # one ETA: the resumed line repeats the table's (it left out the preparation before)
    total, done = re.search(r"ETA +(\S+) for the rest.*done about (\d\d:\d\d)", eta).groups()
    resumed_line = _row(printed, "resumed after epoch 2")
    assert resumed_line.endswith(f"ETA for the rest {total}; done about {done}"), resumed_line


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory):
    """(data, a finished one-epoch run of TINY on it), trained once for the refusal tests,
    which each resume a copy of the run (:func:`_copy_of`)."""
    root = tmp_path_factory.mktemp("one-epoch")
    data = write_slicer_dataset(root / "data", cases=4)
    assert main([str(data), "-o", str(root / "out"), *TINY, "--epochs", "1"]) == 0
    return data, root / "out"


def _copy_of(one_epoch, tmp_path):
    data, trained = one_epoch
    shutil.copytree(trained, tmp_path / "out")
    return data, tmp_path / "out"


def test_resume_still_refuses_a_changed_fixed_setting(one_epoch, tmp_path, capsys):
    data, out = _copy_of(one_epoch, tmp_path)
    args = [str(data), "-o", str(out), *TINY, "--epochs", "1"]
    plan = (out / "plan.json").read_text()
    changed = [*args, "--resume", "--epochs", "2"]
    changed[changed.index("--lr") + 1] = "0.1"
    assert main(changed) == 2
    assert "'lr' was 0.003 in the checkpoint" in capsys.readouterr().err
    assert (out / "plan.json").read_text() == plan  # a refused resume writes nothing


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--tile", ["16", "16", "16"], "--tile is 32 16 16 in this run's plan.json"),
        ("--spacing", ["1", "1", "1"], "--spacing is"),
        ("--batch-size", ["2"], "--batch-size is 1 in this run's plan.json"),
        ("--max-cases", ["3"], "'max_cases' was None in the checkpoint but is now 3"),
    ],
)
def test_resume_refuses_options_the_plan_or_split_would_ignore(
    one_epoch, tmp_path, capsys, option, value, message
):
    """The plan is kept on --resume: a changed --spacing / --tile / --batch-size was ignored
    while model.json's command recorded it, and --max-cases changed the split mid-run."""
    data, out = _copy_of(one_epoch, tmp_path)
    args = [str(data), "-o", str(out), *TINY, "--epochs", "1"]
    plan = (out / "plan.json").read_text()
    capsys.readouterr()
    changed = [*args, "--resume", "--epochs", "2"]
    if option in changed:
        at = changed.index(option) + 1
        changed[at : at + len(value)] = value
    else:
        changed += [option, *value]
    assert main(changed) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert (out / "plan.json").read_text() == plan
