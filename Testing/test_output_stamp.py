"""The stamp that marks an unchanged engine output (output_stamp.py): every format the CLI
writes keeps its content for SimpleITK, slicerio and Slicer's own segmentation reader; a changed
byte, or the same image saved again by another writer, no longer passes."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image
from UNetPlusPlusLib.engine.manifest import LabelSpec
from UNetPlusPlusLib.engine.volume import LabelVolume, write_labelmap
from UNetPlusPlusLib.output_stamp import KEY, stamp_file, stamp_state
from UNetPlusPlusLib.segfile import read_seg_nrrd, write_seg_nrrd

IMAGE_FORMATS = ["x.nii.gz", "x.nii", "x.nrrd", "x.mha"]


def _labels() -> LabelVolume:
    array = np.zeros((6, 7, 8), np.uint8)
    array[2:4, 2:5, 3:6] = 1
    direction = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    spec = LabelSpec(value=1, name="liver", color=(0.8, 0.3, 0.2))
    return LabelVolume(array, (1.5, 2.0, 3.0), (4.0, -5.0, 6.0), direction, [spec])


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", IMAGE_FORMATS)
def test_a_stamped_labelmap_reads_the_same_and_a_changed_one_fails(tmp_path, name):
    path = tmp_path / name
    labels = _labels()
    write_labelmap(labels, path)
    before = sitk.ReadImage(str(path))
    assert stamp_state(path) == "none"  # SimpleITK alone writes no stamp

    stamp_file(path)

    assert stamp_state(path) == "valid"
    after = sitk.ReadImage(str(path))
    assert np.array_equal(sitk.GetArrayFromImage(after), labels.array)
    for getter in ("GetSpacing", "GetOrigin", "GetDirection"):
        assert getattr(after, getter)() == getattr(before, getter)()
    copy = tmp_path / ("changed-" + name)
    copy.write_bytes(path.read_bytes())
    _flip_last_byte(copy)  # the gzip size / the last voxel: a change the stamp must catch
    assert stamp_state(copy) == "changed"


@pytest.mark.parametrize("name", IMAGE_FORMATS)
def test_the_same_voxels_saved_again_by_simpleitk_carry_no_valid_stamp(tmp_path, name):
    """What a user's editor does: read, paint a voxel (or not), save under the same name.
    SimpleITK copies the stamp key (descrip, the NRRD/MHA key) into what it saves, so an
    edit must still fail: only a byte-identical file may pass."""
    path = tmp_path / name
    write_labelmap(_labels(), path)
    stamp_file(path)
    stamped = path.read_bytes()
    image = sitk.ReadImage(str(path))
    sitk.WriteImage(image, str(path), True)  # unchanged voxels: valid only if the same bytes
    assert (stamp_state(path) == "valid") == (path.read_bytes() == stamped)
    edited = sitk.GetArrayFromImage(image)
    edited[0, 0, 0] = 1
    again = sitk.GetImageFromArray(edited)
    again.CopyInformation(image)
    sitk.WriteImage(again, str(path), True)
    assert stamp_state(path) != "valid"


def test_nifti_stamps_sit_in_descrip_or_the_gzip_comment(tmp_path):
    plain, packed = tmp_path / "x.nii", tmp_path / "x.nii.gz"
    write_labelmap(_labels(), plain)
    write_labelmap(_labels(), packed)
    content = gzip.decompress(packed.read_bytes())
    stamp_file(plain)
    stamp_file(packed)
    descrip = sitk.ReadImage(str(plain)).GetMetaData("descrip")
    assert descrip.startswith("unetpp sha256:") and len(descrip) == 78  # fits its 80 bytes
    assert gzip.decompress(packed.read_bytes()) == content  # the comment is outside the data
    assert f"{KEY}=".encode() in packed.read_bytes()[:200]


def test_a_stamped_seg_nrrd_keeps_its_segments_for_slicerio(tmp_path):
    import slicerio

    path = tmp_path / "x.seg.nrrd"
    labels = _labels()
    write_seg_nrrd(labels, path)
    stamp_file(path)
    assert stamp_state(path) == "valid"
    header = path.read_bytes().split(b"\n\n", 1)[0].decode()
    assert f"\n{KEY}:=" in header
    raw = slicerio.read_segmentation(str(path))
    assert [s["name"] for s in raw["segments"]] == ["liver"]
    back = read_seg_nrrd(path)
    assert np.array_equal(back.array, labels.array) and back.grid.isclose(labels.grid)
    _flip_last_byte(path)
    assert stamp_state(path) == "changed"


def test_slicer_reads_a_stamped_seg_nrrd_and_its_save_drops_the_stamp(tmp_path):
    """Slicer's own reader (vtkMRMLSegmentationStorageNode, through ITK's NRRD reader, looks
    up only its Segment*/Segmentation_* keys): the stamp is ignored on load; a save from
    Slicer writes no stamp, so a rerun would refuse to replace that file."""
    slicer = pytest.importorskip("slicer")
    path, saved = tmp_path / "x.seg.nrrd", tmp_path / "saved.seg.nrrd"
    write_seg_nrrd(_labels(), path)
    stamp_file(path)
    scene = slicer.vtkMRMLScene()
    node = slicer.vtkMRMLSegmentationNode()
    scene.AddNode(node)
    storage = slicer.vtkMRMLSegmentationStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.ReadData(node)
    segmentation = node.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 1
    assert segmentation.GetNthSegment(0).GetName() == "liver"
    storage.SetFileName(str(saved))
    assert storage.WriteData(node)
    assert KEY.encode() not in saved.read_bytes()[:65536]
    assert stamp_state(saved) == "none"


def test_a_stamped_png_is_still_a_png(tmp_path):
    path = tmp_path / "x.png"
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3)).save(path)
    stamp_file(path)
    assert stamp_state(path) == "valid"
    with Image.open(path) as image:
        assert np.array_equal(np.asarray(image), np.arange(48).reshape(4, 4, 3))
        assert len(image.text[KEY]) == 64
    Image.open(path).convert("L").save(path)  # an image editor's save
    assert stamp_state(path) == "none"


def test_unknown_or_truncated_files_have_no_stamp(tmp_path):
    odd = tmp_path / "x.txt"
    odd.write_text("hello")
    assert stamp_state(odd) == "none"
    empty = tmp_path / "x.nii.gz"
    empty.write_bytes(b"")
    assert stamp_state(empty) == "none"
    with pytest.raises(ValueError):
        stamp_file(empty)


def test_a_stamped_json_record_is_still_json_and_an_edit_fails(tmp_path):
    """The run record beside a NIfTI output (run_record.py): the stamp is its first member."""
    import json

    path = tmp_path / "x.json"
    path.write_text(json.dumps({"image": "x.nii.gz", "unetpp_warnings": ["a"]}, indent=2) + "\n")
    assert stamp_state(path) == "none"
    stamp_file(path)
    assert stamp_state(path) == "valid"
    content = json.loads(path.read_text())
    assert list(content)[0] == KEY and content["unetpp_warnings"] == ["a"]
    text = path.read_text()
    path.write_text(text.replace('"a"', '"b"'))  # a warning changed by hand
    assert path.read_text() != text
    assert stamp_state(path) == "changed"
    one_line = tmp_path / "y.json"
    one_line.write_text('{"unetpp_warnings": []}')  # not the writer's layout: refused
    with pytest.raises(ValueError):
        stamp_file(one_line)
