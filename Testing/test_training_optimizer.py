"""training/optimizer.py: AdamW without the ``torch._dynamo`` import (about 2.5 s of CPU in
every process that trains, 6 s under load, for guards that only matter inside torch.compile).
Its numbers, state and state_dict are torch.optim.AdamW's, its hooks still run, and the trainer
and the calibration use it. The import is watched at the ``import`` statement (``__import__``),
so the checks hold whether or not another test already loaded torch._dynamo."""

from __future__ import annotations

import builtins
import copy
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from UNetPlusPlusLib.engine.manifest import ChannelSpec
from UNetPlusPlusLib.training import steps
from UNetPlusPlusLib.training.dataset_types import LabelDescription
from UNetPlusPlusLib.training.distributed import DistributedContext
from UNetPlusPlusLib.training.optimizer import AdamW
from UNetPlusPlusLib.training.trainer_setup import SetupMixin

SETTINGS = {"lr": 3e-3, "weight_decay": 3e-5}


@pytest.fixture()
def dynamo_imports(monkeypatch) -> list:
    """Every ``import torch._dynamo`` statement that torch.optim's code runs during the test
    (once torch._dynamo is loaded it also wraps ``torch.manual_seed``: that one is not counted)."""
    seen: list = []
    real = builtins.__import__
    optim = str(Path(torch.optim.__file__).parent)

    def watching(name, *args, **kwargs):
        if name.startswith("torch._dynamo"):
            frame = sys._getframe(1)
            while frame is not None and not frame.f_code.co_filename.startswith(optim):
                frame = frame.f_back
            if frame is not None:
                seen.append(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", watching)
    return seen


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv3d(1, 4, 3), torch.nn.InstanceNorm3d(4, affine=True), torch.nn.Conv3d(4, 2, 1)
    )


def _train(net: torch.nn.Module, optimizer: torch.optim.Optimizer, steps_: int) -> None:
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps_):
        optimizer.zero_grad(set_to_none=True)
        net(torch.randn(2, 1, 8, 8, 8, generator=generator)).square().mean().backward()
        optimizer.step()


def test_the_numbers_and_the_state_are_torchs(dynamo_imports):
    ours_net, torch_net = _net(), _net()
    ours = AdamW(ours_net.parameters(), **SETTINGS)
    theirs = torch.optim.AdamW(torch_net.parameters(), **SETTINGS)
    _train(ours_net, ours, 4)
    _train(torch_net, theirs, 4)
    assert all(torch.equal(a, b) for a, b in zip(ours_net.parameters(), torch_net.parameters()))
    mine, reference = ours.state_dict(), theirs.state_dict()
    assert mine["param_groups"] == reference["param_groups"]
    for index, entry in reference["state"].items():
        assert all(torch.equal(mine["state"][index][k], v) for k, v in entry.items())
    # a checkpoint of either loads into the other, and training goes on identically
    swapped_net = copy.deepcopy(torch_net)
    swapped = AdamW(swapped_net.parameters(), **SETTINGS)
    swapped.load_state_dict(copy.deepcopy(reference))  # a loaded state shares its tensors
    _train(swapped_net, swapped, 2)
    _train(torch_net, theirs, 2)
    assert all(torch.equal(a, b) for a, b in zip(swapped_net.parameters(), torch_net.parameters()))


def test_it_never_imports_dynamo_and_still_runs_step_hooks(dynamo_imports):
    net = _net()
    optimizer = AdamW(net.parameters(), **SETTINGS)
    calls: list = []
    optimizer.register_step_post_hook(lambda *args: calls.append("post"))
    _train(net, optimizer, 2)
    AdamW(_net().parameters(), **SETTINGS).load_state_dict(optimizer.state_dict())
    assert dynamo_imports == [] and calls == ["post", "post"]
    _train(net, torch.optim.AdamW(net.parameters(), **SETTINGS), 1)
    assert dynamo_imports  # torch's own step imports it on every call


def test_the_trainer_and_the_calibration_train_with_it(dynamo_imports):
    """``_build_model`` of a run (SetupMixin) and the calibration's throw-away copies."""
    run = SetupMixin()
    run.config = SimpleNamespace(
        seed=0, features=(2, 4, 8, 16, 32, 2), norm="instance", lr=1e-3, weight_decay=0.0,
        precision="fp32",
    )  # fmt: skip
    run.dataset = SimpleNamespace(
        channels=[ChannelSpec("CT", "CT", {"kind": "ct"})],
        labels=[LabelDescription("tumor", (1.0, 0.0, 0.0))],
    )
    run.init_manifest, run.resume, run.plan = None, False, None
    run.device, run.context = torch.device("cpu"), DistributedContext()
    run._build_model()
    assert type(run.optimizer) is AdamW
    images = torch.randn(1, 1, 16, 16, 32).contiguous(memory_format=torch.channels_last_3d)
    labels = torch.zeros(1, 16, 16, 32, dtype=torch.long)
    parameters = list(run.network.parameters())
    steps.training_step(run.model, parameters, run.optimizer, run.loss_fn, images, labels, None)
    _, _, optimizer = steps._copy(run.network, 1e-3, 0.0, steps.DeepSupervision)
    assert type(optimizer) is AdamW and dynamo_imports == []
