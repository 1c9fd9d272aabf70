"""A second click on one CT does not check the whole CT again (issue 14): start_job runs the
input sanity checks only when the voxels, geometry or model changed."""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

from helpers import make_sphere_image  # noqa: E402
from UNetPlusPlusLib.adapter import geometry, logic  # noqa: E402
from UNetPlusPlusLib.engine import sanity  # noqa: E402
from UNetPlusPlusLib.engine.image_read import volume_from_sitk  # noqa: E402


def test_sanity_checks_run_again_only_when_the_input_changed(sphere_model, monkeypatch):
    from slicer.util import arrayFromVolume, arrayFromVolumeModified

    image = make_sphere_image((20, 20, 16), (2.0, 2.0, 2.5), (0.0, 0.0, 0.0), np.eye(3), 8.0)
    scene = slicer.vtkMRMLScene()
    node = geometry.volume_node_from_volume(scene, volume_from_sitk([image]), "CT")
    copies = []  # runs of the checks over the whole volume
    original = sanity.check_channels

    def counting(*args, **kwargs):
        copies.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(sanity, "check_channels", counting)
    segmentation = logic.SegmentationLogic()
    try:
        for _ in range(2):
            segmentation.start_job([node], sphere_model, device="cpu", persistent=False).close()
        assert len(copies) == 1  # the second click reused the first one's checks
        node.GetImageData().Modified()  # no voxel changed: the same input (voxel_version.py)
        segmentation.start_job([node], sphere_model, device="cpu", persistent=False).close()
        assert len(copies) == 1
        arrayFromVolume(node)[2, 3, 4] += 5  # a voxel edit
        arrayFromVolumeModified(node)
        segmentation.start_job([node], sphere_model, device="cpu", persistent=False).close()
        assert len(copies) == 2
        node.SetSpacing(2.0, 2.0, 3.0)  # new geometry
        segmentation.start_job([node], sphere_model, device="cpu", persistent=False).close()
        assert len(copies) == 3
        assert segmentation.warnings == segmentation.check_inputs([node], sphere_model)
    finally:
        segmentation.shutdown()
