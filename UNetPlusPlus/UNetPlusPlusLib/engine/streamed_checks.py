"""Input sanity of whole image files, streamed slab by slab (for region-only reads).

``unetpp segment --roi`` reads only the ROI and one tile of context (:mod:`.region_read`), but
the input checks (:mod:`.sanity`) must judge the whole image: a ROI inside the liver holds no
air, and a CT without air is refused. Here each file is read in slabs of whole z slices
(SimpleITK ``ImageFileReader`` with ``SetExtractIndex`` / ``SetExtractSize``, which streams
NIfTI and MetaImage; NRRD is read whole once in its own pixel type, see WHOLE_READ_IOS), the
statistics the checks need are accumulated
(:class:`.sanity.ChannelStats`: minimum, maximum, the same strided sample as a whole-array
read; non-finite counts; which channels are identical), and the decisions are taken by the
one code path of :func:`.sanity.decide_intensities`. Peak memory is about one slab per channel
(NRRD: the file's voxels in their own type plus one float32 slab).

:func:`check_files` returns None for inputs it cannot stream (DICOM folders, other formats,
4D or vector files): the caller then reads the whole image, as without a ROI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
import SimpleITK as sitk

from ..errors import UNetPlusPlusError
from .bias_field import grid_steps
from .data_files import check_data_files
from .nifti_check import check_nifti, reader_geometry
from .orientation_check import fine_steps
from .sanity import (
    ChannelStats,
    cast_voxels,
    check_header,
    decide_intensities,
    nonfinite_error,
    sample_step,
)
from .volume import Grid, _geometry_differences

PathLike = Union[str, Path]

#: ITK image IOs whose readers stream a requested region (hold only the slab's voxels).
STREAMING_IOS = frozenset({"NiftiImageIO", "MetaImageIO"})
#: Read whole once in their own pixel type (an int16 CT: half the float32 volume), then judged
#: slab by slab: ITK's NRRD reader reads the whole file for every extract (a 30-slice extract
#: of a gzip 512x512x800 int16 .nrrd took 2.5-2.8 s and 567 MB peak; NIfTI 0.1-1.8 s, MetaImage
#: 0.1-4.6 s, both under 200 MB; measured 2026-11-30 on this machine, load ~4).
WHOLE_READ_IOS = frozenset({"NrrdImageIO"})
#: Voxels per slab (whole z slices; at least one slice): 8e6 float32 voxels are 32 MB.
SLAB_VOXELS = 8_000_000
#: At most this many slabs: each extract of a gzip file (.nii.gz) decompresses it from the
#: start, so n slabs cost about n/2 whole decompressions (512x512x800 int16 .nii.gz, 2 cores
#: under load: 11.9 s in 27 slabs, 5.1 s in 7; /tmp/roi_time.py, docs/BENCHMARK_E2E.md).
MAX_SLABS = 8


def _streamable_header(path: Path) -> Optional[sitk.ImageFileReader]:
    """The reader with the header read, or None when the file should be read whole."""
    if not path.is_file():
        return None
    reader = sitk.ImageFileReader()
    try:
        if reader.GetImageIOFromFileName(str(path)) not in STREAMING_IOS | WHOLE_READ_IOS:
            return None
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
    except RuntimeError:
        return None  # the whole-image read gives the user-facing error
    scalar = reader.GetNumberOfComponents() == 1 and "complex" not in str(
        sitk.GetPixelIDValueAsString(reader.GetPixelID())
    )
    if reader.GetDimension() != 3 or not scalar:
        return None
    if min(reader.GetSize()) == 0:
        return None
    return reader


class _Accumulator:
    """Streamed ChannelStats and non-finite count of one (z, y, x) channel, and its coarse
    grid (every ``steps`` (z, y, x) voxel, as ``bias_field.coarse_grid``) if ``steps``, and
    its view at ``fine`` strides (``orientation_check.fine_steps``) if ``fine``."""

    def __init__(
        self,
        size: int,
        steps: Optional[Sequence[int]] = None,
        fine: Optional[Sequence[int]] = None,
    ) -> None:
        self.steps, self.fine_steps = steps, fine
        self.grid: list[np.ndarray] = []
        self.fine: list[np.ndarray] = []
        self.step = sample_step(size)
        self.offset = 0
        self.low, self.high = np.inf, -np.inf
        self.samples: list[np.ndarray] = []
        self.nonfinite = 0

    def feed(self, slab: np.ndarray, z0: int = 0) -> None:
        if self.steps is not None:
            sz, sy, sx = self.steps
            self.grid.append(slab[(-z0) % sz :: sz, ::sy, ::sx].copy())
        if self.fine_steps is not None:
            sz, sy, sx = self.fine_steps
            self.fine.append(slab[(-z0) % sz :: sz, ::sy, ::sx].copy())
        flat = slab.reshape(-1)
        finite = np.isfinite(flat)
        self.nonfinite += int(flat.size - np.count_nonzero(finite))
        if self.nonfinite == 0:
            self.low = min(self.low, float(flat.min()))
            self.high = max(self.high, float(flat.max()))
        self.samples.append(flat[(-self.offset) % self.step :: self.step].copy())
        self.offset += flat.size

    def stats(self) -> ChannelStats:
        return ChannelStats(self.low, self.high, np.concatenate(self.samples))


def _slab_source(reader: sitk.ImageFileReader) -> Union[sitk.ImageFileReader, sitk.Image]:
    """The reader itself (streaming formats) or the whole image in its own pixel type."""
    if reader.GetImageIOFromFileName(reader.GetFileName()) in STREAMING_IOS:
        return reader
    try:
        image = sitk.ReadImage(reader.GetFileName())
    except RuntimeError as error:
        raise UNetPlusPlusError(
            f"Cannot read {reader.GetFileName()}: the file is truncated, corrupt or not a "
            "supported image."
        ) from error
    return image


def _read_slab(source, size_xyz, z0: int, z1: int) -> np.ndarray:
    """Slices z0..z1 (z, y, x) as float32, from a reader or a whole image (no copy of it)."""
    if isinstance(source, sitk.Image):
        return cast_voxels(sitk.GetArrayViewFromImage(source)[z0:z1])  # inf: refused
    reader = source
    reader.SetExtractIndex([0, 0, z0])
    reader.SetExtractSize([int(size_xyz[0]), int(size_xyz[1]), z1 - z0])
    try:
        image = reader.Execute()
    except RuntimeError as error:
        raise UNetPlusPlusError(
            f"Cannot read {reader.GetFileName()}: the file is truncated, corrupt or not a "
            "supported image."
        ) from error
    return cast_voxels(sitk.GetArrayViewFromImage(image))  # beyond float32: inf, refused


def check_files(
    paths: Sequence[PathLike],
    modalities: Sequence[str],
    channel_names: Sequence[str] = (),
    slab_voxels: int = SLAB_VOXELS,
    order_check: Optional[Callable[[list], list[str]]] = None,
    bias_check: Optional[Callable[[list, tuple], list[str]]] = None,
    ap_check: Optional[Callable[[np.ndarray, Grid], list[str]]] = None,
    ap_channel: int = 0,
) -> Optional[list[str]]:
    """Header, finite-value and intensity checks of whole files, one per channel; warnings.

    Gives the refusals and warnings of ``read_volume`` + ``sanity.check_volume`` on the same
    files without holding the image. ``order_check``: called with the channels' strided
    samples (the voxels of ``sanity.channel_samples``) after the other checks, e.g.
    ``sanity.check_model_samples`` (zero background, near duplicates, sequence order); its
    warnings are added. ``bias_check``: called with the channels' coarse grids
    (``bias_field.coarse_grid``) and the spacing (x, y, z) in mm, e.g. a partial
    ``bias_field.check_bias_field``; its warnings are added. ``ap_check``: called with channel
    ``ap_channel``'s voxels at ``orientation_check.fine_steps`` strides and the image's grid,
    e.g. a partial ``orientation_check.check_orientation_strided`` (a CT flipped front-back);
    its warnings come after the intensity ones, as in ``sanity.check_model_input``. Returns
    None when a file cannot be streamed (the caller reads it whole). Raises
    UNetPlusPlusError.
    """
    sources = [str(p) for p in paths]
    paths = [Path(p) for p in paths]
    readers = [_streamable_header(p) for p in paths]
    if not paths or any(r is None for r in readers):
        return None
    geometry = [reader_geometry(r) for r in readers]  # (spacing, direction) as ITK reads them
    for source, reader, (spacing, direction) in zip(sources, readers, geometry):
        # refusals, named by file, as read_volume; before a Grid could refuse them less clearly
        check_header(reader.GetSize(), spacing, reader.GetOrigin(), direction, source)
    grids = [Grid(r.GetSize(), s, r.GetOrigin(), d) for r, (s, d) in zip(readers, geometry)]
    for source, grid in zip(sources[1:], grids[1:]):
        problems = _geometry_differences(grid, grids[0])  # this file first
        if problems:
            raise UNetPlusPlusError(
                f"{source} does not share the geometry of {sources[0]} ({'; '.join(problems)}); "
                "resample it onto the first channel's grid first."
            )
    for path in paths:
        check_data_files(path)  # a header's missing or short data file (.mhd, .nhdr, .hdr)
        check_nifti(path)  # raw NaN and truncation: ITK's NIfTI reader turns NaN into 0
    size_xyz = readers[0].GetSize()
    warnings = check_header(
        size_xyz, grids[0].spacing, grids[0].origin, grids[0].direction, "The input volume"
    )
    steps = grid_steps(grids[0].spacing) if bias_check else None
    fine = (ap_channel, fine_steps(grids[0].spacing)) if ap_check else None
    stats, identical, nonfinite, coarse, strided = _stream(readers, slab_voxels, steps, fine)
    for source, count in zip(sources, nonfinite):
        if count:
            raise nonfinite_error(source, count)
    warnings += decide_intensities(stats, identical, channel_names, modalities)
    warnings += ap_check(strided, grids[0]) if ap_check else []
    del strided
    warnings += order_check([s.sample for s in stats]) if order_check else []
    return warnings + (bias_check(coarse, tuple(grids[0].spacing)) if bias_check else [])


def stream_statistics(
    paths: Sequence[PathLike], slab_voxels: int = SLAB_VOXELS
) -> tuple[list[ChannelStats], list[tuple[int, int]], list[int]]:
    """Per-channel statistics of whole files (same grid), streamed: (ChannelStats per
    channel, identical channel pairs (a, b), non-finite voxel count per channel).
    Raises UNetPlusPlusError when a file cannot be streamed."""
    readers = [_streamable_header(Path(p)) for p in paths]
    if any(r is None for r in readers):
        raise UNetPlusPlusError("These files cannot be read slab by slab; read them whole.")
    return _stream(readers, slab_voxels)[:3]


def _stream(
    readers: list,
    slab_voxels: int,
    steps: Optional[Sequence[int]] = None,
    fine: Optional[tuple[int, Sequence[int]]] = None,
):
    """(stats, identical pairs, non-finite counts, coarse grids, the view at fine strides of
    channel ``fine[0]`` or None) of the files, read slab by slab."""
    size_xyz = readers[0].GetSize()
    sources = [_slab_source(reader) for reader in readers]
    size = int(np.prod(size_xyz))
    accumulators = [
        _Accumulator(size, steps, fine[1] if fine and fine[0] == c else None)
        for c in range(len(readers))
    ]
    identical = {(a, b) for a in range(len(readers)) for b in range(a + 1, len(readers))}
    depth = max(1, slab_voxels // (size_xyz[0] * size_xyz[1]), -(-size_xyz[2] // MAX_SLABS))
    for z0 in range(0, size_xyz[2], depth):
        z1 = min(size_xyz[2], z0 + depth)
        slabs = [_read_slab(source, size_xyz, z0, z1) for source in sources]
        for accumulator, slab in zip(accumulators, slabs):
            accumulator.feed(slab, z0)
        identical = {(a, b) for a, b in identical if np.array_equal(slabs[a], slabs[b])}
        del slabs
    stats = [accumulator.stats() for accumulator in accumulators]
    coarse = [np.concatenate(a.grid) if a.grid else None for a in accumulators]
    strided = next((np.concatenate(a.fine) for a in accumulators if a.fine), None)
    return stats, sorted(identical), [a.nonfinite for a in accumulators], coarse, strided
