"""Synthetic images with known geometry for tests: a bright sphere at a physical (LPS) point."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

SPHERE_HU = 300.0
BACKGROUND_HU = 0.0


def rotation_matrix(angles_deg: Sequence[float]) -> np.ndarray:
    """Rotation about x, then y, then z (degrees): a non-trivial oblique direction."""
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def rotated_grid(image: sitk.Image, angles_deg: Sequence[float]) -> tuple:
    """(size, origin, spacing, direction) of a grid rotated by ``angles_deg`` (about x, y, z,
    :func:`rotation_matrix`) from ``image``'s axes, at its spacing, holding all of its voxels:
    ``sitk.Resample(image, *grid, ...)``'s arguments after the transform and interpolator."""
    direction = rotation_matrix(angles_deg) @ np.array(image.GetDirection()).reshape(3, 3)
    corners = np.stack(np.meshgrid(*[[-0.5, n - 0.5] for n in image.GetSize()]), -1)
    points = np.array(
        [image.TransformContinuousIndexToPhysicalPoint(c.tolist()) for c in corners.reshape(-1, 3)]
    )
    local = points @ direction
    spacing = np.array(image.GetSpacing())
    size = np.ceil((local.max(0) - local.min(0)) / spacing).astype(int) + 1
    origin = direction @ local.min(0)
    return [int(n) for n in size], origin.tolist(), spacing.tolist(), direction.ravel().tolist()


def physical_points(image: sitk.Image) -> np.ndarray:
    """LPS coordinates of every voxel centre, shaped (z, y, x, 3)."""
    size = image.GetSize()
    k, j, i = np.meshgrid(*(np.arange(n) for n in size[::-1]), indexing="ij")
    index = np.stack([i, j, k], axis=-1).astype(np.float64)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    spacing = np.array(image.GetSpacing())
    return np.array(image.GetOrigin()) + (index * spacing) @ direction.T


def make_sphere_image(
    size_xyz: Sequence[int] = (32, 32, 32),
    spacing: Sequence[float] = (2.0, 2.0, 2.0),
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    direction: np.ndarray | None = None,
    center_lps: Sequence[float] | None = None,
    radius_mm: float = 12.0,
    noise: float = 0.0,
    seed: int = 0,
) -> sitk.Image:
    """A CT-like image: a SPHERE_HU ball of `radius_mm` at `center_lps` on BACKGROUND_HU."""
    direction = np.eye(3) if direction is None else np.asarray(direction, dtype=float)
    image = sitk.Image([int(s) for s in size_xyz], sitk.sitkFloat32)
    image.SetSpacing([float(s) for s in spacing])
    image.SetOrigin([float(o) for o in origin])
    image.SetDirection(direction.flatten().tolist())
    if center_lps is None:
        centre_index = [(s - 1) / 2 for s in size_xyz]
        center_lps = image.TransformContinuousIndexToPhysicalPoint(centre_index)
    mask = sphere_mask(image, center_lps, radius_mm)
    array = np.where(mask, SPHERE_HU, BACKGROUND_HU).astype(np.float32)
    if noise:
        array += np.random.default_rng(seed).normal(0, noise, array.shape).astype(np.float32)
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(image)
    return out


def sphere_mask(image: sitk.Image, center_lps: Sequence[float], radius_mm: float) -> np.ndarray:
    """Boolean (z, y, x) mask of voxels whose centres lie inside the sphere."""
    distance = np.linalg.norm(physical_points(image) - np.asarray(center_lps), axis=-1)
    return distance <= radius_mm


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2.0 * np.logical_and(a, b).sum() / total)


def logic_warnings_both_ways(logic, nodes, manifest, **options) -> tuple[list[str], str]:
    """Run the Slicer Logic in this process (``segment``) and as a background job
    (``start_job``, waited on), both with ``options``; returns the in-process run's
    ``logic.warnings`` and the panel's warning text of the job's result (asserting it
    succeeded): a warning must reach the user both ways."""
    from UNetPlusPlusLib.adapter.panel import warnings_text

    logic.segment(nodes, manifest, **options)
    in_process = list(logic.warnings)
    job = logic.start_job(nodes, manifest, **options)
    try:
        job.wait(timeout=120)
    finally:
        job.cancel()
    assert job.state == "succeeded", job.result
    return in_process, warnings_text(job.result)


def write_nifti_two_transforms(image: sitk.Image, path, qform_shift_mm: float = 40.0):
    """``image`` written as NIfTI-1 (``.nii`` or gzipped ``.nii.gz``) as ITK writes it (sform
    and qform both coded 1), then its qform moved ``qform_shift_mm`` along x: ITK (3D Slicer)
    still places it with the sform, where ``image`` is; the two transforms disagree."""
    import gzip
    import struct
    from pathlib import Path

    path = Path(path)
    plain = path.with_name(path.name.removesuffix(".gz"))
    sitk.WriteImage(image, str(plain))
    data = bytearray(plain.read_bytes())
    qoffset_x = struct.unpack("<f", data[268:272])[0]
    data[268:272] = struct.pack("<f", qoffset_x + qform_shift_mm)
    if path != plain:
        plain.unlink()
        path.write_bytes(gzip.compress(bytes(data)))
    else:
        path.write_bytes(bytes(data))
    return path


def load_with_storage_node(scene, path, name: str):
    """A scalar volume node read from ``path`` by Slicer's own volume storage node (ITK), which
    stays the node's storage node, as when Slicer loads a file (Volumes module logic)."""
    import slicer

    node = slicer.vtkMRMLScalarVolumeNode()
    node.SetName(name)
    scene.AddNode(node)
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    node.SetAndObserveStorageNodeID(storage.GetID())
    assert storage.ReadData(node), path
    return node


def serve_over_pipe(lines: Sequence[dict], cwd=None, timeout_s: float = 180) -> tuple[list, str]:
    """Send ``lines`` (request objects) to a fresh ``unetpp serve`` over its stdin, one JSON line
    each, and return (its replies after the ``ready`` line, its stderr); asserts that it exited 0
    when its input ended and that its first reply was ``ready``."""
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "UNetPlusPlusLib.cli", "serve"],
        input="".join(json.dumps(line) + "\n" for line in lines),
        capture_output=True, text=True, timeout=timeout_s, cwd=cwd,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    replies = [json.loads(line) for line in out.stdout.splitlines()]  # stdout: protocol only
    assert replies[0]["ready"] is True
    return replies[1:], out.stderr


def sphere_model_copy(sphere_model, folder, spacing_mm: float = 2.0, **inference) -> Path:
    """A copy of the sphere test model in ``folder`` (its model.json and weights) whose voxels
    are ``spacing_mm`` on each side and whose ``inference`` keys are updated with ``inference``;
    returns the new model.json. At 4 mm the model grid has 8x fewer voxels than at the fixture's
    2 mm: for the tests of input and result checks, where the segmentation is not what is
    tested."""
    import json
    import shutil

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("model.json", "weights.safetensors"):
        shutil.copy(Path(sphere_model).parent / name, folder / name)
    data = json.loads((folder / "model.json").read_text())
    data["spacing"] = [float(spacing_mm)] * 3
    data.setdefault("inference", {}).update(inference)
    (folder / "model.json").write_text(json.dumps(data))
    return folder / "model.json"


def write_ball_ct(path, origin=None):
    """A 300 HU ball of radius 10 mm in a 48 x 40 x 40 mm CT-like int16 volume (2 mm voxels)
    written to ``path`` (its folder made if missing), at ``origin`` (x, y, z mm) when given;
    returns ``path`` as a Path. The input of the CLI tests."""
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = make_sphere_image((24, 20, 20), spacing=(2.0, 2.0, 2.0), radius_mm=10, noise=5)
    if origin is not None:
        image.SetOrigin(tuple(float(v) for v in origin))
    sitk.WriteImage(sitk.Cast(image, sitk.sitkInt16), str(path))
    return path


def one_error_line(capsys) -> str:
    """The one ``error: ...`` line a CLI run printed on stderr (asserts it is the only line)."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def crop_in_index_space(scene, whole_node, extent: Sequence[int], name: str):
    """A voxel-based crop of ``whole_node`` to ``extent`` ((i0, i1, j0, j1, k0, k1)) kept in
    its index space, as vtkSlicerCropVolumeLogic::CropVoxelBased makes it without its last step
    (ShiftImageDataExtentToZeroStart): the input's IJK-to-RAS matrix, an extent that starts at
    (i0, j0, k0). A new scalar volume node named ``name`` in ``scene``."""
    import vtk

    pad = vtk.vtkImageConstantPad()
    pad.SetInputData(whole_node.GetImageData())
    pad.SetOutputWholeExtent(*extent)
    pad.Update()
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    matrix = vtk.vtkMatrix4x4()
    whole_node.GetIJKToRASMatrix(matrix)
    node.SetAndObserveImageData(pad.GetOutput())
    node.SetIJKToRASMatrix(matrix)
    assert node.GetImageData().GetExtent() == tuple(extent)
    return node
