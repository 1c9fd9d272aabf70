"""Training refuses a case whose model grid cannot fit in memory, up front, naming the case and
writing nothing (training/grid_check.py), as inference does (engine/grid_memory.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from test_training_dataset import ball
from UNetPlusPlusLib.engine import grid_memory
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.training.cli import main
from UNetPlusPlusLib.training.dataset import find_cases
from UNetPlusPlusLib.training.dataset_json import load_dataset_json
from UNetPlusPlusLib.training.grid_check import case_grid, check_case_grids

TINY = [
    "--tile", "32", "32", "32", "--features", "4", "8", "16", "32", "64", "4",
    "--batch-size", "1", "--no-progress", "--threads", "1", "--no-augment",
]  # fmt: skip
MEMORY = 2**30  # the machine the tests pretend to run on (1 GiB)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def write_dataset(tmp_path: Path, spacings: dict) -> tuple[Path, Path]:
    """Cases of 24^3 voxels (a 60 HU ball in -800 HU), each with its header spacing (mm) in
    ``spacings`` {case: spacing}; image and label share it. Returns the root and dataset.json."""
    root = tmp_path / "data"
    (root / "image").mkdir(parents=True)
    (root / "label").mkdir()
    for i, (case, spacing) in enumerate(spacings.items()):
        image = np.random.default_rng(i).normal(-800, 20, (24, 24, 24))
        labels = ball((12, 12, 12), 5).astype(np.uint8)
        image[labels > 0] = 60
        for folder, array in (("image", image.astype(np.int16)), ("label", labels)):
            written = sitk.GetImageFromArray(array)
            written.SetSpacing((spacing,) * 3)
            sitk.WriteImage(written, str(root / folder / f"{case}.nii.gz"))
    description = {
        "name": "grids",
        "channels": [{"name": "CT", "modality": "CT"}],
        "labels": ["lesion"],
        "sources": [
            {
                "images": ["image/{case}.nii.gz"],
                "label": "label/{case}.nii.gz",
                "label_map": {"lesion": [1]},
            }
        ],
    }
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps(description))
    return root, path


def test_a_case_with_a_huge_grid_is_refused_before_anything_is_written(
    tmp_path, monkeypatch, capsys
):
    # c1: 24^3 voxels of 90 mm in a small file; at the planned spacing (4 mm: twice the median)
    # it becomes 519^3 voxels, 3.1 GiB or more
    root, description = write_dataset(tmp_path, {"c0": 2.0, "c1": 90.0, "c2": 2.0})
    assert (root / "image" / "c1.nii.gz").stat().st_size < 20_000
    monkeypatch.setattr(grid_memory, "physical_memory_bytes", lambda: MEMORY)
    out = tmp_path / "model"
    argv = [str(root), "--dataset-json", str(description), "-o", str(out), *TINY]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    line = err[0]
    assert line.startswith(
        "error: Dataset 'grids' has 1 problem(s); nothing was trained or written."
    )
    assert "(1) Case 'c1': At the model's spacing (" in line and "the input becomes" in line
    assert "more than this machine's 1 GiB" in line and "90 x 90 x 90 mm voxels" in line
    assert "crop the case to the region to train on, or leave it out" in line
    assert "c0" not in line and "c2" not in line
    assert not out.exists()  # no plan, cache, checkpoint or model


def test_every_case_too_large_is_named_and_the_others_pass(tmp_path):
    root, description = write_dataset(tmp_path, {"a": 2.0, "b": 2.0, "big1": 60.0, "big2": 80.0})
    dataset = load_dataset_json(description, root)
    cases = find_cases(dataset)
    small = [c for c in cases if not c.case_id.startswith("big")]
    check_case_grids(dataset, small, (2.0, 2.0, 2.0), memory_bytes=MEMORY)  # fits: no error
    with pytest.raises(UNetPlusPlusError) as raised:
        check_case_grids(dataset, cases, (2.0, 2.0, 2.0), memory_bytes=MEMORY)
    message = str(raised.value)
    assert "has 2 problem(s)" in message
    assert "(1) Case 'big1': " in message and "(2) Case 'big2': " in message
    # at the large cases' own spacing they fit: the grid, not the file, is what is judged
    check_case_grids(dataset, cases, (80.0, 80.0, 80.0), memory_bytes=MEMORY)


def test_the_grid_comes_from_the_header(tmp_path):
    root, _ = write_dataset(tmp_path, {"c0": 3.0})
    grid = case_grid(root / "image" / "c0.nii.gz")
    assert tuple(grid.size_xyz) == (24, 24, 24) and tuple(grid.spacing) == (3.0, 3.0, 3.0)
    with pytest.raises(UNetPlusPlusError, match="cannot read"):
        (tmp_path / "broken.nii.gz").write_bytes(b"not an image")
        case_grid(tmp_path / "broken.nii.gz")


def test_a_dicom_series_folder_has_its_series_grid(tmp_path):
    """A case whose image is a DICOM series folder (liver.json's example_ct_dicom) has the
    grid inference reads from it; ITK's file reader, which the header read uses, cannot open
    a folder (every dataset with such a case was refused as "cannot read")."""
    from test_dicom_series import write_series

    folder = tmp_path / "series"
    write_series(folder, "1.2.826.0.1.3680043.8.498.7001", 5, "ct", "P1")
    grid = case_grid(folder)
    assert tuple(grid.size_xyz) == (16, 16, 5)
    np.testing.assert_allclose(grid.spacing, (0.8, 0.8, 2.0))
