"""adapter/case_files + training_export: a training case is exported whole or not at all, on
real MRML (slicer-core). The writes fail for real: ``RLIMIT_FSIZE`` (``ulimit -f``) makes the
kernel stop a write past the limit, as a full disk does, so the first (small) file is written
and the second (larger) one fails inside Slicer's own writer."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

resource = pytest.importorskip("resource")  # RLIMIT_FSIZE: POSIX
slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

from UNetPlusPlusLib.adapter import geometry, segmentation_writer  # noqa: E402
from UNetPlusPlusLib.adapter.case_files import CaseFiles  # noqa: E402
from UNetPlusPlusLib.adapter.training_export import export_training_case  # noqa: E402
from UNetPlusPlusLib.engine.manifest import LabelSpec, standard_terminology  # noqa: E402
from UNetPlusPlusLib.engine.volume import LabelVolume, Volume  # noqa: E402
from UNetPlusPlusLib.errors import UNetPlusPlusError  # noqa: E402

LABELS = [LabelSpec(1, "liver", (0.8, 0.4, 0.3), standard_terminology("liver"))]
GRID = ((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
SHAPE = (24, 24, 24)


@pytest.fixture()
def scene():
    scene = slicer.vtkMRMLScene()
    yield scene
    scene.Clear(1)


def _volume(scene, voxels: np.ndarray, name: str):
    return geometry.volume_node_from_volume(scene, Volume(voxels[None], *GRID), name)


def _segmentation(volume, mask: np.ndarray):
    labels = LabelVolume(mask, *GRID, LABELS)
    return segmentation_writer.write_segments(labels, volume, node_name="seg")


def _noise(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=SHAPE).astype(np.float32)  # ~50 kB gzipped


def _export_limited(limit: int, *args, **kwargs):
    """export_training_case(*args, **kwargs) with files limited to ``limit`` bytes."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        return export_training_case(*args, **kwargs)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def _listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_the_second_channel_failing_leaves_no_file_of_the_case(scene, tmp_path):
    """The first channel (zeros: a few hundred bytes) was written, the second (noise) failed,
    and case1_a.nrrd stayed, with a truncated case1_b.nrrd and Slicer's TempWritecase1_b/."""
    first, second = _volume(scene, np.zeros(SHAPE, np.float32), "a"), _volume(scene, _noise(), "b")
    mask = np.zeros(SHAPE, np.uint8)
    mask[4:9, 4:9, 4:9] = 1
    out = tmp_path / "new" / "cases"
    with pytest.raises(UNetPlusPlusError) as raised:
        _export_limited(8000, [first, second], _segmentation(first, mask), out, "case1")
    assert os.listdir(tmp_path) == []  # not even the folders it created
    assert str(raised.value).startswith(f"Could not write {out / 'case1_b.nrrd'}: ")
    assert str(raised.value).endswith("nothing was written.")


def test_labels_failing_leave_the_folder_as_it_was(scene, tmp_path):
    """The image (zeros) was written, the labels (a noisy mask, ~3 kB) were cut at the limit and
    Slicer's segmentation writer said nothing: the truncated case1.seg.nrrd and the record
    were kept as a valid case."""
    volume = _volume(scene, np.zeros(SHAPE, np.float32), "CT")
    noisy = (np.random.default_rng(1).random(SHAPE) < 0.5).astype(np.uint8)
    segmentation = _segmentation(volume, noisy)
    out = tmp_path / "cases"
    out.mkdir()
    (out / "case0.nrrd").write_bytes(b"another case")
    before = _listing(out)
    with pytest.raises(UNetPlusPlusError, match=r"case1\.seg\.nrrd: .*nothing was written\.$"):
        _export_limited(1500, [volume], segmentation, out, "case1")
    assert _listing(out) == before and sorted(os.listdir(out)) == ["case0.nrrd"]
    written = export_training_case([volume], segmentation, out, "case1")  # room again: whole
    assert [p.name for p in written] == ["case1.nrrd", "case1.seg.nrrd"]
    names = ["case0.nrrd", "case1.export.json", *[p.name for p in written]]
    assert sorted(os.listdir(out)) == names


def test_a_failed_overwrite_keeps_the_old_case_byte_for_byte(scene, tmp_path):
    volume = _volume(scene, np.zeros(SHAPE, np.float32), "CT")
    mask = np.zeros(SHAPE, np.uint8)
    mask[2:6, 2:6, 2:6] = 1
    export_training_case([volume], _segmentation(volume, mask), tmp_path, "case1")
    before = _listing(tmp_path)
    other = _volume(scene, _noise(2), "CT")  # another image under the same case name
    with pytest.raises(UNetPlusPlusError) as raised:
        segmentation = _segmentation(other, mask)
        _export_limited(8000, [other], segmentation, tmp_path, "case1", overwrite=True)
    assert _listing(tmp_path) == before  # not the new image beside the old labels
    assert f"{tmp_path / 'case1.nrrd'}: " in str(raised.value)


def test_a_rename_that_fails_puts_back_what_the_commit_replaced(tmp_path):
    (tmp_path / "a.json").write_text("old a")
    with pytest.raises(UNetPlusPlusError, match=r"b\.json: .*nothing was written"):
        with CaseFiles(tmp_path) as files:
            files.write(tmp_path / "a.json", lambda p: p.write_text("new a"))
            files.write(tmp_path / "b.json", lambda p: p.write_text("new b"))
            (tmp_path / "b.json").mkdir()  # in the way of the second rename
            (tmp_path / "b.json" / "x").touch()
            files.commit()
    assert (tmp_path / "a.json").read_text() == "old a"
    assert sorted(os.listdir(tmp_path)) == ["a.json", "b.json"]  # no staging folder left
