"""An output segmentation deleted (or its scene closed) while a background run goes on
(adapter/logic.py ``write_result``, which the job calls when the run succeeds): on real MRML
(slicer-core), no model run (cheap).

Before, the result was written into the removed node: segments in no scene, and the panel said
"Segments written to '...'" while nothing showed. Now it goes into a new segmentation in the
volume's scene, with a warning that names both.
"""

from __future__ import annotations

import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

from test_adapter_output_owner import reference_of  # noqa: E402
from test_adapter_user_geometry import chest, labels_on  # noqa: E402
from UNetPlusPlusLib.adapter.logic import SegmentationLogic  # noqa: E402
from UNetPlusPlusLib.adapter.segmentation_writer import (  # noqa: E402
    new_segmentation_node,
    segment_names,
)
from UNetPlusPlusLib.engine.manifest import ModelManifest  # noqa: E402


def test_a_result_for_an_output_removed_during_the_run_goes_to_a_new_node(sphere_model):
    manifest = ModelManifest.load(sphere_model)
    scene = slicer.vtkMRMLScene()
    whole, volume = chest(scene)
    chosen = new_segmentation_node(scene, volume, "my segmentation")  # chosen at start
    scene.RemoveNode(chosen)  # deleted by the user while the run goes on

    warnings: list = []
    written = SegmentationLogic().write_result(
        labels_on(whole, manifest.labels), [volume], manifest, chosen, False, warnings
    )
    assert written is not chosen and written.GetScene() is scene
    assert reference_of(written) is volume and segment_names(written) == ["liver"]
    assert chosen.GetSegmentation().GetNumberOfSegments() == 0  # nothing went into it
    assert warnings == [
        "Output segmentation 'my segmentation' was removed from the scene during the run; the "
        f"result was written to a new segmentation, '{written.GetName()}'."
    ]
