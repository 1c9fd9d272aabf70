"""The Slicer module records each run on the segments it writes (adapter/run_tags.py): the
model, the depth and the run's warnings, as a segment tag that Slicer saves with the scene and
in the .seg.nrrd it writes, on real MRML with the tiny sphere model (not mocked)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

from helpers import make_sphere_image, rotation_matrix  # noqa: E402
from UNetPlusPlusLib.adapter import geometry, job  # noqa: E402
from UNetPlusPlusLib.adapter.run_tags import (  # noqa: E402
    RUN_TAG,
    recorded_runs,
    recorded_warnings_text,
    segment_run,
    tag_run,
    tag_value,
)
from UNetPlusPlusLib.engine.image_read import volume_from_sitk  # noqa: E402

TIMEOUT_S = 300


@pytest.fixture(scope="module")
def warned_model(sphere_model, tmp_path_factory):
    """The sphere model with a plausible liver volume of 0-1 ml: its ball (~3 ml) warns."""
    folder = tmp_path_factory.mktemp("warned")
    for name in ("model.json", "weights.safetensors"):
        shutil.copy(sphere_model.parent / name, folder / name)
    data = json.loads((folder / "model.json").read_text())
    data["postprocess"]["plausible_ml"] = {"liver": [0, 1]}
    (folder / "model.json").write_text(json.dumps(data))
    return folder / "model.json"


def _volume(scene):
    image = make_sphere_image(
        (24, 20, 16), (1.7, 2.1, 2.6), (-15.0, 22.0, 40.0), rotation_matrix((12, -8, 25)),
        radius_mm=9.0,
    )  # fmt: skip
    return geometry.volume_node_from_volume(scene, volume_from_sitk([image]), "CT")


def _plausibility(warnings) -> list:
    return [w for w in warnings if "ml" in w]


def test_a_run_s_warnings_stay_on_its_segments_through_a_saved_seg_nrrd(
    logic, warned_model, tmp_path
):
    import slicerio

    scene = slicer.vtkMRMLScene()
    node = logic.segment([_volume(scene)], warned_model, device="cpu", depth="2")
    assert _plausibility(logic.warnings), logic.warnings
    [(name, record)] = recorded_runs(node)
    assert name == "liver" and record["unetpp_warnings"] == logic.warnings
    assert record["unetpp_model"] == "sphere-test" and record["unetpp_depth"] == "2"
    text = recorded_warnings_text(node)
    assert text.startswith("'liver': sphere-test, depth 2; ") and logic.warnings[0] in text
    # Slicer's own writer keeps the tag in the file; its reader brings it back
    path = tmp_path / "saved.seg.nrrd"
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(path))
    assert storage.WriteData(node)
    tags = slicerio.read_segmentation(str(path), skip_voxels=True)["segments"][0]["tags"]
    assert json.loads(tags[RUN_TAG])["unetpp_warnings"] == logic.warnings
    other = slicer.vtkMRMLScene()
    loaded = slicer.vtkMRMLSegmentationNode()
    other.AddNode(loaded)
    reader = slicer.vtkMRMLSegmentationStorageNode()
    reader.SetFileName(str(path))
    assert reader.ReadData(loaded)
    segment = loaded.GetSegmentation().GetNthSegment(0)
    assert segment_run(segment)["unetpp_warnings"] == logic.warnings


def test_a_clean_run_records_no_warnings_and_a_background_run_the_cli_s(
    logic, sphere_model, warned_model
):
    scene = slicer.vtkMRMLScene()
    volume = _volume(scene)
    clean = logic.segment([volume], sphere_model, device="cpu")
    assert recorded_runs(clean)[0][1]["unetpp_warnings"] == logic.warnings == []
    assert recorded_warnings_text(clean).endswith("; no warnings")
    running = logic.start_job([volume], warned_model, device="cpu", depth="2")
    running.wait(timeout=TIMEOUT_S)
    assert running.state == job.SUCCEEDED, running.error
    [(_, record)] = recorded_runs(running.output)
    said = _plausibility(running.run_warnings)
    assert said and _plausibility(record["unetpp_warnings"]) == said
    assert record["unetpp_model"] == "sphere-test" and record["unetpp_depth"] == "2"


def test_a_tag_never_holds_the_character_that_ends_it_in_a_seg_nrrd():
    record = {"unetpp_warnings": ["a | b", "C:\\x\ny"]}
    value = tag_value(record)
    assert "|" not in value and "\n" not in value and json.loads(value) == record
    segment = slicer.vtkSegment()
    segment.SetTag(RUN_TAG, value)
    assert segment_run(segment) == record
    segment.SetTag(RUN_TAG, "not json")
    assert segment_run(segment) is None


def test_review_reads_the_runs_of_a_seg_nrrd_saved_from_slicer(sphere_model, tmp_path, capsys):
    """Slicer's writer escapes a tag's backslashes (``\\\\``) and pynrrd/slicerio return them
    as written: ``unetpp review`` unescapes them, so quotes and non-ASCII text come back."""
    from UNetPlusPlusLib.adapter.segmentation_writer import write_segments
    from UNetPlusPlusLib.cli import main
    from UNetPlusPlusLib.engine.manifest import ModelManifest
    from UNetPlusPlusLib.engine.volume import LabelVolume
    from UNetPlusPlusLib.run_record import make_record, segment_runs

    manifest = ModelManifest.load(sphere_model)
    scene = slicer.vtkMRMLScene()
    volume = _volume(scene)
    grid = geometry.volume_from_nodes([volume]).grid
    array = np.zeros(grid.size_xyz[::-1], np.uint8)
    array[4:9, 5:10, 6:11] = 1
    labels = LabelVolume(array, grid.spacing, grid.origin, grid.direction, manifest.labels)
    written: list = []
    node = write_segments(labels, volume, written=written)
    warnings = ['The "liver" at C:\\scans\\new.nii', "\u2265 3 mm", "a | b"]
    record = make_record(manifest, "ensemble", warnings)
    tag_run(node, written, record)
    path = tmp_path / "saved.seg.nrrd"
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(path))
    assert storage.WriteData(node)
    assert segment_runs(path) == [("liver", record)]
    assert main(["review", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{path}: saved by Slicer; its segments record the UNet++ runs")
    assert out[1:] == [
        "  'liver': sphere-test, depth ensemble; 3 warnings",
        *[f"  warning: {text}" for text in warnings],
    ]
