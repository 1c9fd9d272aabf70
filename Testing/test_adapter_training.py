"""adapter/training_*: the panel's fine-tune loop on real MRML through the background path.

Segment (the sphere fixture model) -> "Add current case" (the existing export) -> check the
cases -> train in a child process started through a launcher-like wrapper (PythonSlicer starts
the real interpreter as its child) -> progress -> install -> the registry finds the new model and
it segments a case. Cancel and close stop the whole process tree and install nothing.
"""

from __future__ import annotations

import sys
import time

import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

from helpers import dice, make_sphere_image, sphere_mask  # noqa: E402
from launcher import alive, descendants, make_launcher  # noqa: E402
from UNetPlusPlusLib.adapter import geometry, segmentation_writer  # noqa: E402
from UNetPlusPlusLib.adapter.job import FINISHED, PROGRESS  # noqa: E402
from UNetPlusPlusLib.adapter.logic import SegmentationLogic  # noqa: E402
from UNetPlusPlusLib.adapter.training_cases import cases_summary  # noqa: E402
from UNetPlusPlusLib.adapter.training_logic import TrainingLogic, next_case_name  # noqa: E402
from UNetPlusPlusLib.adapter.training_panel import (  # noqa: E402
    channel_check_args,
    epoch_text,
    plan_text,
    strict_labels_args,
)
from UNetPlusPlusLib.engine import registry  # noqa: E402
from UNetPlusPlusLib.engine.image_read import volume_from_sitk  # noqa: E402
from UNetPlusPlusLib.engine.manifest import ModelManifest  # noqa: E402
from UNetPlusPlusLib.errors import UNetPlusPlusError  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process checks")
TIMEOUT_S = 300
TINY = ["--tile", "32", "32", "32", "--batch-size", "1", "--threads", "1", "--precision", "fp32"]
TINY += ["--max-val-cases", "1", "--no-augment", "--iterations-per-epoch", "1"]
CENTRES = [(20.0, 22.0, 24.0), (28.0, 26.0, 22.0), (24.0, 30.0, 28.0)]


def children(pid: int) -> set[int]:
    return descendants(pid)


def wait_dead(pids, timeout: float = 10.0) -> list[int]:
    """The pids still alive after up to ``timeout`` s (a killed process takes a moment)."""
    deadline = time.monotonic() + timeout
    while [p for p in pids if alive(p)] and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def sphere(centre):
    return make_sphere_image((24, 24, 24), (2.0, 2.0, 2.0), center_lps=centre, radius_mm=9.0)


@pytest.fixture(scope="module")
def cases(sphere_model, tmp_path_factory):
    """Three cases exported from a real scene the way the panel's 'Add current case' does."""
    folder = tmp_path_factory.mktemp("training") / "cases"
    logic = SegmentationLogic()
    scene = slicer.vtkMRMLScene()
    for centre in CENTRES:
        volume = geometry.volume_node_from_volume(scene, volume_from_sitk([sphere(centre)]), "CT")
        node = logic.segment([volume], sphere_model, device="cpu")
        logic.export_training_case([volume], node, folder, next_case_name(folder))
    return folder


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("UNETPP_HOME", str(tmp_path / "home"))
    return tmp_path / "home" / "models"


def test_cases_are_counted_and_checked_against_the_model(cases, sphere_model, tmp_path):
    manifest = ModelManifest.load(sphere_model)
    checks = TrainingLogic.check_cases(cases, manifest)
    assert [c.name for c in checks.cases] == ["case001", "case002", "case003"]
    assert all(c.segments == ["liver"] for c in checks.cases)
    assert next_case_name(cases) == "case004"
    assert cases_summary(checks) == "3 case(s) to train on"
    (tmp_path / "lonely.seg.nrrd").write_bytes((cases / "case001.seg.nrrd").read_bytes())
    (tmp_path / "lonely.nrrd").write_bytes((cases / "case001.nrrd").read_bytes())
    (tmp_path / "nolabel.seg.nrrd").write_bytes(b"NRRD0004\nSegment0_Name:=spleen\n\n")
    (tmp_path / "nolabel.nrrd").write_bytes(b"")
    (tmp_path / "noimage.seg.nrrd").write_bytes(b"NRRD0004\nSegment0_Name:=liver\n\n")
    summary = cases_summary(TrainingLogic.check_cases(tmp_path, manifest)).splitlines()
    assert summary[0] == "1 case(s) to train on, 2 refused"  # the trainer's words, one a line
    assert summary[1].startswith("Case 'noimage': no image beside noimage.seg.nrrd")
    assert summary[2].startswith("Case 'nolabel': segment 'liver' not found in nolabel.seg.nrrd")
    with pytest.raises(UNetPlusPlusError, match="No usable case"):
        TrainingLogic().start(tmp_path / "nowhere", manifest)
    (tmp_path / "lonely.seg.nrrd").unlink()
    with pytest.raises(UNetPlusPlusError, match=r"No usable case .*\(Case 'noimage': no image"):
        TrainingLogic().start(tmp_path, manifest)


def test_fine_tune_through_the_launcher_reports_progress_installs_and_segments(
    cases, sphere_model, home, tmp_path
):
    parent = ModelManifest.load(sphere_model)
    logic = TrainingLogic(python=make_launcher(tmp_path))
    installed = []
    job = logic.start(
        cases, parent, time_budget="10m", device="cpu", name="sphere-mine",
        on_success=installed.append, extra_args=[*TINY, "--epochs", "2", "--lr", "1e-12"],
    )  # fmt: skip
    with pytest.raises(UNetPlusPlusError, match="already running"):
        logic.start(cases, parent)
    events = job.wait(timeout=TIMEOUT_S)
    assert job.state == "succeeded", (job.error, job.log[-5:])
    progress = [e for e in events if e.kind == PROGRESS]
    assert [(e.done, e.total) for e in progress] == [(1, 2), (2, 2)]
    assert (
        progress[-1].message.startswith("epoch 2/2, loss ") and "Dice L1 " in progress[-1].message
    )
    assert events[-1].kind == FINISHED and "Installed sphere-mine" in events[-1].message
    # installed in the user's model folder, with its card and log; found by the registry
    assert installed[0].path == home / "sphere-mine" / "model.json"
    assert {"CARD.md", "train.log", "weights.safetensors"} <= {
        p.name for p in (home / "sphere-mine").iterdir()
    }
    assert not (home / "sphere-mine" / "checkpoint").exists()
    found = registry.find_model("sphere-mine")
    assert found.training["fine_tuned_from"]["name"] == "sphere-test"
    assert found.labels[0].terminology == parent.labels[0].terminology
    # the installed model segments a new case in the scene
    image = sphere((26.0, 22.0, 26.0))
    scene = slicer.vtkMRMLScene()
    volume = geometry.volume_node_from_volume(scene, volume_from_sitk([image]), "CT")
    node = SegmentationLogic().segment([volume], found, device="cpu")
    segmentation = node.GetSegmentation()
    segment = segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName("liver"))
    labels = segment.GetRepresentation(segmentation_writer.binary_labelmap_name())
    found_mask = geometry.array_from_oriented_image(labels) == segment.GetLabelValue()
    assert dice(found_mask, sphere_mask(image, (26.0, 22.0, 26.0), 9.0)) > 0.8


def test_cancel_stops_the_process_tree_and_installs_nothing(cases, sphere_model, home, tmp_path):
    logic = TrainingLogic(python=make_launcher(tmp_path))
    job = logic.start(
        cases, ModelManifest.load(sphere_model), device="cpu",
        extra_args=[*TINY, "--epochs", "500"],
    )  # fmt: skip
    launcher = job._process.pid
    deadline = time.monotonic() + TIMEOUT_S
    events = []
    while not any(e.kind == PROGRESS for e in events) and time.monotonic() < deadline:
        events += job.poll()
        time.sleep(0.05)
    assert any(e.kind == PROGRESS for e in events), job.log[-5:]
    tree = {launcher, *children(launcher)}
    assert len(tree) >= 2  # the launcher and the real interpreter
    workdir = job._workdir
    logic.cancel()
    events = job.wait(timeout=TIMEOUT_S)
    assert job.state == "cancelled" and events[-1].message == "Training cancelled."
    assert not wait_dead(tree)
    assert not workdir.exists() and not home.exists()


def test_close_kills_a_stubborn_tree_at_once(cases, sphere_model, home, tmp_path):
    """Scene close / application exit: shutdown() kills the group without waiting for the
    trainer to notice the cancel file."""
    logic = TrainingLogic(python=make_launcher(tmp_path))
    job = logic.start(cases, ModelManifest.load(sphere_model), device="cpu",
                      extra_args=[*TINY, "--epochs", "500"])  # fmt: skip
    launcher = job._process.pid
    deadline = time.monotonic() + 60
    while len(children(launcher)) < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    tree = {launcher, *children(launcher)}
    workdir = job._workdir
    logic.shutdown()
    assert not wait_dead(tree)
    assert job.state == "cancelled" and not workdir.exists() and not home.exists()


def test_epoch_text_for_the_panel():
    event = {"done": 3, "total": 20, "loss": 0.4123, "eta_s": 212, "dice": {"1": 0.7, "2": 0.81}}
    assert epoch_text(event) == "epoch 3/20, loss 0.412, ETA 3m32s, Dice L1 0.70 L2 0.81"


@pytest.fixture(scope="module")
def plan_only_job(cases, sphere_model, tmp_path_factory):
    """One "Show plan" job (``unetpp train --plan-only`` in the background) with the panel's
    switches off their defaults: "Check each case's sequence order" unchecked, "strict labels"
    checked; shared by the tests below (a trainer process costs a torch import); returns the
    finished job and the user's (empty) model folder."""
    assert channel_check_args(True) == [] and strict_labels_args(False) == []
    home = tmp_path_factory.mktemp("plan-home") / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("UNETPP_HOME", str(home))
        logic = TrainingLogic()
        job = logic.start(
            cases, ModelManifest.load(sphere_model), time_budget="10m", device="cpu",
            plan_only=True, extra_args=["--threads", "1", "--max-val-cases", "1",
                                        *channel_check_args(False), *strict_labels_args(True)],
        )  # fmt: skip
        job.wait(timeout=TIMEOUT_S)
    return job, home / "models"


def test_plan_only_job_shows_the_plan_and_its_eta(plan_only_job):
    """'Show plan': ``unetpp train --plan-only`` in the background; nothing is installed."""
    job, home = plan_only_job
    assert job.state == "succeeded", (job.error, job.log[-5:])
    text = plan_text(job.log)
    assert text.startswith("training plan:") and "ETA" in text.splitlines()[-1]
    assert "budget 10m00s" in text and "overridden by the --init model" in text
    assert job.installed is None and not home.exists()


def test_the_panel_sequence_order_switch_reaches_unetpp_train(plan_only_job):
    """Unchecked, "Check each case's sequence order" runs ``unetpp train --no-channel-check``,
    which the CLI accepts (a plan-only job succeeds); checked adds nothing (checks by default)."""
    job, _ = plan_only_job
    assert "--no-channel-check" in job.command and "--strict-labels" in job.command
    assert job.state == "succeeded", (job.error, job.log[-5:])


def test_the_panels_train_command_passes_several_labels_as_one_list(tmp_path):
    """``--labels`` takes one comma-separated value: the panel passed ``--labels a b``, which
    the CLI refused as "unrecognized arguments: b" for two or more segments (session 16)."""
    from UNetPlusPlusLib.adapter.training_job import build_train_command
    from UNetPlusPlusLib.cli import build_parser

    command = build_train_command(
        "python", tmp_path / "cases", tmp_path / "work", None, labels=["liver", "left lung"]
    )
    at = command.index("--labels")
    assert command[at + 1 :] == ["liver,left lung"]
    args = build_parser().parse_args(command[3:])  # what `unetpp train` itself parses
    assert args.labels == ["liver", "left lung"]
    with pytest.raises(UNetPlusPlusError, match="contains a comma"):
        build_train_command("python", tmp_path, tmp_path, None, labels=["liver, left lobe"])


def test_from_scratch_starts_without_label_names(cases, tmp_path, monkeypatch):
    """The panel's "From scratch" passes no labels (the trainer learns every segment of the
    cases by name); TrainingLogic refused it as "needs the label names", so training from
    scratch could not start from the panel at all (noticed in session 18)."""
    monkeypatch.setenv("UNETPP_HOME", str(tmp_path / "home"))
    job = TrainingLogic().start(
        cases, None, time_budget="10m", device="cpu", plan_only=True,
        extra_args=["--threads", "1", "--max-val-cases", "1"],
    )  # fmt: skip
    job.wait(timeout=TIMEOUT_S)
    assert "--labels" not in job.command and "--init" not in job.command
    assert job.state == "succeeded", (job.error, job.log[-5:])
    assert plan_text(job.log).startswith("training plan:")
