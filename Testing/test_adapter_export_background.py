"""adapter/training_export + volume_file + export_job: the training export's images are written
off Slicer's main thread, as Slicer's volume writer wrote them.

Before, Slicer's vtkMRMLVolumeArchetypeStorageNode compressed and wrote each image on the main
thread (a 512x512x300 CT froze Slicer for seconds). Now the voxels and geometry are copied on
the main thread and SimpleITK writes them in a thread, releasing the GIL. Real MRML
(slicer-core), real files, real threads; events, not timing, tell who ran when.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

import vtk  # noqa: E402
from helpers import crop_in_index_space, rotation_matrix  # noqa: E402
from UNetPlusPlusLib.adapter import segmentation_writer, training_export  # noqa: E402
from UNetPlusPlusLib.adapter.export_job import ExportCancelled  # noqa: E402
from UNetPlusPlusLib.adapter.geometry import ijk_to_ras_from_geometry  # noqa: E402
from UNetPlusPlusLib.adapter.training_export import (  # noqa: E402
    export_training_case,
    start_training_export,
)
from UNetPlusPlusLib.engine.manifest import LabelSpec, standard_terminology  # noqa: E402
from UNetPlusPlusLib.engine.volume import LabelVolume  # noqa: E402
from UNetPlusPlusLib.errors import UNetPlusPlusError  # noqa: E402
from vtk.util import numpy_support  # noqa: E402

SPACING, ORIGIN = (0.7, 1.3, 2.9), (-12.5, 40.25, 7.0)
DIRECTION = rotation_matrix((25, -15, 40))  # oblique on every axis
SHAPE = (9, 11, 13)  # (z, y, x)
LABELS = [LabelSpec(1, "liver", (0.8, 0.4, 0.3), standard_terminology("liver"))]
WAIT = 120  # s: a safety net against a hang only; nothing is timed


def int16_node(scene, voxels: np.ndarray, name: str = "CT"):
    """A scalar volume node of int16 ``voxels`` (z, y, x) on the oblique grid (RAS matrix)."""
    nz, ny, nx = voxels.shape
    image = vtk.vtkImageData()
    image.SetDimensions(nx, ny, nz)
    image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(voxels.ravel(), deep=True))
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    node.SetAndObserveImageData(image)
    matrix = ijk_to_ras_from_geometry(SPACING, ORIGIN, DIRECTION)  # LPS geometry -> IJK-to-RAS
    vtk_matrix = vtk.vtkMatrix4x4()
    for row in range(4):
        for column in range(4):
            vtk_matrix.SetElement(row, column, matrix[row, column])
    node.SetIJKToRASMatrix(vtk_matrix)
    return node


def ramp() -> np.ndarray:
    return (np.arange(np.prod(SHAPE)).reshape(SHAPE) * 7 - 3000).astype(np.int16)


def labels_of(node):
    """A one-segment segmentation of ``node`` on its grid (a box)."""
    nx, ny, nz = node.GetImageData().GetDimensions()
    mask = np.zeros((nz, ny, nx), np.uint8)
    mask[1:4, 2:5, 2:6] = 1
    labels = LabelVolume(mask, SPACING, ORIGIN, DIRECTION, LABELS)
    return segmentation_writer.write_segments(labels, node, node_name=f"{node.GetName()} seg")


def header(path: Path) -> dict[str, str]:
    """The NRRD header fields of ``path`` (gzip data after it is not read)."""
    data = path.read_bytes()
    lines = data[: data.index(b"\n\n")].decode().splitlines()
    return dict(line.split(": ", 1) for line in lines if ": " in line and ":=" not in line)


def storage_node_file(node, path: Path) -> Path:
    """``node`` written as the export wrote it before: Slicer's volume storage node, gzip."""
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    storage.SetUseCompression(True)
    assert storage.WriteData(node)
    return path


@pytest.fixture()
def scene():
    scene = slicer.vtkMRMLScene()
    yield scene
    scene.Clear(1)


@pytest.mark.parametrize("cropped", [False, True], ids=["oblique", "oblique-extent-start"])
def test_the_image_file_is_the_one_slicers_volume_writer_wrote(scene, tmp_path, cropped):
    node = int16_node(scene, ramp())
    if cropped:  # an extent starting at (2, 1, 3): the file's origin is its first voxel
        node = crop_in_index_space(scene, node, (2, 10, 1, 8, 3, 7), "crop")
    before = storage_node_file(node, tmp_path / "slicer.nrrd")

    written = export_training_case([node], labels_of(node), tmp_path / "out", "case1")

    old, new = sitk.ReadImage(str(before)), sitk.ReadImage(str(written[0]))
    assert new.GetPixelID() == old.GetPixelID() == sitk.sitkInt16
    assert np.array_equal(sitk.GetArrayFromImage(new), sitk.GetArrayFromImage(old))
    assert np.allclose(new.GetOrigin(), old.GetOrigin(), rtol=0, atol=1e-6)
    assert np.allclose(new.GetSpacing(), old.GetSpacing(), rtol=0, atol=1e-6)
    assert np.allclose(new.GetDirection(), old.GetDirection(), rtol=0, atol=1e-6)
    assert not np.allclose(np.reshape(new.GetDirection(), (3, 3)), np.eye(3), atol=0.1)
    old_fields, new_fields = header(before), header(written[0])
    assert set(new_fields) == set(old_fields)  # the same fields: type, space, kinds, ...
    for field in ("type", "dimension", "space", "sizes", "kinds", "endian", "encoding"):
        assert new_fields[field] == old_fields[field], field


def test_the_images_are_written_in_a_thread_while_the_main_thread_runs(
    scene, tmp_path, monkeypatch
):
    """The thread is inside the image writer while this (main) thread checks the job, clears
    the scene (Slicer closing it) and only then lets the writer go on: the case is written
    whole from the voxels copied, with nothing of it in the folder before."""
    voxels = ramp()
    node = int16_node(scene, voxels)
    out = tmp_path / "out"
    writing, go_on = threading.Event(), threading.Event()
    real_write = training_export.write_volume_file
    writers = []

    def held(snapshot, path):
        writers.append(threading.current_thread())
        writing.set()
        assert go_on.wait(WAIT)
        return real_write(snapshot, path)

    monkeypatch.setattr(training_export, "write_volume_file", held)
    job = start_training_export([node], labels_of(node), out, "case1")
    assert writing.wait(WAIT)  # the writer is mid-write, and this thread runs on
    assert writers == [job._thread] and job._thread is not threading.current_thread()
    assert not job.finished and "writing case1.nrrd (1 of 1)" in job.stage
    assert not (out / "case1.nrrd").exists()  # staged in a hidden folder, not in place
    scene.Clear(1)  # the scene closed meanwhile: the thread holds no MRML
    go_on.set()

    written = job.result()
    assert [p.name for p in written] == ["case1.nrrd", "case1.seg.nrrd"]
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(written[0]))), voxels)
    assert sorted(p.name for p in out.iterdir()) == [
        "case1.export.json", "case1.nrrd", "case1.seg.nrrd"
    ]  # fmt: skip


def test_a_cancelled_export_writes_nothing(scene, tmp_path, monkeypatch):
    node = int16_node(scene, ramp())
    out = tmp_path / "new" / "cases"
    writing, go_on = threading.Event(), threading.Event()
    real_write = training_export.write_volume_file

    def held(snapshot, path):
        writing.set()
        assert go_on.wait(WAIT)
        return real_write(snapshot, path)

    monkeypatch.setattr(training_export, "write_volume_file", held)
    job = start_training_export([node], labels_of(node), out, "case1")
    assert writing.wait(WAIT)
    job.cancel()
    go_on.set()
    with pytest.raises(ExportCancelled, match="case 'case1' was cancelled; nothing was written"):
        job.result()
    assert os.listdir(tmp_path) == []  # not even the folders it made


def test_a_failure_in_the_thread_leaves_no_file_and_one_error(scene, tmp_path):
    """The labels (small) are written on the main thread, then the image (noise, ~100 kB
    gzipped) fails in the thread at a 12 kB file-size limit: one message, nothing left."""
    noise = np.random.default_rng(0).integers(-1000, 1000, (30, 40, 50), dtype=np.int16)
    node = int16_node(scene, noise)
    segmentation = labels_of(node)
    out = tmp_path / "cases"
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, not a killed process
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (12_000, hard))
    try:
        job = start_training_export([node], segmentation, out, "case1")
        with pytest.raises(UNetPlusPlusError) as raised:
            job.result()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    message = str(raised.value)
    assert message.startswith(f"Could not write {out / 'case1.nrrd'}: ")
    assert message.endswith("nothing was written.") and "\n" not in message
    assert os.listdir(tmp_path) == []
    written = export_training_case([node], segmentation, out, "case1")  # room again: whole
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(written[0]))), noise)


GIL_CHECK = textwrap.dedent(
    """
    import os, sys, threading
    import numpy as np
    from UNetPlusPlusLib.adapter.volume_file import VolumeSnapshot, write_volume_file

    fifo = sys.argv[1]
    os.mkfifo(fifo)
    voxels = np.random.default_rng(0).integers(-1000, 1000, (40, 128, 128), dtype=np.int16)
    snapshot = VolumeSnapshot(voxels, np.diag([0.7, 0.8, 2.5, 1.0]))
    result = []
    writer = threading.Thread(target=lambda: result.append(write_volume_file(snapshot, fifo)))
    writer.start()
    callbacks = 0
    with open(fifo, "rb") as pipe:  # the writer fills the pipe (64 kB), blocks, goes on...
        while pipe.read(4096):
            callbacks += writer.is_alive()  # Python on the main thread, mid-write
    writer.join()
    print(callbacks, result)
    """
)


def test_simpleitks_writer_lets_the_main_thread_run_mid_write(tmp_path, repo_root):
    """The image writer in a thread writes into a pipe that this process's main thread reads,
    running Python between reads: were the GIL held during the write, the writer would block
    on the full pipe holding it and the main thread could never read (a hang, caught by the
    subprocess's time limit)."""
    env = dict(os.environ, PYTHONPATH=str(repo_root / "UNetPlusPlus"))
    run = subprocess.run(
        [sys.executable, "-c", GIL_CHECK, str(tmp_path / "pipe.nrrd")],
        capture_output=True, text=True, timeout=WAIT, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    callbacks, result = run.stdout.split(maxsplit=1)
    assert result.strip() == "[True]"
    assert int(callbacks) > 10  # the main thread ran again and again while the writer wrote
