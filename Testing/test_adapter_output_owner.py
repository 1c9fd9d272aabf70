"""adapter/logic + segmentation_binding: a result never goes into another volume's segmentation.

Real MRML (slicer-core) and real runs of the tiny sphere model (Testing/fixtures). Volume A and
volume B stand for two patients: another size, spacing, origin and direction. Given an output
node made for A, a run on B writes a new node bound to B, leaves A's node exactly as it was
(segment count, labelmap extents, voxels), and says so in the Logic's warnings, naming both
volumes and the new node. Before, B's segments were added to A's node in silence (the panel
keeps the output of the last nodule click selected for the next clicks).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

from helpers import make_sphere_image, rotation_matrix  # noqa: E402
from test_adapter_logic import add_volume, segment_mask  # noqa: E402
from UNetPlusPlusLib.adapter import geometry, segmentation_writer  # noqa: E402

CENTRE_A, CENTRE_B = (0.0, 0.0, 0.0), (35.0, -20.0, 60.0)


@pytest.fixture()
def two_patients():
    """A scene with volume A and volume B: two patients on different grids."""
    scene = slicer.vtkMRMLScene()
    a = make_sphere_image((36, 20, 20), (2.0, 2.0, 2.0), (-35.0, -19.0, -19.0), radius_mm=7.0)
    b = make_sphere_image(
        (28, 26, 18), (1.6, 1.8, 2.4), (10.0, -45.0, 40.0), rotation_matrix((0, 0, 10)),
        center_lps=CENTRE_B, radius_mm=7.0,
    )  # fmt: skip
    return scene, add_volume(scene, a, "patient A"), add_volume(scene, b, "patient B")


@pytest.fixture(scope="module")
def nodule_model(sphere_model, tmp_path_factory):
    """The sphere model as a point-prompted (nodule) model: one numbered segment per click."""
    package = tmp_path_factory.mktemp("nodule") / "nodule-model"
    shutil.copytree(sphere_model.parent, package)
    data = json.loads((package / "model.json").read_text())
    data["prompt"] = {"kind": "point", "box_mm": [30.0, 30.0, 30.0]}
    (package / "model.json").write_text(json.dumps(data))
    return package / "model.json"


def node_state(node) -> list:
    """Every segment's name and labelmap: extent and voxels."""
    segmentation, state = node.GetSegmentation(), []
    for name in segmentation_writer.segment_names(node):
        segment = segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName(name))
        image = segment.GetRepresentation(segmentation_writer.binary_labelmap_name())
        voxels = geometry.array_from_oriented_image(image).tobytes()
        state.append((name, tuple(image.GetExtent()), voxels))
    return state


def reference_of(node):
    return node.GetNodeReference(node.GetReferenceImageGeometryReferenceRole())


def test_a_click_on_another_patient_goes_to_a_new_node(logic, two_patients, nodule_model):
    scene, a, b = two_patients
    first = logic.segment([a], nodule_model, device="cpu", point_ras=(0.0, 0.0, 0.0))
    before = node_state(first)
    assert [name for name, *_ in before] == ["liver 1"]

    point_b = tuple(geometry.lps_to_ras(CENTRE_B))
    second = logic.segment([b], nodule_model, device="cpu", point_ras=point_b, output_node=first)

    assert second is not first and node_state(first) == before  # A's node as it was
    assert reference_of(first) is a and reference_of(second) is b
    assert segmentation_writer.segment_names(second) == ["liver 1"]  # B's first nodule
    assert segment_mask(second, "liver 1").any()
    assert (
        f"Output segmentation '{first.GetName()}' was not changed: it was made for volume "
        f"'patient A', and this result is for volume 'patient B'; it was written to a new "
        f"segmentation, '{second.GetName()}'."
    ) in logic.warnings, logic.warnings
    # the same patient again: the click adds to B's node, with no such warning
    third = logic.segment([b], nodule_model, device="cpu", point_ras=point_b, output_node=second)
    assert third is second and segmentation_writer.segment_names(second) == ["liver 1", "liver 2"]
    assert not any("was not changed" in warning for warning in logic.warnings)


def test_a_full_segmentation_of_another_patient_goes_to_a_new_node(
    logic, two_patients, sphere_model
):
    scene, a, b = two_patients
    theirs = logic.segment([a], sphere_model, device="cpu")
    theirs.RemoveNodeReferenceIDs(theirs.GetReferenceImageGeometryReferenceRole())
    before = node_state(theirs)  # bound by its reference geometry only (.seg.nrrd-like)

    ours = logic.segment([b], sphere_model, device="cpu", output_node=theirs, replace_existing=True)

    assert ours is not theirs and node_state(theirs) == before
    assert reference_of(ours) is b
    warning = next(w for w in logic.warnings if "was not changed" in w)
    assert "its reference geometry is another grid (36 x 20 x 20 voxels" in warning, warning
    assert "mm RAS), and this result is for volume 'patient B'; it was written" in warning
    assert np.count_nonzero(segment_mask(ours, "liver")) > 0
