"""bench/benchlib/training.py: the shipped models' plans, one step of each engine, the line."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from benchlib import training  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_plans_come_from_the_shipped_manifests():
    plans = training.shipped_plans()
    assert {"liver", "lung-nodule", "brain-tumor"} <= set(plans)
    assert plans["lung-nodule"]["tile_xyz"] == [48, 48, 16] and plans["lung-nodule"]["batch"] == 4
    assert plans["brain-tumor"]["channels"] == 4


def test_both_steps_train_the_same_tiny_plan():
    pytest.importorskip("monai")
    plan = {"tile_xyz": [32, 16, 16], "features": [2, 4, 8, 16, 32, 2], "channels": 1,
            "classes": 2, "batch": 1}  # fmt: skip
    training.ours_step(plan)()
    training.monai_step(plan)()


def test_line_names_model_tile_batch_and_ratio():
    results = {"liver": {"tile_xyz": [48, 48, 48], "batch": 2, "ours": 1.5, "monai": 1.0}}
    text = training.line(results, 2, "fp32")
    assert re.fullmatch(
        r"training_patches_per_s \(2 threads, fp32\): liver 48x48x48 b2 ours 1\.50 monai 1\.00 "
        r"\(1\.50x\)",
        text,
    )
