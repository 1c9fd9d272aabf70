"""A NIfTI file whose sform and qform disagree, loaded by Slicer (adapter/input_checks.py): the
background job gets the node's voxels, not the file, so the Logic checks the header of the
file the node's storage node names, and the warning reaches ``check_inputs``, the job and the
in-process run, also when that run is then cancelled or refused. Other formats, unsaved
nodes and a file gone or broken since it was loaded: no warning, and the run goes on. Real
MRML (slicer-core), Slicer's own storage node reading the file, the real engine."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

from helpers import (  # noqa: E402
    load_with_storage_node,
    make_sphere_image,
    write_nifti_two_transforms,
)
from UNetPlusPlusLib.adapter import geometry  # noqa: E402
from UNetPlusPlusLib.adapter.logic import SegmentationLogic  # noqa: E402
from UNetPlusPlusLib.engine.image_read import volume_from_sitk  # noqa: E402
from UNetPlusPlusLib.errors import CancelledError  # noqa: E402

DISAGREE = "its NIfTI header holds two transforms that disagree"
THICK = "has very thick voxels"


@pytest.fixture(scope="module")
def logic():
    segmentation = SegmentationLogic(persistent=False)
    yield segmentation
    segmentation.shutdown()


def thick_ct() -> sitk.Image:
    """A 300 HU ball in 11 mm slices (the engine warns about the thick voxels too)."""
    return sitk.Cast(
        make_sphere_image((24, 24, 8), (2.0, 2.0, 11.0), radius_mm=9.0), sitk.sitkInt16
    )


def test_a_nifti_loaded_by_slicer_is_warned_in_every_path(logic, sphere_model, tmp_path):
    path = write_nifti_two_transforms(thick_ct(), tmp_path / "ct.nii.gz")
    scene = slicer.vtkMRMLScene()
    node = load_with_storage_node(scene, path, "CT")

    checked = logic.check_inputs([node], sphere_model)
    said = [w for w in checked if DISAGREE in w]
    assert len(said) == 1 and said[0].startswith(f"Volume 'CT' (from {path}): "), checked
    assert "uses the sform" in said[0]  # Slicer placed it with the sform, as ITK does

    job = logic.start_job([node], sphere_model, device="cpu")
    assert job.warnings == checked
    job.wait(timeout=120)
    assert job.state == "succeeded", job.error
    assert DISAGREE not in str(job.result["warnings"])  # the engine never saw the file
    # the panel's list: the Slicer side's first, the engine's copy of the thick voxels once
    assert job.run_warnings[0] == said[0]
    assert sum(THICK in w for w in job.run_warnings) == 1, job.run_warnings

    logic.segment([node], sphere_model, device="cpu")
    assert logic.warnings[0] == said[0]
    assert sum(THICK in w for w in logic.warnings) == 1, logic.warnings
    assert scene.GetNodesByClass("vtkMRMLSegmentationNode").GetNumberOfItems() == 2


def test_warnings_known_before_a_cancel_stay_in_the_logic(logic, sphere_model, tmp_path):
    path = write_nifti_two_transforms(thick_ct(), tmp_path / "ct.nii")
    scene = slicer.vtkMRMLScene()
    node = load_with_storage_node(scene, path, "CT")
    nodes_before = scene.GetNumberOfNodes()
    with pytest.raises(CancelledError):
        logic.segment([node], sphere_model, device="cpu", cancel=lambda: True)
    assert [DISAGREE in w for w in logic.warnings] == [True, False], logic.warnings
    assert THICK in logic.warnings[1]
    assert scene.GetNumberOfNodes() == nodes_before


def test_other_formats_unsaved_nodes_and_lost_files_say_nothing(logic, sphere_model, tmp_path):
    image = thick_ct()
    scene = slicer.vtkMRMLScene()
    sitk.WriteImage(image, str(tmp_path / "ct.nrrd"))
    nrrd = load_with_storage_node(scene, tmp_path / "ct.nrrd", "nrrd")
    consistent = tmp_path / "consistent.nii.gz"
    sitk.WriteImage(image, str(consistent))
    unsaved = geometry.volume_node_from_volume(scene, volume_from_sitk([image]), "unsaved")
    for node in (nrrd, load_with_storage_node(scene, consistent, "consistent"), unsaved):
        assert not any(DISAGREE in w for w in logic.check_inputs([node], sphere_model))

    gone = load_with_storage_node(
        scene, write_nifti_two_transforms(image, tmp_path / "gone.nii.gz"), "gone"
    )
    assert any(DISAGREE in w for w in logic.check_inputs([gone], sphere_model))
    (tmp_path / "gone.nii.gz").unlink()  # deleted after Slicer loaded it
    broken = load_with_storage_node(
        scene, write_nifti_two_transforms(image, tmp_path / "broken.nii.gz"), "broken"
    )
    (tmp_path / "broken.nii.gz").write_bytes(b"\x1f\x8b not a gzip stream")
    for node in (gone, broken):
        assert not any(DISAGREE in w for w in logic.check_inputs([node], sphere_model))
        result = logic.segment([node], sphere_model, device="cpu")  # the run goes on
        assert result.GetSegmentation().GetNumberOfSegments() == 1
        assert not any(DISAGREE in w for w in logic.warnings)


def test_the_check_follows_the_file_the_node_was_saved_to(logic, sphere_model, tmp_path):
    """Saved by Slicer to another file, the node is no longer "the broken NIfTI": the cached
    input checks are redone (the storage node's file is part of their key)."""
    scene = slicer.vtkMRMLScene()
    path = write_nifti_two_transforms(thick_ct(), tmp_path / "ct.nii.gz")
    node = load_with_storage_node(scene, path, "CT")
    job = logic.start_job([node], sphere_model, device="cpu")
    job.close()
    assert any(DISAGREE in w for w in job.warnings)
    storage = node.GetStorageNode()
    storage.SetFileName(str(tmp_path / "saved.nrrd"))
    assert storage.WriteData(node)
    job = logic.start_job([node], sphere_model, device="cpu")
    job.close()
    assert not any(DISAGREE in w for w in job.warnings)
    assert np.isfinite(geometry.world_ijk_to_ras(node)).all()


def write_pair_two_transforms(image: sitk.Image, header, magic: bytes = b"ni1\0"):
    """``image`` as a NIfTI-1 .hdr/.img pair (sform = qform, as ITK writes it), its qform then
    moved 40 mm along x (ITK keeps the sform); ``magic`` b"\\0" * 4 makes it ANALYZE 7.5."""
    import struct

    sitk.WriteImage(image, str(header))
    data = bytearray(header.read_bytes())
    data[268:272] = struct.pack("<f", struct.unpack("<f", data[268:272])[0] + 40.0)
    data[344:348] = magic
    header.write_bytes(bytes(data))
    return header


@pytest.mark.parametrize("loaded", [".hdr", ".img"])
def test_a_nifti_pair_loaded_from_either_half_is_warned(logic, sphere_model, tmp_path, loaded):
    header = write_pair_two_transforms(thick_ct(), tmp_path / "ct.hdr")
    path = header.with_suffix(loaded)
    scene = slicer.vtkMRMLScene()  # held: a node outside a scene has no storage node
    node = load_with_storage_node(scene, path, "CT")
    said = [w for w in logic.check_inputs([node], sphere_model) if DISAGREE in w]
    assert len(said) == 1 and said[0].startswith(f"Volume 'CT' (from {path}): "), said
    assert "uses the sform" in said[0]


def test_an_analyze_pair_or_a_pair_missing_its_header_says_nothing(logic, sphere_model, tmp_path):
    scene = slicer.vtkMRMLScene()
    analyze = write_pair_two_transforms(thick_ct(), tmp_path / "az.hdr", b"\0\0\0\0")
    node = load_with_storage_node(scene, analyze, "analyze")
    assert not any(DISAGREE in w for w in logic.check_inputs([node], sphere_model))
    pair = load_with_storage_node(
        scene, write_pair_two_transforms(thick_ct(), tmp_path / "ct.hdr"), "pair"
    )
    (tmp_path / "ct.hdr").unlink()  # deleted after Slicer loaded it: no header to read
    assert not any(DISAGREE in w for w in logic.check_inputs([pair], sphere_model))


def test_a_nifti_with_zero_slice_spacing_loaded_by_slicer_is_refused(logic, sphere_model, tmp_path):
    """Slicer's reader (ITK) reads a pixdim[3] of 0 as 1 mm; the engine never sees the file, so
    the Logic checks it (tester 20: 413 ml instead of 1032 ml from the CLI). A spacing set by
    hand in Slicer since passes."""
    import struct

    from UNetPlusPlusLib.errors import UNetPlusPlusError

    plain = tmp_path / "plain.nii"
    sitk.WriteImage(thick_ct(), str(plain))
    data = bytearray(plain.read_bytes())
    pixdim = list(struct.unpack_from("<8f", data, 76))
    pixdim[3] = 0.0
    struct.pack_into("<8f", data, 76, *pixdim)
    path = tmp_path / "zero.nii"
    path.write_bytes(bytes(data))
    scene = slicer.vtkMRMLScene()
    node = load_with_storage_node(scene, path, "CT")
    assert node.GetSpacing()[2] == 1.0  # what Slicer read
    with pytest.raises(UNetPlusPlusError, match=r"Volume 'CT' \(from .*zero.nii\) has no valid"):
        logic.check_inputs([node], sphere_model)
    node.SetSpacing(2.0, 2.0, 11.0)  # the user set the real spacing
    logic.check_inputs([node], sphere_model)
