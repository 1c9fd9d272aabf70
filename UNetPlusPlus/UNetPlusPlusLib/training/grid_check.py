"""Refuse, before preprocessing, a training case whose model grid cannot fit in memory.

Preprocessing resamples every case onto the model's spacing (``preprocess.preprocess_case``),
as inference does. A header whose spacing is far too large (50 mm voxels in a small file) makes
that grid billions of voxels: inference refuses such an input up front
(``engine/grid_memory.py``), and training now does the same for each case, with the planned
spacing known and before the preprocessing cache, the checkpoint or the model is written.
The case is read from its header only (the first channel: the channels share one grid).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import SimpleITK as sitk

from ..engine.grid_memory import check_model_grid_fits
from ..engine.nifti_check import reader_geometry
from ..engine.volume import Grid, canonical_grid
from ..errors import UNetPlusPlusError
from .dataset_types import CaseFiles, DatasetDescription

#: What to do with a case that is really that large.
REMEDY = "crop the case to the region to train on, or leave it out"


def case_grid(path: Path) -> Grid:
    """The voxel grid of an image file from its header; the whole image is read only where
    the header alone does not give a 3D grid (a 4D file with one frame) and for a DICOM
    series folder (as inference reads it: engine/dicom.py). Raises UNetPlusPlusError for an
    unreadable file."""
    if Path(path).is_dir():  # a DICOM series (liver.json's example_ct_dicom): ITK's file
        from ..engine.image_read import read_volume  # reader cannot open a folder

        return read_volume([path]).grid
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise UNetPlusPlusError(
            f"cannot read {path} (truncated, corrupt or not a supported image)."
        ) from error
    if reader.GetDimension() == 3:
        spacing, direction = reader_geometry(reader)
        return Grid(reader.GetSize(), spacing, reader.GetOrigin(), direction)
    from ..engine.image_read import read_volume

    return read_volume([path]).grid


def check_case_grids(
    dataset: DatasetDescription,
    cases: Sequence[CaseFiles],
    spacing_xyz: Sequence[float],
    memory_bytes: Optional[int] = None,
) -> None:
    """Refuse the cases whose grid at the model's ``spacing_xyz`` (mm) cannot fit in memory.

    The bound is inference's (``grid_memory.model_grid_bytes``: the dataset's channels twice
    and one float32 array per class, background included, plus one), so a case the trained
    model could not segment on this machine is not trained on either. ``memory_bytes``: as
    for :func:`check_model_grid_fits` (default: the physical memory). Raises one
    UNetPlusPlusError naming every such case, in the dataset check's form.
    """
    problems = []
    channels, classes = len(dataset.channels), len(dataset.labels) + 1
    for case in cases:
        try:
            grid = case_grid(case.images[0])
            model_grid = canonical_grid(grid, spacing_xyz)
            check_model_grid_fits(model_grid, grid, channels, classes, memory_bytes, REMEDY)
        except UNetPlusPlusError as error:
            problems.append(f"Case '{case.case_id}': {error}")
    if problems:
        listed = "; ".join(f"({i}) {p.rstrip('.')}" for i, p in enumerate(problems, start=1))
        raise UNetPlusPlusError(
            f"Dataset '{dataset.name}' has {len(problems)} problem(s); nothing was trained or "
            f"written. {listed}."
        )
