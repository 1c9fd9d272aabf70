"""A 2-process torchrun run (gloo on the CPU) completes with the same model on every rank."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from safetensors.torch import load_file
from test_training_dataset import write_slicer_dataset
from UNetPlusPlusLib.engine.manifest import ModelManifest
from UNetPlusPlusLib.engine.network import UNetPlusPlus3D
from UNetPlusPlusLib.training.distributed import state_digest


def test_torchrun_two_processes_give_one_model(tmp_path):
    data = write_slicer_dataset(tmp_path / "data", cases=4)
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "UNetPlusPlusLib.training.cli", str(data), "-o", str(out), "--labels", "tumor",
        "--tile", "32", "32", "32", "--features", "4", "8", "16", "32", "64", "4",
        "--batch-size", "1", "--epochs", "1", "--iterations-per-epoch", "1",
        "--threads", "1", "--no-progress",
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]

    record = json.loads((out / "rank_digests.json").read_text())
    assert record["world_size"] == 2
    assert len(record["digests"]) == 2 and len(set(record["digests"])) == 1

    manifest = ModelManifest.load(out / "model.json")
    assert manifest.training["world_size"] == 2
    network = UNetPlusPlus3D.from_config(manifest.network)
    network.load_state_dict(load_file(str(out / "weights.safetensors")))
    assert state_digest(network) == record["digests"][0]  # the package holds that model
    checkpoint = json.loads((out / "checkpoint" / "state.json").read_text())
    assert checkpoint["epoch"] == 1 and checkpoint["config"]["world_size"] == 2
