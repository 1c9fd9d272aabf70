"""The memory of one training step (training/step_memory.py): the estimate's shape, the parse-
time bound of --batch-size, the refusal of a batch or tile that cannot fit (before any
preprocessing, nothing written), the planner's reduction of its own batch, and the shipped
settings passing on a small machine."""

from __future__ import annotations

import argparse
import json

import pytest
import torch
from test_training_dataset import write_slicer_dataset
from UNetPlusPlusLib.engine.network import UNetPlusPlus3D
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.resources import resource_dir
from UNetPlusPlusLib.training.cli import build_dataset, main
from UNetPlusPlusLib.training.fingerprint import CaseFingerprint, DatasetFingerprint
from UNetPlusPlusLib.training.plan_setup import make_plan
from UNetPlusPlusLib.training.planner import DeviceInfo, plan_geometry
from UNetPlusPlusLib.training.step_memory import (
    fit_batch,
    largest_batch,
    parameter_count,
    step_bytes,
)
from UNetPlusPlusLib.training.train_args import MAX_BATCH_SIZE, add_train_arguments

NARROW = (8, 16, 32, 64, 128, 8)
WIDE = (16, 32, 64, 128, 256, 16)
GB = 2**30
#: A small machine: 8 GB, less the system's share.
SMALL_MACHINE = 6 * GB
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unetpp train")
    add_train_arguments(parser)
    return parser


def _fingerprint(size, foreground_mm) -> DatasetFingerprint:
    rows = [
        CaseFingerprint(
            case_id=f"c{i}",
            size_xyz=list(size),
            spacing_xyz=[1.0, 1.0, 1.0],
            intensity=[{"mean": 0.0, "std": 1.0, "p00_5": -1.0, "p50": 0.0, "p99_5": 1.0}],
            label_ml=[1.0],
            foreground_mm_xyz=list(foreground_mm),
        )
        for i in range(5)
    ]
    return DatasetFingerprint(rows, ["CT"], ["liver"])


# ----------------------------------------------------------------------------- the estimate
@pytest.mark.parametrize("features, channels, classes", [(NARROW, 1, 2), (WIDE, 4, 4)])
def test_parameter_count_is_the_networks(features, channels, classes):
    network = UNetPlusPlus3D(channels, classes, features)
    assert parameter_count(features, channels, classes) == sum(
        p.numel() for p in network.parameters()
    )


def test_estimate_grows_linearly_with_the_batch_and_the_tile_voxels():
    fixed = step_bytes((48, 48, 48), 0, NARROW, 1, 2)
    one = step_bytes((48, 48, 48), 1, NARROW, 1, 2) - fixed
    assert one > 0
    for batch in (2, 4, 64):
        assert step_bytes((48, 48, 48), batch, NARROW, 1, 2) - fixed == pytest.approx(
            batch * one, rel=1e-6
        )
    # 96^3 has 8x the voxels of 48^3: 8x the part that grows
    eight = step_bytes((96, 96, 96), 1, NARROW, 1, 2) - fixed
    assert eight == pytest.approx(8 * one, rel=1e-6)
    # the same voxels in another shape cost the same
    assert step_bytes((96, 48, 24), 3, NARROW, 1, 2) == step_bytes((48, 48, 48), 3, NARROW, 1, 2)
    # wider features, more channels and classes, and float32 cost more
    assert step_bytes((48,) * 3, 2, WIDE, 1, 2) > step_bytes((48,) * 3, 2, NARROW, 1, 2)
    assert step_bytes((48,) * 3, 2, NARROW, 4, 4) > step_bytes((48,) * 3, 2, NARROW, 1, 2)
    assert step_bytes((48,) * 3, 2, NARROW, 1, 2, "bf16") < step_bytes((48,) * 3, 2, NARROW, 1, 2)


def test_estimate_is_above_a_real_steps_activations():
    """The estimate's growing part exceeds what autograd really keeps for one patch (the
    saved tensors of the project's network and loss, counted from the graph)."""
    from UNetPlusPlusLib.engine.loss import HybridLoss

    torch.manual_seed(0)
    network = UNetPlusPlus3D(1, 2, NARROW)
    kept: dict[int, int] = {}

    def pack(tensor):
        kept[id(tensor.untyped_storage())] = tensor.untyped_storage().nbytes()
        return tensor

    images = torch.randn(1, 1, 32, 32, 32)
    labels = torch.randint(0, 2, (1, 32, 32, 32))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = HybridLoss()(network.forward_heads(images, 4), labels)
    loss.backward()
    saved = sum(kept.values())
    growing = step_bytes((32,) * 3, 1, NARROW, 1, 2) - step_bytes((32,) * 3, 0, NARROW, 1, 2)
    assert saved < growing < 4 * saved


def test_largest_batch_is_the_largest_that_fits():
    memory = 5 * GB
    most = largest_batch((64, 64, 64), NARROW, 1, 2, memory)
    assert step_bytes((64, 64, 64), most, NARROW, 1, 2) <= memory
    assert step_bytes((64, 64, 64), most + 1, NARROW, 1, 2) > memory
    assert largest_batch((512, 512, 512), WIDE, 1, 2, memory) == 0


# ----------------------------------------------------------------------------- --batch-size
def test_batch_size_is_bounded_when_the_command_line_is_parsed(capsys):
    parser = _parser()
    assert parser.parse_args(["d", "-o", "o", "--batch-size", str(MAX_BATCH_SIZE)]).batch_size
    for value in (str(MAX_BATCH_SIZE + 1), "100000000000000", "0"):
        with pytest.raises(SystemExit) as stop:
            parser.parse_args(["d", "-o", "o", "--batch-size", value])
        assert stop.value.code == 2
    error = capsys.readouterr().err
    assert f"must be at most {MAX_BATCH_SIZE}, got 100000000000000" in error


# ----------------------------------------------------------------------------- refusals
def test_a_given_batch_that_cannot_fit_is_refused_before_preprocessing(tmp_path):
    """make_plan with a fake 8 GB machine: --batch-size 64 at a 96^3 tile is refused with one
    message naming the batch, the tile, the estimate, the memory and the largest batch."""
    data = write_slicer_dataset(tmp_path / "data", cases=2)
    out = tmp_path / "out"
    args = _parser().parse_args(
        [str(data), "-o", str(out), "--labels", "tumor", "--batch-size", "64",
         "--tile", "96", "96", "96", "--features", *map(str, NARROW), "--threads", "1"]
    )  # fmt: skip
    dataset = build_dataset(args)
    memory = 8 * GB
    need = step_bytes((96, 96, 96), 64, NARROW, 1, 2)
    most = largest_batch((96, 96, 96), NARROW, 1, 2, memory)
    assert 1 <= most < 64
    with pytest.raises(UNetPlusPlusError) as refusal:
        make_plan(args, dataset, log=lambda line: None, memory_bytes=memory)
    message = str(refusal.value)
    assert message.startswith("--batch-size 64 with a 96x96x96 tile (--tile) needs about ")
    assert f"about {need / GB:.0f} GB per training step" in message
    assert "this machine has 8.0 GB available" in message
    assert f"at most {most} fits, or leave --batch-size out" in message
    assert "\n" not in message
    assert not out.exists()  # refused before the cases were read: no fingerprint either
    # the same batch fits on a machine large enough: the plan keeps it
    plan = make_plan(args, dataset, log=lambda line: None, memory_bytes=need)
    assert plan.batch_size == 64 and plan.sources["batch_size"] == "--batch-size"


def test_a_given_batch_with_a_planned_tile_is_refused_after_the_fingerprint(tmp_path):
    """The tile is planned from the cases, so the check follows their fingerprint; no case is
    preprocessed."""
    data = write_slicer_dataset(tmp_path / "data", cases=2)
    out = tmp_path / "out"
    args = _parser().parse_args(
        [str(data), "-o", str(out), "--labels", "tumor", "--batch-size", "1024", "--threads", "1"]
    )
    with pytest.raises(UNetPlusPlusError) as refusal:
        make_plan(args, build_dataset(args), log=lambda line: None, memory_bytes=GB)
    message = str(refusal.value)
    assert message.startswith("--batch-size 1024 with a ") and " tile needs about " in message
    assert "this machine has 1.0 GB available; at most " in message
    cached = sorted(path.name for path in (out / "cache").iterdir())
    assert cached and all(name.startswith("fingerprint-") for name in cached)


def test_a_given_tile_too_large_for_one_patch_names_the_tile(tmp_path):
    plan = plan_geometry(
        _fingerprint((200, 200, 200), (100, 100, 100)),
        DeviceInfo("cpu", "test CPU", 2, False),
        {"tile_size": ((256, 256, 256), "--tile")},
    )
    with pytest.raises(
        UNetPlusPlusError, match="not even a batch of 1 fits; give a smaller --tile"
    ):
        fit_batch(plan, 1, 2, SMALL_MACHINE)
    assert plan.batch_size == 2  # unchanged


def test_the_command_refuses_an_impossible_batch_and_writes_nothing(tmp_path, capsys):
    """The whole command on this machine's real memory: 1024 patches of 256^3 fit nowhere."""
    data = write_slicer_dataset(tmp_path / "data", cases=2)
    out = tmp_path / "out"
    code = main(
        [str(data), "-o", str(out), "--labels", "tumor", "--batch-size", "1024",
         "--tile", "256", "256", "256", "--no-progress", "--threads", "1", "--plan-only"]
    )  # fmt: skip
    assert code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: --batch-size 1024 with a 256x256x256")
    assert "GB available" in error[0] and "Traceback" not in error[0]
    assert not out.exists()


# ----------------------------------------------------------------------------- the planner
def test_a_planned_batch_that_cannot_fit_is_reduced_with_the_reason():
    plan = plan_geometry(
        _fingerprint((200, 200, 200), (100, 100, 100)),
        DeviceInfo("cpu", "test CPU", 2, False),
        {"tile_size": ((128, 128, 128), "--tile")},
    )
    assert plan.batch_size == 2 and "batch_size" not in plan.sources
    memory = step_bytes((128,) * 3, 1, plan.features, 1, 2) + 1
    fit_batch(plan, 1, 2, memory)
    assert plan.batch_size == 1
    assert "2 would need about" in plan.reasons["batch_size"]
    assert any("batch_size" in line and "the most that fits" in line for line in plan.describe())


@pytest.mark.parametrize(
    "device, memory, precision",
    [
        (DeviceInfo("cpu", "test CPU", 2, False), SMALL_MACHINE, "fp32"),
        (DeviceInfo("cpu", "test CPU", 8, True), SMALL_MACHINE, "fp32"),
        (DeviceInfo("cpu", "test CPU", 32, True), 14 * GB, "fp32"),
        (DeviceInfo("cuda", "test GPU", 8, True, 24.0), 24 * GB, "amp"),
        (DeviceInfo("cuda", "test GPU", 8, True, 48.0), 48 * GB, "amp"),
    ],
)
def test_the_planners_defaults_fit(device, memory, precision):
    for classes in (2, 4):  # the shipped tasks: one label, or three (brain tumour, 4 channels)
        plan = plan_geometry(_fingerprint((300, 300, 300), (250, 250, 250)), device, {})
        planned = plan.batch_size
        fit_batch(plan, classes, classes, memory, precision)
        assert plan.batch_size == planned, plan.reasons["batch_size"]


def _shipped_settings():
    """(name, tile, features, batch, channels, classes) of the shipped models and datasets."""
    root = resource_dir("Models")
    rows = []
    for path in sorted(root.glob("*/model.json")):
        model = json.loads(path.read_text())
        network = model["network"]
        rows.append((path.parent.name, model["tile_size"], network["features"],
                     model["training"]["batch_size"], network["in_channels"],
                     network["out_channels"]))  # fmt: skip
    for path in sorted(resource_dir("Datasets").glob("*.json")):
        data = json.loads(path.read_text())
        rows.append((path.name, data["tile_size"], data["features"],
                     data["training"]["batch_size"], len(data["channels"]),
                     len(data["labels"]) + 1))  # fmt: skip
    return rows


def test_the_shipped_settings_fit_a_small_machine():
    rows = _shipped_settings()
    assert len(rows) >= 7
    for name, tile, features, batch, channels, classes in rows:
        need = step_bytes(tile, batch, features, channels, classes)
        assert need < 3 * GB, name
        assert largest_batch(tile, features, channels, classes, SMALL_MACHINE) > batch, name


def test_cpu_ranks_of_torchrun_share_the_machine_memory(tmp_path, monkeypatch):
    """torchrun --nproc_per_node 4 on a CPU: four processes each hold a step in one machine's
    memory. A batch that fits one process alone is refused for four (it was accepted: each
    rank was checked against the whole machine), before any case is read."""
    from UNetPlusPlusLib.engine.system_memory import physical_memory_bytes

    total = physical_memory_bytes()
    assert total is not None
    tile = (96, 96, 96)
    batch = largest_batch(tile, NARROW, 1, 2, total - GB)
    assert 2 <= batch <= MAX_BATCH_SIZE
    assert largest_batch(tile, NARROW, 1, 2, total // 4 - GB) < batch
    data = write_slicer_dataset(tmp_path / "data", cases=2)
    out = tmp_path / "out"
    args = _parser().parse_args(
        [str(data), "-o", str(out), "--labels", "tumor", "--batch-size", str(batch),
         "--tile", "96", "96", "96", "--features", *map(str, NARROW), "--threads", "1",
         "--device", "cpu"]
    )  # fmt: skip
    dataset = build_dataset(args)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    make_plan(args, dataset, log=lambda line: None)  # one process: it fits
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    with pytest.raises(UNetPlusPlusError) as refusal:
        make_plan(args, dataset, log=lambda line: None)
    shared = (total // 4 - GB) / GB
    assert f"each of the 4 training processes on this machine has {shared:.1f} GB" in str(
        refusal.value
    )


def test_a_network_too_wide_for_any_tile_names_the_features(tmp_path, capsys):
    """--features 100000 x 6 with a 32^3 tile was told 'give a smaller --tile', which cannot
    help: the weights and AdamW's state alone fill the memory. The refusal names --features,
    before any case is read."""
    plan = plan_geometry(
        _fingerprint((200, 200, 200), (100, 100, 100)),
        DeviceInfo("cpu", "test CPU", 2, False),
        {"tile_size": ((32, 32, 32), "--tile"), "features": ((4096,) * 5 + (8,), "--features")},
    )
    with pytest.raises(UNetPlusPlusError) as refusal:
        fit_batch(plan, 1, 2, SMALL_MACHINE)
    message = str(refusal.value)
    assert "weights and optimizer state alone need about" in message
    assert "give narrower --features (--features)" in message and "--tile" not in message[-80:]
    # a wide network that fits, with a tile too large: both remedies are named
    plan = plan_geometry(
        _fingerprint((200, 200, 200), (100, 100, 100)),
        DeviceInfo("cpu", "test CPU", 2, False),
        {"tile_size": ((256, 256, 256), "--tile"), "features": (WIDE, "--features")},
    )
    with pytest.raises(UNetPlusPlusError, match=r"smaller --tile or narrower --features"):
        fit_batch(plan, 1, 2, SMALL_MACHINE)
    data = write_slicer_dataset(tmp_path / "data", cases=2)
    out = tmp_path / "out"
    code = main(
        [str(data), "-o", str(out), "--labels", "tumor", "--batch-size", "1", "--tile", "32",
         "32", "32", "--features", *["100000"] * 6, "--threads", "1", "--plan-only"]
    )  # fmt: skip
    error = capsys.readouterr().err
    assert code == 2 and "give narrower --features (--features)" in error, error
    assert not out.exists()


@pytest.mark.parametrize("precision, refused", [("amp", True), ("fp32", True), ("bf16", False)])
def test_the_estimate_uses_autocast_only_where_it_applies(tmp_path, precision, refused):
    """--precision amp on a CPU trains in float32 (with a warning) but was estimated with the
    autocast share (0.7 of float32): a batch that needs more than the memory passed. Memory
    here lies between the bf16 and the float32 estimate."""
    tile, batch = (64, 64, 64), 8
    fp32 = step_bytes(tile, batch, NARROW, 1, 2, "fp32")
    bf16 = step_bytes(tile, batch, NARROW, 1, 2, "bf16")
    assert bf16 < fp32
    data = write_slicer_dataset(tmp_path / "data", cases=2)
    args = _parser().parse_args(
        [str(data), "-o", str(tmp_path / "out"), "--labels", "tumor", "--batch-size",
         str(batch), "--tile", "64", "64", "64", "--features", *map(str, NARROW),
         "--threads", "1", "--device", "cpu", "--precision", precision]
    )  # fmt: skip
    memory = (bf16 + fp32) // 2
    if refused:
        with pytest.raises(UNetPlusPlusError, match=f"--batch-size {batch} with a 64x64x64"):
            make_plan(args, build_dataset(args), log=lambda line: None, memory_bytes=memory)
    else:
        plan = make_plan(args, build_dataset(args), log=lambda line: None, memory_bytes=memory)
        assert plan.batch_size == batch
