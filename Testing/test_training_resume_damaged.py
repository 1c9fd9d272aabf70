"""`unetpp train --resume` on a damaged checkpoint, or one of another network (tester 16): one
error line, exit 2, the checkpoint left as it was. Before: a state.json holding a list, or
without its optimizer state, was an internal error (AttributeError, KeyError); another
network's weights gave PyTorch's message of one line per tensor; another network's optimizer
moments were loaded and failed in the first training step with an internal error. A damaged
state.json or tensor file is now refused before the dataset is read and the plan timed. And
--plan-only with --resume, which trained on; and a damaged plan.json, an internal error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file
from test_training_dataset import write_slicer_dataset
from UNetPlusPlusLib.engine.manifest_weights import sha256_file
from UNetPlusPlusLib.training.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = ["--labels", "tumor", "--no-progress", "--threads", "1", "--precision", "fp32"]
TINY += ["--features", "4", "8", "16", "32", "64", "4", "--tile", "32", "16", "16"]
TINY += ["--batch-size", "1", "--iterations-per-epoch", "1", "--lr", "0.003"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A dataset and a one-epoch run on it (its checkpoint/ to damage in copies)."""
    root = tmp_path_factory.mktemp("resume")
    data = write_slicer_dataset(root / "data", cases=4)
    out = root / "out"
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([str(data), "-o", str(out), *TINY, "--epochs", "1"]) == 0
    finally:
        torch.set_num_threads(before)
    return data, out


def _edit_state(edit):
    def change(folder: Path) -> None:
        path = folder / "state.json"
        state = json.loads(path.read_text())
        path.write_text(json.dumps(edit(state)))

    return change


def _without(key):
    def edit(state):
        del state[key]
        return state

    return edit


def _reshape(file: str, pick):
    """Replace the first tensor of ``file`` that ``pick(name, tensor)`` selects with one of
    another shape (as another network's would be)."""

    def change(folder: Path) -> None:
        import torch

        tensors = load_file(str(folder / file))
        name = sorted(k for k, v in tensors.items() if pick(k, v))[0]
        shape = list(tensors[name].shape)
        tensors[name] = torch.zeros([shape[0] * 2, *shape[1:]])
        save_file(tensors, str(folder / file))
        _record_sha256(folder, file)  # another run's whole checkpoint, sums included

    return change


def _record_sha256(folder: Path, file: str) -> None:
    path = folder / "state.json"
    state = json.loads(path.read_text())
    state.setdefault("files_sha256", {})[file] = sha256_file(folder / file)
    path.write_text(json.dumps(state))


def _flip_bytes(file: str):
    """0xff over 64 bytes in the middle of ``file``'s tensor data (NaN as float32), its
    safetensors header intact: a copy damaged on its way, not a truncated file."""

    def change(folder: Path) -> None:
        path = folder / file
        data = bytearray(path.read_bytes())
        middle = len(data) * 2 // 3
        data[middle : middle + 64] = b"\xff" * 64
        path.write_bytes(bytes(data))

    return change


DAMAGE = {
    "state-a-list": (_edit_state(lambda state: []), "state.json is not a JSON object"),
    "state-no-optimizer": (_edit_state(_without("optimizer")), "has no optimizer state"),
    "state-empty-optimizer": (
        _edit_state(lambda state: {**state, "optimizer": {}}),
        "the optimizer state has no parameter groups",
    ),
    "state-no-epoch": (_edit_state(_without("epoch")), "'epoch' is None"),
    "model-truncated": (
        lambda folder: (folder / "model.safetensors").write_bytes(b"\x00" * 20),
        "model.safetensors: ",
    ),
    "optimizer-missing": (
        lambda folder: (folder / "optimizer.safetensors").unlink(),
        "optimizer.safetensors is missing",
    ),
    # bytes flipped in the optimizer's moments had read as NaN and ended the resumed run with
    # "the training loss became NaN ...; lower --lr or check the data" (tester 22)
    "optimizer-bytes-flipped": (
        _flip_bytes("optimizer.safetensors"),
        "optimizer.safetensors does not match the sha256 that state.json recorded",
    ),
    "model-bytes-flipped": (
        _flip_bytes("model.safetensors"),
        "model.safetensors does not match the sha256 that state.json recorded",
    ),
    "model-of-another-network": (
        _reshape("model.safetensors", lambda k, v: v.dim() == 5),
        "the network: 1 tensor(s) of another shape (first ",
    ),
    "optimizer-of-another-network": (
        _reshape("optimizer.safetensors", lambda k, v: k.endswith("exp_avg") and v.dim() == 5),
        "the optimizer state of parameter ",
    ),
}


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_a_damaged_checkpoint_is_one_error_and_stays_as_it_was(trained, tmp_path, capsys, kind):
    data, run = trained
    out = tmp_path / "out"
    shutil.copytree(run, out)
    damage, message = DAMAGE[kind]
    damage(out / "checkpoint")
    before = {p.name: p.read_bytes() for p in (out / "checkpoint").iterdir()}
    capsys.readouterr()
    shutil.rmtree(out / "cache")  # a resumed run reads its cases again

    assert main([str(data), "-o", str(out), *TINY, "--epochs", "2", "--resume"]) == 2
    out_text, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("error: Checkpoint in "), err
    if "another-network" not in kind:  # refused before the dataset is read, the plan timed
        assert "preprocessing" not in out_text and "ETA" not in out_text, out_text
    assert message in err and "start again with --overwrite" in err, err
    assert {p.name: p.read_bytes() for p in (out / "checkpoint").iterdir()} == before


def test_the_undamaged_checkpoint_resumes(trained, tmp_path):
    data, run = trained
    out = tmp_path / "out"
    shutil.copytree(run, out)
    assert main([str(data), "-o", str(out), *TINY, "--epochs", "2", "--resume"]) == 0
    assert json.loads((out / "checkpoint" / "state.json").read_text())["epoch"] == 2


def _count_state_reads(monkeypatch) -> list:
    """Count the checkpoint reads (read_checkpoint_state checks each state.json it parsed with
    checkpoint._state_problem): a wrapper that calls the real check."""
    from UNetPlusPlusLib.training import checkpoint

    calls, real = [], checkpoint._state_problem

    def counted(state):
        calls.append(1)
        return real(state)

    monkeypatch.setattr(checkpoint, "_state_problem", counted)
    return calls


def test_a_resumed_run_reads_the_checkpoint_state_once_before_loading_it(
    trained, tmp_path, monkeypatch
):
    """run_train reads the checkpoint's state once and passes it to the finished-run check,
    the configuration and the Trainer (each read it again, 4 reads); load_checkpoint reads it
    with the tensors it loads."""
    data, run = trained
    out = tmp_path / "out"
    shutil.copytree(run, out)
    calls = _count_state_reads(monkeypatch)
    assert main([str(data), "-o", str(out), *TINY, "--epochs", "2", "--resume"]) == 0
    assert json.loads((out / "checkpoint" / "state.json").read_text())["epoch"] == 2
    assert len(calls) == 2


def test_plan_only_with_resume_is_refused_and_trains_nothing(trained, tmp_path, capsys):
    """--plan-only was ignored on --resume: the run trained its next epoch and rewrote
    model.json, plan.json and the checkpoint."""
    data, run = trained
    out = tmp_path / "out"
    shutil.copytree(run, out)
    before = {str(p): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    args = [str(data), "-o", str(out), *TINY, "--epochs", "2", "--resume", "--plan-only"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--plan-only plans a new run" in err, err
    assert {str(p): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def _edit_plan(edit):
    def change(out: Path) -> None:
        path = out / "plan.json"
        path.write_text(json.dumps(edit(json.loads(path.read_text()))))

    return change


PLAN_DAMAGE = {
    "cut": (lambda out: (out / "plan.json").write_text('{"version": 1, "spac'), "Unterminated"),
    "a-list": (_edit_plan(lambda plan: []), "not a JSON object"),
    "unknown-field": (_edit_plan(lambda plan: {**plan, "evil": 1}), "unknown field 'evil'"),
    "no-spacing": (_edit_plan(_without("spacing")), "no 'spacing'"),
    "spacing-text": (
        _edit_plan(lambda plan: {**plan, "spacing": "x"}),
        "'spacing' is not a list of numbers",
    ),
    "split-a-number": (_edit_plan(lambda plan: {**plan, "split": 5}), "'split' is not a JSON"),
}


@pytest.mark.parametrize("kind", sorted(PLAN_DAMAGE))
def test_a_damaged_plan_is_one_error_before_the_dataset_is_read(trained, tmp_path, capsys, kind):
    """A damaged plan.json was an internal error (JSONDecodeError, TypeError, KeyError...),
    a split of 5 only after the dataset was read."""
    data, run = trained
    out = tmp_path / "out"
    shutil.copytree(run, out)
    damage, message = PLAN_DAMAGE[kind]
    damage(out)
    before = {str(p): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main([str(data), "-o", str(out), *TINY, "--epochs", "2", "--resume"]) == 2
    printed, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("error: The run's plan "), err
    assert message in err and "start again with --overwrite" in err, err
    assert "training on" not in printed, printed
    assert {str(p): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("epochs", [[], ["--epochs", "1"]])
def test_a_finished_run_is_refused_before_the_dataset_is_read(trained, tmp_path, capsys, epochs):
    """`--resume` of a finished run (its plan's epochs, or --epochs no larger) was refused only
    after every case was read (19 s on 814 cases, fresh user 27): now from the checkpoint and
    plan.json alone. An empty data folder shows it: the dataset is never read."""
    _, run = trained
    out, empty = tmp_path / "out", tmp_path / "no-cases"
    shutil.copytree(run, out)
    empty.mkdir()
    capsys.readouterr()
    assert main([str(empty), "-o", str(out), *TINY, *epochs, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "already holds 1 epoch, all this run asks for (1)" in err and "at least 2" in err, err


def test_a_finished_run_is_refused_after_one_read_of_the_checkpoint(trained, tmp_path, monkeypatch):
    _, run = trained
    out, empty = tmp_path / "out", tmp_path / "no-cases"
    shutil.copytree(run, out)
    empty.mkdir()
    calls = _count_state_reads(monkeypatch)
    assert main([str(empty), "-o", str(out), *TINY, "--resume"]) == 2
    assert len(calls) == 1
