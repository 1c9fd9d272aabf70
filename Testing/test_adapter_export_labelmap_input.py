"""A labelmap volume node (vtkMRMLLabelMapVolumeNode: label values) given as a channel's image
to the training export is refused, naming the node and its channel, before anything is written:
segmentation runs refuse it (adapter/panel.py ``channel_input_problem``), but the export wrote
its label values as the case's image, a case training would learn from as if it were a CT.
Real MRML (slicer-core), the oblique 6 x 7 x 8 case of test_adapter_training_export; the
folder is not created and the scene is untouched."""

from __future__ import annotations

import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

import test_adapter_training_export as base  # noqa: E402
from test_adapter_labelmap_input import labelmap_of  # noqa: E402
from test_adapter_logic import scene_state  # noqa: E402
from test_adapter_point_prechecks import node_times  # noqa: E402
from UNetPlusPlusLib.adapter.logic import SegmentationLogic  # noqa: E402
from UNetPlusPlusLib.adapter.training_export import export_training_case  # noqa: E402
from UNetPlusPlusLib.errors import UNetPlusPlusError  # noqa: E402

case = base.case  # the fixture: a CT ramp node (oblique) and its one-segment segmentation


def _refusal(node: str, channel: str) -> str:
    return (
        f"Volume '{node}' chosen for {channel} is a labelmap (label values, not an image the "
        f"model can read); choose the image volume for {channel}."
    )


def test_a_labelmap_as_a_channel_is_refused_naming_it_and_nothing_is_written(case, tmp_path):
    scene, volume, segmentation, _, _ = case
    labels = labelmap_of(scene, volume, "CT-label")
    out = tmp_path / "dataset"
    before, times = scene_state(scene), node_times(scene)
    attempts = [
        (lambda: export_training_case([labels], segmentation, out, "case1", ["CT"]), "CT"),
        (
            lambda: SegmentationLogic.export_training_case(
                [volume, labels], segmentation, out, "case1", ["T1", "FLAIR"]
            ),
            "FLAIR",
        ),
        (lambda: export_training_case([labels], segmentation, out, "case1"), "channel 1"),
        (lambda: export_training_case([volume, labels], segmentation, out, "c"), "channel 2"),
    ]
    for action, channel in attempts:
        with pytest.raises(UNetPlusPlusError) as refused:
            action()
        assert str(refused.value) == _refusal("CT-label", channel)
    assert not out.exists()
    assert scene_state(scene) == before and node_times(scene) == times

    written = export_training_case([volume], segmentation, out, "case1", ["CT"])  # the image
    assert [p.name for p in written] == ["case1.nrrd", "case1.seg.nrrd"]
