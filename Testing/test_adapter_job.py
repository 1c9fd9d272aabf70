"""adapter/job: the background path, the real `python -m UNetPlusPlusLib.cli` in a child process."""

from __future__ import annotations

import gc
import json
import shutil
import sys
import time
import weakref
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)
try:
    import UNetPlusPlusLib.cli  # noqa: F401
except ImportError as error:  # pragma: no cover - only while the CLI is being written
    pytest.skip(f"UNetPlusPlusLib.cli cannot be imported yet: {error}", allow_module_level=True)

from helpers import make_sphere_image, rotation_matrix  # noqa: E402
from UNetPlusPlusLib.adapter import geometry, job, segmentation_writer  # noqa: E402
from UNetPlusPlusLib.engine.image_read import volume_from_sitk  # noqa: E402

TIMEOUT_S = 180


@pytest.fixture(scope="module")
def image():
    return make_sphere_image(
        (22, 20, 16), (1.8, 2.2, 2.5), (5.0, -12.0, 30.0), rotation_matrix((-10, 15, 5)),
        radius_mm=9.0,
    )  # fmt: skip


def mask_of(node, name="liver") -> np.ndarray:
    segmentation = node.GetSegmentation()
    segment = segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName(name))
    labels = segment.GetRepresentation(segmentation_writer.binary_labelmap_name())
    return geometry.array_from_oriented_image(labels) == segment.GetLabelValue()


def test_command_line_passes_ras_prompts_to_the_cli(tmp_path):
    command = job.build_command(
        "python3",
        [tmp_path / "a.nrrd", tmp_path / "b.nrrd"],
        tmp_path / "model.json",
        tmp_path / "out.nrrd",
        depth="ensemble",
        device="cuda:1",
        point_ras=(1.5, -2.0, 3.0),
        roi_ras=((0, 1, 2), (3, 4, 5)),
    )
    assert command[:4] == ["python3", "-m", "UNetPlusPlusLib.cli", "segment"]
    assert command[4:6] == [str(tmp_path / "a.nrrd"), str(tmp_path / "b.nrrd")]
    joined = " ".join(command)
    assert f"--model {tmp_path / 'model.json'}" in joined
    assert "--depth ensemble --device cuda:1" in joined
    assert f"--labelmap {tmp_path / 'out.nrrd'} --progress-json" in joined
    assert "--point 1.5 -2.0 3.0" in joined
    assert "--roi 0.0 1.0 2.0 3.0 4.0 5.0" in joined
    # the click named as the in-process run names it, in one argument (a label may start "-")
    assert "--point-name=The clicked point" in command
    named = job.build_command("p", [], tmp_path / "m.json", tmp_path / "o.nrrd",
                              point_ras=(1, 2, 3), point_name="Point '-1' (2 of 3)")  # fmt: skip
    assert named[-1] == "--point-name=Point '-1' (2 of 3)"
    assert not [a for a in job.build_command("p", [], tmp_path, tmp_path) if "--point" in a]
    # outside Slicer there is no PythonSlicer: the child is this interpreter
    assert job.python_executable() == sys.executable
    assert (job.package_root() / "UNetPlusPlusLib" / "cli.py").is_file()


def test_background_job_matches_the_blocking_run(sphere_model, image, logic):
    scene = slicer.vtkMRMLScene()
    volume_node = geometry.volume_node_from_volume(scene, volume_from_sitk([image]), "CT")
    nodes_before = scene.GetNumberOfNodes()

    running = logic.start_job([volume_node], sphere_model, device="cpu")
    assert scene.GetNumberOfNodes() == nodes_before  # nothing written while it runs
    view = weakref.ref(running.volume.arrays[0])  # the input: a view of the node's voxels
    events = running.wait(timeout=TIMEOUT_S)

    assert running.state == job.SUCCEEDED, running.error
    stages = [e.stage for e in events if e.kind == job.PROGRESS]
    assert "infer" in stages and stages.index("infer") < len(stages) - 1
    infer = [e for e in events if e.stage == "infer"]
    assert infer[-1].done == infer[-1].total > 0
    assert events[-1].kind == job.FINISHED
    assert running.result["model"] == "sphere-test"
    node = running.output
    assert node.GetScene() is scene
    assert segmentation_writer.segment_names(node) == ["liver"]
    blocking = logic.segment([volume_node], sphere_model, device="cpu")
    assert np.array_equal(mask_of(node), mask_of(blocking))
    assert mask_of(node).sum() > 100
    # finished, the job holds neither the input's voxels (a deleted or closed volume's memory
    # stayed alive through the panel's last job) nor the nodes (on_success); release() (the
    # panel's, once the result is shown) drops the result's labelmap and node too
    gc.collect()
    assert running.volume is None and running.on_success is None and view() is None
    running.release()
    assert running.labels is None and running.output is None
    assert running.result["model"] == "sphere-test"


def test_cancel_stops_the_child_and_leaves_the_scene_as_it_was(sphere_model, image, logic):
    scene = slicer.vtkMRMLScene()
    volume_node = geometry.volume_node_from_volume(scene, volume_from_sitk([image]), "CT")
    nodes_before = scene.GetNumberOfNodes()
    running = logic.start_job([volume_node], sphere_model, device="cpu")
    workdir = running._workdir
    deadline = time.monotonic() + TIMEOUT_S
    while not any(e.kind == job.PROGRESS for e in running.poll()):
        assert not running.finished, running.error
        assert time.monotonic() < deadline
        time.sleep(0.02)

    running.cancel()
    events = running.wait(timeout=TIMEOUT_S)

    assert running.state == job.CANCELLED
    assert events[-1].state == job.CANCELLED
    assert running.output is None
    assert scene.GetNumberOfNodes() == nodes_before
    assert not Path(workdir).exists()  # temporary inputs removed


def test_cli_error_reaches_the_job_and_the_scene_is_untouched(sphere_model, image, tmp_path, logic):
    broken = tmp_path / "broken-model"
    shutil.copytree(sphere_model.parent, broken)
    data = json.loads((broken / "model.json").read_text())
    data["sha256"] = "0" * 64
    (broken / "model.json").write_text(json.dumps(data))
    scene = slicer.vtkMRMLScene()
    volume_node = geometry.volume_node_from_volume(scene, volume_from_sitk([image]), "CT")
    nodes_before = scene.GetNumberOfNodes()

    running = logic.start_job([volume_node], broken / "model.json", device="cpu")
    events = running.wait(timeout=TIMEOUT_S)

    assert running.state == job.FAILED
    assert "do not match their manifest" in running.error
    assert events[-1].message == running.error
    assert scene.GetNumberOfNodes() == nodes_before


def test_a_click_comes_back_as_a_cropped_labelmap_on_the_input_voxels(sphere_model, image, logic):
    """Issue 14: the CLI writes a click's labels with their smallest extent and own origin; the
    job accepts it only because it lies exactly on the (oblique) input grid."""
    from UNetPlusPlusLib.engine.point_crop import grid_offset
    from UNetPlusPlusLib.engine.predictor import Predictor

    scene = slicer.vtkMRMLScene()
    volume = volume_from_sitk([image], channel_names=["CT"])
    volume_node = geometry.volume_node_from_volume(scene, volume, "CT")
    centre_lps = (5.0, -12.0, 30.0)
    running = logic.start_job(
        [volume_node], sphere_model, device="cpu", point_ras=geometry.lps_to_ras(centre_lps)
    )
    running.wait(timeout=TIMEOUT_S)
    assert running.state == job.SUCCEEDED, running.error
    labels = running.labels
    offset = grid_offset(labels.grid, volume.grid)
    assert offset is not None and labels.array.size < volume.array[0].size
    expected = Predictor.from_manifest_path(sphere_model, device="cpu").segment(
        volume, point=centre_lps
    )
    box = tuple(slice(o, o + n) for o, n in zip(offset[::-1], labels.array.shape))
    np.testing.assert_array_equal(labels.array, expected.labels.array[box])
    assert labels.array.sum() == expected.labels.array.sum() > 0
    assert mask_of(running.output).sum() == (expected.labels.array == 1).sum()
