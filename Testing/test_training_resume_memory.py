"""``--resume`` gets the memory check of a training step that a new run gets
(training/step_memory.py): the plan is kept, so on a machine with less memory than the one
that planned it a batch that does not fit is refused before training, naming the batch, the
tile, the estimate, the memory and what fits. Before, the resumed plan was returned unchecked
and the run trained on until the kernel killed it. One tiny real run (one 1-iteration epoch on
three synthetic 24^3 cases) is resumed; the smaller machine is the memory given to make_plan
or, for the whole command, the machine's memory reading (engine/system_memory.py)."""

from __future__ import annotations

import argparse
import hashlib

import pytest
from test_training_dataset import write_slicer_dataset
from UNetPlusPlusLib.engine import system_memory
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.training.cli import build_dataset, main
from UNetPlusPlusLib.training.plan_setup import make_plan
from UNetPlusPlusLib.training.step_memory import BASELINE_BYTES, largest_batch, step_bytes
from UNetPlusPlusLib.training.train_args import add_train_arguments

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FEATURES = (4, 8, 16, 32, 64, 4)
TILE, BATCH = (32, 32, 32), 2
RUN = ["--labels", "tumor", "--no-progress", "--threads", "1", "--precision", "fp32",
       "--features", *map(str, FEATURES), "--tile", *map(str, TILE), "--batch-size",
       str(BATCH), "--iterations-per-epoch", "1", "--device", "cpu"]  # fmt: skip


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory):
    """(data, out): a finished one-epoch run of RUN, with its checkpoint and plan.json."""
    root = tmp_path_factory.mktemp("resume-memory")
    data = write_slicer_dataset(root / "data", cases=3)
    out = root / "out"
    assert main([str(data), "-o", str(out), *RUN, "--epochs", "1"]) == 0
    return data, out


def _resume_args(data, out) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    return parser.parse_args([str(data), "-o", str(out), *RUN, "--epochs", "2", "--resume"])


def _digests(folder) -> dict:
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != "train.log"
    }


def test_a_resumed_plan_is_checked_against_this_machines_memory(one_epoch):
    data, out = one_epoch
    args = _resume_args(data, out)
    dataset = build_dataset(args)
    need = step_bytes(TILE, BATCH, FEATURES, 1, 2, "fp32")
    plan = make_plan(args, dataset, log=lambda line: None, memory_bytes=need)  # it fits
    assert plan.batch_size == BATCH and plan.epochs == 2
    smaller = need - 1
    most = largest_batch(TILE, FEATURES, 1, 2, smaller)
    assert most == BATCH - 1
    with pytest.raises(UNetPlusPlusError) as refusal:
        make_plan(args, dataset, log=lambda line: None, memory_bytes=smaller)
    message = str(refusal.value)
    assert message.startswith(
        f"--resume: this run's plan.json trains a batch of {BATCH} with a 32x32x32 tile, about "
    ), message
    assert f"this machine has {smaller / 2**30:.1f} GB available" in message
    assert f"at most a batch of {most} fits" in message
    assert f"start a new run (--overwrite) with --batch-size {most}" in message
    assert "\n" not in message


def test_a_need_just_above_the_memory_does_not_read_as_the_same_figure(one_epoch):
    """0.18 GB needed, 0.17 GB available: at one decimal both read "0.2 GB" and the refusal
    seemed to refuse a step that fits; the figures get the decimals that tell them apart."""
    data, out = one_epoch
    args = _resume_args(data, out)
    need = step_bytes(TILE, BATCH, FEATURES, 1, 2, "fp32")
    smaller = need - 10 * 2**20
    assert f"{need / 2**30:.1f}" == f"{smaller / 2**30:.1f}"  # the case: one figure at .1f
    with pytest.raises(UNetPlusPlusError) as refusal:
        make_plan(args, build_dataset(args), log=lambda line: None, memory_bytes=smaller)
    message = str(refusal.value)
    assert f"about {need / 2**30:.2f} GB per training step" in message, message
    assert f"this machine has {smaller / 2**30:.2f} GB available" in message, message
    assert f"{need / 2**30:.2f}" != f"{smaller / 2**30:.2f}"


def test_not_even_one_patch_names_the_tile(one_epoch):
    data, out = one_epoch
    args = _resume_args(data, out)
    one = step_bytes(TILE, 1, FEATURES, 1, 2, "fp32")
    with pytest.raises(UNetPlusPlusError, match=r"not even a batch of 1 fits: .* smaller --tile"):
        make_plan(args, build_dataset(args), log=lambda line: None, memory_bytes=one - 1)


def test_the_resume_command_on_a_smaller_machine_changes_nothing(one_epoch, monkeypatch, capsys):
    """The whole command, on a machine whose memory reading holds less than the step: one
    error line, exit status 2, the checkpoint and plan.json as they were."""
    data, out = one_epoch
    before = _digests(out)
    need = step_bytes(TILE, BATCH, FEATURES, 1, 2, "fp32")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    monkeypatch.setattr(system_memory, "physical_memory_bytes", lambda: BASELINE_BYTES + need - 1)
    capsys.readouterr()
    code = main([str(data), "-o", str(out), *RUN, "--epochs", "2", "--resume"])
    assert code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: --resume: this run's plan.json"), error
    assert _digests(out) == before
