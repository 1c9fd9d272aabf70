"""Per-depth validation, the pruning rule, and checkpoints without pickles."""

from __future__ import annotations

import contextlib
import json
import math

import numpy as np
import pytest
import torch
from torch import nn
from UNetPlusPlusLib.engine import cpu_inference
from UNetPlusPlusLib.engine.network import UNetPlusPlus3D
from UNetPlusPlusLib.training import validation
from UNetPlusPlusLib.training.checkpoint import load_checkpoint, save_checkpoint
from UNetPlusPlusLib.training.preprocess import PreprocessedCase, foreground_points
from UNetPlusPlusLib.training.validation import dice_per_label, evaluate_depths, recommend_depth

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_dice_per_label():
    target = np.zeros((4, 4, 4), dtype=np.uint8)
    target[0, 0, :2] = 1
    prediction = target.copy()
    prediction[0, 0, 1] = 0
    scores = dice_per_label(prediction, target, 2)
    assert scores[0] == pytest.approx(2 * 1 / 3)
    assert math.isnan(scores[1])  # label 2 is in neither


def _per_depth(means: dict) -> dict:
    return {str(k): {"mean_dice": v} for k, v in means.items()}


def test_pruning_rule_picks_the_shallowest_depth_within_tolerance():
    figures = _per_depth({1: 0.70, 2: 0.795, 3: 0.80, 4: 0.79, "ensemble": 0.801})
    assert recommend_depth(figures, 0.01) == 2
    assert recommend_depth(figures, 0.0) == 3  # nothing is within 0 of the ensemble: best depth
    assert recommend_depth(figures, 0.2) == 1
    assert recommend_depth(_per_depth({1: None, 2: None}), 0.01) == 4


class _Threshold(nn.Module):
    """A stand-in network: class 1 where the image exceeds 0.5 (``flip`` inverts it)."""

    def __init__(self, flip_at_depth: int | None = None) -> None:
        super().__init__()
        self.flip_at_depth = flip_at_depth
        self.calls: list = []

    def forward(self, x, depth=4):
        self.calls.append(depth)
        foreground = (x[:, :1] > 0.5).float()
        if depth == self.flip_at_depth:
            foreground = 1 - foreground
        return torch.cat([1 - foreground, foreground], dim=1) * 20.0


def _case(seed: int) -> PreprocessedCase:
    rng = np.random.default_rng(seed)
    labels = np.zeros((20, 24, 28), dtype=np.uint8)
    labels[5:12, 6:15, rng.integers(3, 10) : 20] = 1
    image = np.where(labels == 1, 0.9, 0.1).astype(np.float32)[None]
    return PreprocessedCase("c", "c", image, labels, foreground_points(labels, 0), np.zeros(1))


def test_evaluate_depths_scores_and_times_every_depth():
    model = _Threshold(flip_at_depth=2)
    cases = [_case(0), _case(1)]
    results = evaluate_depths(model, cases, ["tumor"], (16, 16, 16), 0.25, torch.device("cpu"))
    assert sorted(results) == ["1", "2", "3", "4", "ensemble"]
    assert results["1"]["dice"]["tumor"] == 1.0
    assert results["2"]["dice"]["tumor"] == 0.0
    assert all(v["seconds_per_volume"] > 0 for v in results.values())
    assert set(model.calls) == {1, 2, 3, 4, "ensemble"}
    json.dumps(results)  # manifest-ready


@pytest.mark.parametrize("name", ["model.safetensors", "optimizer.safetensors"])
def test_a_damaged_checkpoint_is_a_clear_error(tmp_path, name):
    """Tester 6: `train --resume` on a checkpoint whose safetensors header was overwritten
    failed with 'internal error (SafetensorError: ...)'; now one UNetPlusPlusError."""
    from UNetPlusPlusLib.errors import UNetPlusPlusError

    network = UNetPlusPlus3D(1, 2, (2, 2, 2, 2, 2, 2), norm="none")
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-3)
    save_checkpoint(tmp_path, network, optimizer, None, {"epoch": 1, "optimizer": {}})
    path = tmp_path / "checkpoint" / name
    data = bytearray(path.read_bytes())
    data[20:40] = b"x" * 20  # inside the JSON header
    path.write_bytes(bytes(data))
    with pytest.raises(UNetPlusPlusError, match="does not fit this model or is damaged"):
        load_checkpoint(tmp_path, network, optimizer, None)


def test_checkpoint_round_trip_is_exact_and_pickle_free(tmp_path):
    torch.manual_seed(0)
    network = UNetPlusPlus3D(1, 2, (2, 2, 2, 2, 2, 2), norm="none")
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-3)
    x = torch.randn(1, 1, 16, 16, 16)
    for _ in range(2):
        optimizer.zero_grad()
        network.forward_heads(x, 4)[-1].square().mean().backward()
        optimizer.step()
    save_checkpoint(tmp_path, network, optimizer, None, {"epoch": 3, "history": [1, 2]})
    files = sorted(p.name for p in (tmp_path / "checkpoint").iterdir())
    assert files == ["model.safetensors", "optimizer.safetensors", "state.json"]

    torch.manual_seed(1)
    restored = UNetPlusPlus3D(1, 2, (2, 2, 2, 2, 2, 2), norm="none")
    restored_optimizer = torch.optim.AdamW(restored.parameters(), lr=5.0)
    state = load_checkpoint(tmp_path, restored, restored_optimizer, None)
    assert state["epoch"] == 3 and state["history"] == [1, 2]
    for key, value in network.state_dict().items():
        assert torch.equal(value, restored.state_dict()[key])
    original, loaded = optimizer.state_dict(), restored_optimizer.state_dict()
    assert loaded["param_groups"][0]["lr"] == 1e-3
    for index, entry in original["state"].items():
        for key, value in entry.items():
            assert torch.equal(value, loaded["state"][index][key])


def test_a_stop_between_the_checkpoint_renames_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """save_checkpoint moves the old checkpoint aside, then the new one in: a Ctrl-C or a kill
    between the two renames left only `.checkpoint-old`, and `--resume` said 'no checkpoint'
    though the previous one was complete on disk (tester 12)."""
    from UNetPlusPlusLib.training import checkpoint

    network = UNetPlusPlus3D(1, 2, (2, 2, 2, 2, 2, 2), norm="none")
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-3)
    save_checkpoint(tmp_path, network, optimizer, None, {"epoch": 1})
    renames = []
    real_replace = checkpoint.os.replace

    def stopped_after_the_first(source, target):
        renames.append(target)
        real_replace(source, target)
        raise KeyboardInterrupt  # as SIGINT lands between the two renames

    monkeypatch.setattr(checkpoint.os, "replace", stopped_after_the_first)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, network, optimizer, None, {"epoch": 2})
    monkeypatch.setattr(checkpoint.os, "replace", real_replace)
    assert [p.name for p in renames] == [".checkpoint-old"]  # the window this test is about

    assert checkpoint.read_checkpoint_state(tmp_path)["epoch"] == 1
    assert load_checkpoint(tmp_path, network, optimizer, None)["epoch"] == 1
    save_checkpoint(tmp_path, network, optimizer, None, {"epoch": 2})
    assert checkpoint.read_checkpoint_state(tmp_path)["epoch"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def _spy_runs(model: UNetPlusPlus3D) -> list:
    """Record the depth of every network pass (``_run``) of ``model``; the passes still run."""
    runs: list = []
    run = model._run

    def spy(x, depth, heads):
        runs.append(depth)
        return run(x, depth, heads)

    model._run = spy
    return runs


def _noisy_case(seed: int) -> PreprocessedCase:
    rng = np.random.default_rng(seed)
    labels = np.zeros((20, 16, 32), dtype=np.uint8)
    labels[4:14, 3:13, 5:27] = 1
    labels[7:11, 6:10, 8:20] = 2
    image = (labels * 0.7 + rng.normal(0, 0.5, labels.shape)).astype(np.float32)[None]
    return PreprocessedCase("n", "n", image, labels, foreground_points(labels, 0), np.zeros(1))


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_untimed_validation_scores_every_depth_from_one_pass_per_tile(norm):
    """Every depth's Dice from one full pass per tile (heads 1..4 and their ensemble) equals
    the Dice of running each pruned depth on its own: 1 pass a tile instead of 5."""
    torch.manual_seed(3)
    model = UNetPlusPlus3D(1, 3, (2, 2, 2, 2, 2, 2), norm=norm).eval()
    cases, cpu = [_noisy_case(0)], torch.device("cpu")
    runs = _spy_runs(model)
    old = evaluate_depths(model, cases, ["a", "b"], (16, 16, 32), 0.25, cpu, timed=True)
    tiles = len(runs) // 5
    assert tiles == 2  # a sliding window: 2 overlapping tiles
    assert sorted(runs) == sorted([1, 2, 3, 4, 4] * tiles)
    runs.clear()
    new = evaluate_depths(model, cases, ["a", "b"], (16, 16, 32), 0.25, cpu, timed=False)
    assert runs == [4] * tiles  # one full pass per tile
    assert {k: v["dice"] for k, v in new.items()} == {k: v["dice"] for k, v in old.items()}
    assert len({v["mean_dice"] for v in old.values()}) > 1  # the depths really differ here
    assert all(v["seconds_per_volume"] is None for v in new.values())
    assert all(v["seconds_per_volume"] > 0 for v in old.values())


def test_untimed_validation_of_another_network_runs_each_depth():
    """A network without UNet++ heads (or autocast) keeps one pass per depth."""
    model = _Threshold(flip_at_depth=2)
    results = evaluate_depths(
        model, [_case(0)], ["tumor"], (16, 16, 16), 0.25, torch.device("cpu"), timed=False
    )
    assert set(model.calls) == {1, 2, 3, 4, "ensemble"}
    assert results["2"]["dice"]["tumor"] == 0.0 and results["1"]["dice"]["tumor"] == 1.0


def _count_folds_and_workspaces(patch: pytest.MonkeyPatch) -> tuple[list, list]:
    """Record every up-convolution fold (``compose_up_conv``: (up, first channel)) and every
    oneDNN workspace the CPU path creates; both still run."""
    folds: list = []
    workspaces: list = []
    compose = cpu_inference.compose_up_conv

    def counting_compose(up, conv, first):
        folds.append((id(up), first))
        return compose(up, conv, first)

    class CountedWorkspace(cpu_inference.Workspace):
        def __init__(self) -> None:
            super().__init__()
            workspaces.append(self)

    patch.setattr(cpu_inference, "compose_up_conv", counting_compose)
    patch.setattr(cpu_inference, "Workspace", CountedWorkspace)
    return folds, workspaces


@pytest.mark.parametrize("timed", [True, False])
def test_a_validation_folds_and_packs_each_weight_once(monkeypatch, timed):
    """Tester (session 15): one 65x61x30 nodule crop took 48 s to validate (L4 16 s). Every tile
    of every depth ran outside a kept workspace, so the CPU path composed each up-convolution
    in float64 and repacked every weight per tile (about 60 % of the CPU time on 48x48x16
    tiles). Now one workspace serves the whole validation, as in the Predictor: each decoder
    node is folded once whatever the number of tiles, depths and cases, and the Dice is the
    same as with a fresh workspace per tile."""
    torch.manual_seed(3)
    model = UNetPlusPlus3D(1, 3, (4, 8, 8, 8, 8, 4)).eval()
    cases, cpu = [_noisy_case(0)], torch.device("cpu")
    runs = _spy_runs(model)
    folds, workspaces = _count_folds_and_workspaces(monkeypatch)
    kept = evaluate_depths(model, cases, ["a", "b"], (16, 16, 32), 0.25, cpu, timed=timed)
    assert len(runs) == (10 if timed else 2)  # 2 tiles, each depth on its own or one pass
    assert len(workspaces) == 1
    assert folds and len(folds) == len(set(folds)) <= 10  # decoder nodes X(i, j), i + j <= 4
    monkeypatch.setattr(validation, "reuse_buffers", contextlib.nullcontext)
    fresh = evaluate_depths(model, cases, ["a", "b"], (16, 16, 32), 0.25, cpu, timed=timed)
    assert len(workspaces) == 1 + len(runs) // 2  # the former way: one per network pass
    assert {k: v["dice"] for k, v in kept.items()} == {k: v["dice"] for k, v in fresh.items()}
