"""A training label on another grid than its image: a finer one (a segmentation saved with
Slicer's oversampling) is one error naming both grids, never resampled or trained misaligned;
a label on the image's lattice that extends beyond the image keeps the voxels inside, exactly,
and says how many labelled voxels it left out (they were dropped silently). Tiny 24^3 cases."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import slicerio
from test_training_dataset import SPACING, _image, ball, write_slicer_case
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.training.cases import read_case
from UNetPlusPlusLib.training.dataset import find_cases
from UNetPlusPlusLib.training.dataset_slicer import describe_slicer_export


def test_a_segmentation_on_a_finer_grid_is_one_error(tmp_path):
    mask = write_slicer_case(tmp_path, "a", seed=1)
    fine = mask.repeat(2, 0).repeat(2, 1).repeat(2, 2)  # 2x oversampled, the same extent
    ijk_to_lps = np.diag([SPACING / 2] * 3 + [1.0])
    ijk_to_lps[:3, 3] = -SPACING / 4  # the fine voxels' centres tile the coarse voxels
    segmentation = slicerio.create_segmentation(fine.shape, ijk_to_lps)
    slicerio.add_segment(segmentation, fine.transpose(2, 1, 0), {"id": "S1", "name": "tumor"})
    slicerio.write_segmentation(str(tmp_path / "a.seg.nrrd"), segmentation)
    dataset = describe_slicer_export(tmp_path, labels=["tumor"], modality="CT")
    with pytest.raises(UNetPlusPlusError) as raised:
        read_case(find_cases(dataset)[0], dataset)
    message = str(raised.value)
    assert message.startswith("Case 'a': the geometry of the label a.seg.nrrd does not match")
    assert "label size (48, 48, 48), spacing (1, 1, 1)" in message
    assert "image size (24, 24, 24), spacing (2, 2, 2)" in message
    assert "export the segmentation with the image as its reference geometry" in message


def test_labelled_voxels_outside_the_image_are_left_out_with_a_warning(tmp_path):
    write_slicer_case(tmp_path, "a", seed=1)
    dataset = describe_slicer_export(tmp_path, labels=["tumor"], modality="CT")
    (tmp_path / "a.seg.nrrd").unlink()
    # the label grid starts 4 voxels before the image in x: its ball crosses the image's edge
    label = ball((6, 12, 12), 4.5)
    origin = (-4 * SPACING, 0.0, 0.0)
    sitk.WriteImage(_image(label.astype(np.uint8), origin=origin), str(tmp_path / "a-label.nrrd"))
    case = find_cases(dataset)[0]
    case.source.label_map["tumor"] = [1]
    data = read_case(case, dataset)
    expected = np.zeros_like(label)
    expected[:, :, :-4] = label[:, :, 4:]  # label x = 4.. is image x = 0..
    assert np.array_equal(data.labels == 1, expected)
    outside = int(label[:, :, :4].sum())
    assert outside > 0
    (said,) = [w for w in data.warnings if "outside its image" in w]
    assert said.startswith(f"Case 'a': {outside} labelled voxel(s) of a-label.nrrd lie outside")
