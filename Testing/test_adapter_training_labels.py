"""The panel's fine-tune path shows the training-label checks (training/dataset_label_checks.py).

The fresh-user tester's loop on real MRML: segment ``pulm_ct_cropped`` (a chest crop) with the
liver model, whose "liver" lies on the heart, "Add current case", then fine-tune the liver model
on it. The plan job lists the case's warning before the plan; ``--strict-labels`` stops the job
before any training step with the error naming the case.
"""

from __future__ import annotations

import sys

import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

from UNetPlusPlusLib.adapter import geometry  # noqa: E402
from UNetPlusPlusLib.adapter.logic import SegmentationLogic  # noqa: E402
from UNetPlusPlusLib.adapter.training_logic import TrainingLogic, next_case_name  # noqa: E402
from UNetPlusPlusLib.engine.image_read import read_volume  # noqa: E402
from UNetPlusPlusLib.engine.registry import find_model  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process checks")
TIMEOUT_S = 300
#: The plan's step timing on a small tile at one precision (no fp32/bf16 comparison): what
#: the tests check (the label warning, then the plan) does not depend on the timed steps.
CHEAP_PLAN = ["--tile", "32", "32", "32", "--precision", "fp32"]
HEART = "its label 'liver' is not where a liver lies: it lies between the lungs, where the heart"


@pytest.fixture(scope="module")
def heart_cases(shared_data, tmp_path_factory):
    """One case exported the way 'Add current case' does: the liver model's result on the
    heart of pulm_ct_cropped (depth 1, the cheapest head; it finds the heart too)."""
    folder = tmp_path_factory.mktemp("training") / "cases"
    scene = slicer.vtkMRMLScene()
    ct = read_volume([shared_data / "liver/totalsegmentator-examples/pulm_ct_cropped.nii.gz"])
    volume = geometry.volume_node_from_volume(scene, ct, "CT")
    logic = SegmentationLogic()
    node = logic.segment([volume], find_model("liver"), depth=1, device="cpu")
    assert any("where the heart is" in w for w in logic.warnings)  # said at inference
    logic.export_training_case([volume], node, folder, next_case_name(folder))
    return folder


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("UNETPP_HOME", str(tmp_path / "home"))
    return tmp_path / "home" / "models"


def test_strict_labels_stops_the_panel_job_before_training(heart_cases, home):
    job = TrainingLogic().start(
        heart_cases, find_model("liver"), time_budget="10m", device="cpu",
        extra_args=["--threads", "1", "--strict-labels"],
    )  # fmt: skip
    job.wait(timeout=TIMEOUT_S)
    assert job.state == "failed", (job.error, job.log[-5:])
    assert "Case 'case001': " + HEART in job.error
    assert "nothing was trained or written" in job.error
    assert job.installed is None and not home.exists()


def test_the_plan_job_lists_the_label_warning_before_the_plan(heart_cases, home):
    job = TrainingLogic().start(
        heart_cases, find_model("liver"), time_budget="10m", device="cpu", plan_only=True,
        extra_args=["--threads", "1", "--max-val-cases", "1", *CHEAP_PLAN],
    )  # fmt: skip
    job.wait(timeout=TIMEOUT_S)
    assert job.state == "succeeded", (job.error, job.log[-5:])
    said = [i for i, line in enumerate(job.log) if HEART in line]
    assert len(said) == 1 and job.log[said[0]].startswith("warning: Case 'case001': ")
    plan = next(i for i, line in enumerate(job.log) if line.startswith("training plan:"))
    assert said[0] < plan
