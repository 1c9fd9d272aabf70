"""Read only the part of an image that a ROI or point needs, before any resampling.

With ``--roi`` or ``--point`` the predictor infers on a box around them (``Predictor.
context_box``: the ROI widened to one tile of context, or the prompt box). Reading the whole
image first made the peak memory that of the whole image: 3.8 GB for a 512x512x800 CT with and
without a ROI (issue 9; docs/BENCHMARK_E2E.md, "Memory with a ROI"). Here each file's header is read
first, the box is mapped to voxel indices on its grid, and SimpleITK's ``ImageFileReader`` reads
only that extract (``SetExtractIndex`` / ``SetExtractSize``). The crop keeps the image's exact
geometry: same spacing and direction, origin at the first voxel of the extract.

Channels whose normalisation needs the whole image's statistics (MR z-score, see
``normalize.with_volume_statistics``) are read whole once, one at a time, for their mean and
standard deviation, then cropped. DICOM folders are read whole, then cropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import SimpleITK as sitk

from ..errors import UNetPlusPlusError
from .data_files import check_data_files
from .image_read import read_image
from .mr_outliers import channel_warning
from .nifti_check import check_nifti_complete, reader_geometry
from .normalize import _normalization_entry, needs_volume_statistics, volume_statistics
from .sanity import cast_voxels
from .volume import Box, Grid, Volume, _geometry_differences, box_to_index_slices

PathLike = Union[str, Path]


def header_grid(path: Path) -> Grid:
    """The grid (LPS) of an image file from its header alone, as the whole-image reading gives
    it. Raises UNetPlusPlusError for an unreadable header or an image that is not 3D scalar."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise UNetPlusPlusError(f"Cannot read the header of {path}: {error}") from error
    if reader.GetDimension() != 3 or reader.GetNumberOfComponents() != 1:
        raise UNetPlusPlusError(f"{path} is not a 3D single-component image.")
    spacing, direction = reader_geometry(reader)  # as the whole-image reading gives them
    return Grid(reader.GetSize(), spacing, reader.GetOrigin(), direction)


def _read_extract(
    path: Path, slices: tuple[slice, slice, slice], raw_checked: bool = False
) -> np.ndarray:
    """The (z, y, x) voxels of ``slices`` from the file, as float32; ``raw_checked``: the
    NIfTI raw-byte check (:mod:`.nifti_check`) already ran on this file."""
    if not raw_checked:
        check_data_files(path)
        check_nifti_complete(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.SetExtractIndex([int(s.start) for s in reversed(slices)])
    reader.SetExtractSize([int(s.stop - s.start) for s in reversed(slices)])
    try:
        image = reader.Execute()
    except RuntimeError as error:
        raise UNetPlusPlusError(
            f"Cannot read {path}: the file is truncated, corrupt or not a supported image."
        ) from error
    return cast_voxels(sitk.GetArrayViewFromImage(image))  # beyond float32: inf, refused


def read_region(
    paths: Sequence[PathLike],
    box: Box,
    channel_names: Sequence[str] = (),
    normalizations: Sequence[Any] = (),
    raw_checked: bool = False,
    warnings: Optional[list[str]] = None,
) -> tuple[Volume, Grid, list[dict]]:
    """Read the voxels of ``paths`` (one file per channel) meeting the physical ``box``.

    Returns the crop (C, z, y, x float32), the full images' grid, and the normalisation
    entries with the whole images' MR statistics filled in. Raises UNetPlusPlusError when a
    file cannot be read, the channels differ in geometry, a value is not finite, or the box
    misses the image. ``raw_checked``: the files' NIfTI raw bytes were already checked
    (``streamed_checks.check_files``), so they are not decompressed once more for it.
    ``warnings``: when given, each MR channel read whole for its statistics is also checked
    for extreme voxels (:func:`.mr_outliers.channel_warning`), its warning appended.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise UNetPlusPlusError("No input image was given.")
    grids = [None if p.is_dir() else header_grid(p) for p in paths]
    full = grids[0] if grids[0] is not None else None
    specs = [dict(_normalization_entry(n)) for n in normalizations] or [{} for _ in paths]
    channels: list[np.ndarray] = []
    for c, path in enumerate(paths):
        if not path.exists():
            raise UNetPlusPlusError(f"Image not found: {path}.")
        spec = specs[c] if c < len(specs) else {}
        if grids[c] is None or needs_volume_statistics(spec):  # read whole: DICOM, MR statistics
            image = read_image(path)
            grid = Grid.from_sitk(image)
            array = sitk.GetArrayViewFromImage(image)
            if needs_volume_statistics(spec):
                spec.update(volume_statistics(array))
                if warnings is not None:
                    name = channel_names[c] if c < len(channel_names) else path.name
                    warning = channel_warning(name, array)
                    warnings += [warning] if warning else []
        else:
            grid, image, array = grids[c], None, None
        if full is None:
            full = grid
        problems = _geometry_differences(grid, full)  # this file first
        if problems:
            raise UNetPlusPlusError(
                f"{path} does not share the geometry of {paths[0]} ({'; '.join(problems)}); "
                "resample it onto the first channel's grid first."
            )
        slices = box_to_index_slices(full, box)
        if array is not None:
            crop = cast_voxels(array[slices])  # beyond float32: inf, refused just below
            del image, array
        else:
            crop = _read_extract(path, slices, raw_checked)
        if not np.isfinite(crop).all():
            raise UNetPlusPlusError(f"{path} contains NaN or infinite voxels.")
        channels.append(crop)
    start_xyz = [s.start for s in reversed(slices)]
    volume = Volume(
        np.stack(channels),
        full.spacing,
        tuple(full.index_to_physical(start_xyz)),
        full.direction.copy(),
        tuple(channel_names),
    )
    return volume, full, specs
