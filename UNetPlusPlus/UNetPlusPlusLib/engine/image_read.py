"""Reading images into engine types: files (NRRD, NIfTI, MetaImage, DICOM) and DICOM folders.

DICOM folders are read by :mod:`.dicom` (one series, or the one ``series`` names). A file whose
name says another format than its content is refused first (:mod:`.file_format`). Every image
passes the header checks of :mod:`.sanity` and, for NIfTI, the raw-value checks of
:mod:`.nifti_check`, whose single pass over a ``.nii.gz`` also gives :func:`read_volume` its
voxels (ITK then reads only the header); a 4D image with a single frame (NRRD, MetaImage) is
read as 3D, as ITK already does for NIfTI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import SimpleITK as sitk

from ..errors import UNetPlusPlusError
from .data_files import check_data_files, compressed_shape
from .dicom import read_dicom_folder
from .dicom import sitk_reason as _sitk_reason
from .file_format import check_named_format
from .grid_memory import check_input_fits
from .nifti_check import (
    HeaderImage,
    NiftiVoxels,
    check_nifti,
    header_image,
    is_nifti,
    nifti_shape,
    read_nifti,
)
from .sanity import cast_voxels, check_finite, check_header
from .volume import Grid, LabelVolume, PathLike, Volume, _geometry_differences


def read_image(path: PathLike, series: str | None = None) -> sitk.Image:
    """Read an image file (NRRD, NIfTI, MetaImage, DICOM file) or a DICOM series folder.

    ``series``: the Series Instance UID to read from a folder holding several series.
    """
    path = Path(path)
    if not path.exists():
        raise UNetPlusPlusError(f"Image not found: {path}.")
    if path.is_dir():
        return read_dicom_folder(path, series)
    if not path.is_file():  # a FIFO would block the read forever
        raise UNetPlusPlusError(f"{path} is not a file or a folder but a pipe or a device.")
    check_named_format(path)  # a .nii.gz named .nrrd: say what it is, not "corrupt"
    check_data_files(path)  # a header's missing or short data file, before ITK prints to stderr
    check_nifti(path)
    return _itk_read(path)


def _itk_read(path: Path, header_only: bool = False, out: np.ndarray | None = None) -> Any:
    """ITK's reading of a checked file; with ``header_only`` a NIfTI, compressed NRRD or
    MetaImage file's voxels come from its checking pass's one decompression (a HeaderImage, its
    voxels written into ``out`` when that fits), when it can (:func:`_read_voxels`)."""
    try:
        voxels = _read_voxels(path, out) if header_only else None
        image = header_image(path, voxels) if voxels is not None else None
        image = image if image is not None else sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise UNetPlusPlusError(
            f"Cannot read {path}: the file is truncated, corrupt or not a supported image "
            f"(NRRD, NIfTI, MetaImage or DICOM) ({_sitk_reason(error)})."
        ) from error
    return image if isinstance(image, HeaderImage) else _single_frame_as_3d(image)


def _read_voxels(path: Path, out: np.ndarray | None) -> NiftiVoxels | None:
    """The voxels of a NIfTI file (:func:`.nifti_check.read_nifti`) or of a compressed NRRD or
    MetaImage (:func:`.data_files.check_data_files`), from the pass that checks them; None for
    other files or layouts. Raises UNetPlusPlusError as those checks do."""
    if is_nifti(path):
        return read_nifti(path, out)
    return check_data_files(path, keep=True, out=out)


def _plain_shape(path: Path) -> tuple | None:
    """(z, y, x) of a file whose voxels :func:`_read_voxels` reads, from its header; else None."""
    return nifti_shape(path) if is_nifti(path) else compressed_shape(path)


def _single_frame_as_3d(image: sitk.Image) -> sitk.Image:
    """A 4D image with one frame (size (x, y, z, 1)) as its 3D volume; others unchanged."""
    if image.GetDimension() == 4 and image.GetSize()[3] == 1:
        size = list(image.GetSize()[:3]) + [0]
        return sitk.Extract(
            image, size, [0, 0, 0, 0], sitk.ExtractImageFilter.DIRECTIONCOLLAPSETOSUBMATRIX
        )
    return image


def read_volume(
    paths: Sequence[PathLike], channel_names: Sequence[str] = (), series: str | None = None
) -> Volume:
    """Read one 3D image per channel; all channels must share one geometry.

    ``series``: Series Instance UID for DICOM folders that hold several series.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise UNetPlusPlusError("No input image was given.")
    files = [Path(name) for name in paths]
    for path in files:
        if path.is_file():
            check_named_format(path)  # before any reader takes it for what its name says
    plain = [
        path.is_file() and (is_nifti(path) or compressed_shape(path) is not None) for path in files
    ]
    _check_input_fits(files, plain)
    shapes = {_plain_shape(path) for path in files} if all(plain) else {None}
    # files of one shape are decompressed once each (NIfTI, compressed NRRD and MetaImage),
    # straight into the volume's array
    array = None
    if None not in shapes and len(shapes) == 1:
        try:
            array = np.empty((len(files),) + shapes.pop(), dtype=np.float32)  # type: ignore[operator]
        except MemoryError:  # a header claiming more voxels than the file holds says so first
            for path in files:
                _check_whole(path)
            raise
    images = []
    for c, path in enumerate(files):
        out = None if array is None else array[c]
        nifti = _itk_read(path, header_only=True, out=out) if plain[c] else None
        images.append(nifti if nifti is not None else read_image(path, series))
    return _volume_from_images(images, [str(p) for p in paths], channel_names, array)


def _check_input_fits(files: list[Path], plain: list[bool]) -> None:
    """Refuse, from the headers, input files whose whole reading cannot fit in memory
    (:func:`.grid_memory.check_input_fits`; a NIfTI file that is only truncated says that
    instead). NIfTI, NRRD and MetaImage headers only: others (DICOM, Analyze pairs) and headers
    that cannot be read pass, their reading says why."""
    size, stored = None, 0
    for path, nifti in zip(files, plain):
        if nifti:  # decoded straight into the float32 volume
            shape = _plain_shape(path)
            if shape is None:
                return
            size = size or tuple(reversed(shape))
            continue
        if not path.name.lower().endswith((".nrrd", ".nhdr", ".mha", ".mhd")):
            return
        check_data_files(path, inflate=False)  # the reading inflates compressed voxels
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        try:
            reader.ReadImageInformation()
            components = max(reader.GetNumberOfComponents(), 1)
            probe = sitk.Image([1, 1], reader.GetPixelID(), components)
        except RuntimeError:
            return
        size = size or reader.GetSize()
        stored += sitk.GetArrayViewFromImage(probe).itemsize * components
    if size is None:
        return
    try:
        check_input_fits(size, len(files), stored, str(files[0]))
    except UNetPlusPlusError:
        for path, nifti in zip(files, plain):
            if nifti:
                _check_whole(path)  # a header far larger than its file: truncated, say so
        raise


def _check_whole(path: Path) -> None:
    """The checks of a whole NIfTI file or of compressed NRRD / MetaImage voxels."""
    check_nifti(path) if is_nifti(path) else check_data_files(path)


def volume_from_sitk(images: Sequence[sitk.Image], channel_names: Sequence[str] = ()) -> Volume:
    """Stack SimpleITK images (one per channel, same geometry) into a float32 Volume."""
    if isinstance(images, sitk.Image):
        images = [images]
    sources = [f"Channel {i + 1}" for i in range(len(images))]
    return _volume_from_images(list(images), sources, channel_names)


def read_labelmap(path: PathLike, labels: Sequence[Any] = ()) -> LabelVolume:
    """Read an integer label map (uint8, or uint16 beyond 255) as a LabelVolume."""
    image = read_image(path)
    _check_image(image, str(path))
    array = sitk.GetArrayFromImage(image)
    if array.dtype.kind == "f":
        if not np.isfinite(array).all() or not np.array_equal(array, np.round(array)):
            raise UNetPlusPlusError(f"Label map {path} holds non-integer values.")
    if array.size and array.min() < 0:
        raise UNetPlusPlusError(f"Label map {path} holds negative values.")
    dtype = np.uint8 if array.size == 0 or array.max() <= 255 else np.uint16
    if array.size and array.max() > np.iinfo(np.uint16).max:
        raise UNetPlusPlusError(f"Label map {path} holds values above 65535.")
    return LabelVolume.on_grid(array.astype(dtype), Grid.from_sitk(image), labels)


def _volume_from_images(
    images: list[Any],
    sources: list[str],
    channel_names: Sequence[str],
    array: np.ndarray | None = None,
) -> Volume:
    """Check the images and stack them into a float32 Volume, in ``array`` when it is a
    (C, z, y, x) float32 array of their size (HeaderImages may already hold their voxels
    there)."""
    if not images:
        raise UNetPlusPlusError("No input image was given.")
    if channel_names and len(channel_names) != len(images):
        raise UNetPlusPlusError(
            f"{len(channel_names)} channel names were given for {len(images)} images."
        )
    for image, source in zip(images, sources):
        _check_image(image, source)
    reference = Grid.from_sitk(images[0])
    for image, source in zip(images[1:], sources[1:]):
        problems = _geometry_differences(Grid.from_sitk(image), reference)  # this file first
        if problems:
            raise UNetPlusPlusError(
                f"{source} does not share the geometry of {sources[0]} ({'; '.join(problems)}); "
                "resample it onto the first channel's grid first."
            )
    shape = (len(images),) + reference.shape_zyx
    if array is None or array.shape != shape or array.dtype != np.float32:
        array = np.empty(shape, dtype=np.float32)
    for c, (image, source) in enumerate(zip(images, sources)):
        if isinstance(image, HeaderImage):
            voxels, stored = image.voxels, image.stored
        else:
            voxels = sitk.GetArrayViewFromImage(image)
            stored = voxels.dtype
        if not np.may_share_memory(voxels, array):  # not already read into its place
            cast_voxels(voxels, array[c])  # beyond float32: inf, refused just below
        if stored.kind == "f":  # beyond float32's range is infinite; integers never are
            check_finite(array[c], source)
    return Volume.on_grid(array, reference, tuple(channel_names))


def _check_image(image: sitk.Image, source: str) -> None:
    dimension = image.GetDimension()
    if dimension == 2:
        raise UNetPlusPlusError(f"{source} is a 2D image; a 3D volume is needed.")
    if dimension != 3:
        raise UNetPlusPlusError(
            f"{source} is a {dimension}D image (for example a time series or a stack of "
            "sequences); give one 3D file per channel."
        )
    components = image.GetNumberOfComponentsPerPixel()
    if components != 1:
        raise UNetPlusPlusError(
            f"{source} has {components} values per voxel (a vector or colour image); give one "
            "scalar 3D image per channel."
        )
    if "complex" in image.GetPixelIDTypeAsString():
        raise UNetPlusPlusError(f"{source} has complex voxels; give a real-valued 3D image.")
    size = image.GetSize()
    if min(size) == 0:
        raise UNetPlusPlusError(f"{source} is empty (size {size}).")
    # refusals only: the warnings reach the user through sanity.check_volume
    check_header(size, image.GetSpacing(), image.GetOrigin(), image.GetDirection(), source)


def stacked_channels_hint(path: PathLike, names: Sequence[str]) -> str:
    """A hint when one file given for a model of ``len(names)`` channels holds that many frames
    (a 4D image, size x, y, z, N) or values per voxel: split it into one 3D file per channel.
    "" when it does not (or its header cannot be read). Reads the header only.

    The frames are not taken as the channels: nothing in the file says which frame is which
    sequence, and a wrong order gives a wrong segmentation without an error."""
    path = Path(path).expanduser()
    if not path.is_file():
        return ""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return ""
    size, components = reader.GetSize(), reader.GetNumberOfComponents()
    if len(size) == 4 and size[3] == len(names):
        what = f"a 4D image with {size[3]} frames"
        how = "SimpleITK's sitk.Extract or 3D Slicer's 'Sequences' module"
    elif len(size) == 3 and components == len(names) > 1:
        what = f"a 3D image with {components} values per voxel"
        how = (
            "SimpleITK's sitk.VectorIndexSelectionCast or 3D Slicer's 'Vector to Scalar "
            "Volume' module, Single Component Extraction"
        )
    else:
        return ""
    return (
        f" {path.name} is {what}: if they are the sequences {', '.join(names)}, split it into "
        f"one 3D file per sequence (e.g. {how}) and give the files in that order."
    )
