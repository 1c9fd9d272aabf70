"""Checks on NIfTI files that ITK's NIfTI reader cannot be trusted with.

- **Truncation.** ITK pads a truncated file silently. We read the header (NIfTI-1 or NIfTI-2,
  either byte order) and check that the (decompressed) file holds
  ``vox_offset + voxels * bitpix / 8`` bytes, and that a gzip stream ends properly.
- **NaN and infinite voxels.** ITK's NIfTI reader replaces them with 0 before anyone can see
  them (NRRD and MetaImage keep them), so float data (NIfTI datatypes 16 and 64) is checked in
  the raw bytes, in the same single pass over the file.
- **sform and qform that disagree.** A warning naming both transforms' difference and the one
  ITK (and so 3D Slicer and this engine) uses (:mod:`.nifti_transforms`).
- **One pass.** :func:`read_nifti` keeps the voxels of that pass, converted chunk by chunk into
  the volume's float32 array, so the engine decompresses a ``.nii.gz`` once and holds no copy
  of the file (ITK reads only the header, for the geometry): a plain 3D scalar image without
  intensity scaling. Other files (scaled, vector, 4D) return None and ITK reads them.

Source followed: the NIfTI-1 and NIfTI-2 header layouts (nifti1.h, nifti2.h).
"""

from __future__ import annotations

import gzip
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple, Optional

import numpy as np

from ..errors import UNetPlusPlusError
from .inflate_stream import GZIP_MAGIC, trailing_warning
from .nifti_open import header_bytes, nifti_opener
from .nifti_spacing import sform_scale_warning, spacing_problem
from .nifti_transforms import transform_warning
from .sanity import cast_voxels, nonfinite_error

_CHUNK = 1 << 20
#: NIfTI datatype code -> numpy float kind (the only types that can hold NaN or Inf).
_FLOAT_TYPES = {16: "f4", 64: "f8"}
#: NIfTI datatype code -> numpy kind of the scalar types read without ITK (read_nifti).
_SCALAR_TYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2",
                 768: "u4", 1024: "i8", 1280: "u8"}  # fmt: skip
#: NIfTI datatype code -> bytes per voxel, as nifticlib (ITK's reader) takes it: from the
#: datatype, never from ``bitpix`` (a wrong bitpix must not change how many bytes are read).
_TYPE_BYTES = {2: 1, 4: 2, 8: 4, 16: 4, 32: 8, 64: 8, 128: 3, 256: 1, 512: 2, 768: 4,
               1024: 8, 1280: 8, 1536: 16, 1792: 16, 2048: 32, 2304: 4}  # fmt: skip


@dataclass
class _Layout:
    order: str  # "<" or ">"
    datatype: int
    offset: int  # vox_offset, bytes
    nbytes: int  # bytes of voxel data
    dims: tuple = ()  # dim[0..7]
    scaling: tuple = (0.0, 0.0)  # (scl_slope, scl_inter)

    @property
    def float_dtype(self) -> Optional[np.dtype]:
        kind = _FLOAT_TYPES.get(self.datatype)
        return None if kind is None else np.dtype(self.order + kind)

    @property
    def plain_shape(self) -> Optional[tuple[int, int, int]]:
        """(z, y, x) of a 3D scalar image without scaling in a known type, else None."""
        ndim = int(self.dims[0]) if self.dims else 0
        extra = [int(n) for n in self.dims[4:8]] if ndim > 3 else []
        unscaled = self.scaling in ((0.0, 0.0), (1.0, 0.0))
        if ndim < 3 or any(n != 1 for n in extra[: ndim - 3]) or not unscaled:
            return None
        shape = tuple(int(n) for n in self.dims[3:0:-1])
        if self.datatype not in _SCALAR_TYPES or min(shape) < 1:
            return None
        return shape  # type: ignore[return-value]


def _layout(header: bytes, pair: bool = False) -> Optional[_Layout]:
    """Where the voxels are and their type, from a NIfTI-1/2 header; None if not NIfTI.
    ``pair``: the header of a .hdr/.img pair (or ANALYZE 7.5), whose vox_offset counts in the
    .img file."""
    for order in ("<", ">"):
        if len(header) >= 348 and struct.unpack(order + "i", header[:4])[0] == 348:
            dims = struct.unpack(order + "8h", header[40:56])
            datatype = struct.unpack(order + "h", header[70:72])[0]
            bitpix = struct.unpack(order + "h", header[72:74])[0]
            offset = int(struct.unpack(order + "f", header[108:112])[0])
            scaling = struct.unpack(order + "2f", header[112:120])
            break
        if len(header) >= 540 and struct.unpack(order + "i", header[:4])[0] == 540:
            dims = struct.unpack(order + "8q", header[16:80])
            datatype = struct.unpack(order + "h", header[12:14])[0]
            bitpix = struct.unpack(order + "h", header[14:16])[0]
            offset = struct.unpack(order + "q", header[168:176])[0]
            scaling = struct.unpack(order + "2d", header[176:192])
            break
    else:
        return None
    count = 1
    for n in dims[1 : 1 + max(0, min(int(dims[0]), 7))]:
        count *= max(int(n), 1)
    if offset < 348 and not pair:  # a .hdr/.img pair keeps its voxels elsewhere
        return None
    offset = max(offset, 0)
    per_voxel = _TYPE_BYTES.get(int(datatype))
    nbytes = count * per_voxel if per_voxel else count * max(int(bitpix), 8) // 8
    scaling = tuple(float(v) for v in scaling)
    return _Layout(order, int(datatype), int(offset), nbytes, tuple(dims), scaling)


class _FiniteScan:
    """Counts non-finite values in a float byte stream fed in arbitrary chunks; with ``keep``
    ((stored dtype, flat destination)) it also copies every voxel into the destination."""

    def __init__(self, layout: _Layout) -> None:
        self.dtype = layout.float_dtype
        self.start, self.stop = layout.offset, layout.offset + layout.nbytes
        self.position = 0
        self.rest = b""
        self.bad = 0
        self.keep: Optional[tuple[np.dtype, np.ndarray]] = None
        self.written = 0

    def feed(self, chunk: bytes) -> None:
        begin, end = self.position, self.position + len(chunk)
        self.position = end
        dtype = self.keep[0] if self.keep is not None else self.dtype
        if dtype is None or end <= self.start or begin >= self.stop:
            return
        data = self.rest + chunk[max(0, self.start - begin) : max(0, self.stop - begin)]
        usable = len(data) - len(data) % dtype.itemsize
        values = np.frombuffer(data[:usable], dtype=dtype)
        if self.dtype is not None:
            self.bad += _count_nonfinite(values)
        if self.keep is not None:
            destination = self.keep[1][self.written : self.written + values.size]
            cast_voxels(values, destination)  # beyond float32: inf, refused as non-finite
            self.written += values.size
        self.rest = data[usable:]


class NiftiVoxels(NamedTuple):
    """Voxels read by :func:`read_nifti`: (z, y, x) ``array`` and the file's ``stored`` type."""

    array: np.ndarray
    stored: np.dtype


def _scan(
    stream: BinaryIO, keep: bool = False, out: Optional[np.ndarray] = None
) -> tuple[Optional[_Layout], int, int, Optional[NiftiVoxels]]:
    """(layout, total bytes, non-finite voxels, the voxels or None) of a NIfTI byte stream, in
    one pass. With ``keep`` and a plain layout (:attr:`_Layout.plain_shape`) the voxels are
    kept: converted chunk by chunk into ``out`` (a float32 (z, y, x) array of that shape), or
    else into an array of the stored type (native byte order)."""
    header = stream.read(540)
    layout = _layout(header)
    if layout is None:
        return None, len(header), 0, None
    scan = _FiniteScan(layout)
    voxels = None
    if keep and layout.plain_shape is not None:
        stored = np.dtype(layout.order + _SCALAR_TYPES[layout.datatype])
        usable = out is not None and out.dtype == np.float32 and out.flags.c_contiguous
        if not usable or out.shape != layout.plain_shape:  # type: ignore[union-attr]
            out = np.empty(layout.plain_shape, dtype=stored.newbyteorder("="))
        voxels = NiftiVoxels(out, stored)
        scan.keep = (stored, out.reshape(-1))  # type: ignore[attr-defined]
    return layout, _feed(stream, scan, header), scan.bad, voxels


def _feed(stream: BinaryIO, scan: _FiniteScan, first: bytes = b"") -> int:
    """Feed ``first`` and the rest of ``stream`` to ``scan``; the bytes fed."""
    size = 0
    some = getattr(stream, "read_some", None)  # a GzipStream: its chunks as they come
    read = some if some is not None else lambda: stream.read(_CHUNK)
    chunk = first or read()
    while chunk:
        size += len(chunk)
        scan.feed(chunk)
        chunk = read()
    return size


def _count_nonfinite(values: np.ndarray) -> int:
    """NaN or infinite values; two reductions (NaN propagates) unless there are some."""
    if values.size == 0 or np.isfinite(values.min()) and np.isfinite(values.max()):
        return 0
    return int(values.size - np.count_nonzero(np.isfinite(values)))


def is_nifti(path: Path) -> bool:
    """True for a ``.nii`` or ``.nii.gz`` file name."""
    name = path.name.lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


def check_nifti(path: Path) -> None:
    """Raise UNetPlusPlusError if a ``.nii``/``.nii.gz`` file is truncated, its gzip is broken,
    or its raw voxels hold NaN or infinite values. Other files pass untouched."""
    _checked_pass(path, keep=False)


def read_nifti(path: Path, out: Optional[np.ndarray] = None) -> Optional[NiftiVoxels]:
    """:func:`check_nifti`, and the voxels of that same pass, for a 3D scalar image without
    scaling (scl_slope 0 or 1, scl_inter 0): written into ``out`` when it is a float32 array of
    the image's (z, y, x) shape (as they are decompressed: no copy of the file in memory), else
    returned in the stored type (native byte order). None for other files (ITK reads them).
    Raises UNetPlusPlusError (MemoryError only when the file is complete: a header that
    claims more voxels than memory holds, in a small file, is refused as truncated)."""
    try:
        return _checked_pass(path, keep=True, out=out)
    except MemoryError:
        check_nifti(path)  # a truncated file says so rather than "out of memory"
        raise


def nifti_shape(path: Path) -> Optional[tuple[int, int, int]]:
    """(z, y, x) of a plain NIfTI image (:func:`read_nifti` reads its voxels), from its header
    alone; None for other or unreadable files (the full reading then says why)."""
    try:
        with nifti_opener(path)(path, "rb") as stream:
            layout = _layout(stream.read(540))
    except (EOFError, OSError, zlib.error):
        return None
    return None if layout is None else layout.plain_shape


def _pair_files(path: Path) -> Optional[tuple[Path, Path]]:
    """(header, image) files of the .hdr/.img pair (either may be gzipped) that ``path``
    names; None for other names or when one of the two is missing (ITK then says so)."""
    lower = path.name.lower()
    for suffix in (".hdr", ".img", ".hdr.gz", ".img.gz"):
        if lower.endswith(suffix):
            stem = path.name[: -len(suffix)]
            header, image = pair_file(path, stem, ".hdr"), pair_file(path, stem, ".img")
            return None if header is None or image is None else (header, image)
    return None


def nifti_header_file(path: Path) -> Optional[Path]:
    """The file holding the NIfTI-1 header of image file ``path``: itself for a ``.nii`` or
    ``.nii.gz``, the ``.hdr`` of a .hdr/.img pair (named by either half; both must exist);
    None for other files."""
    if is_nifti(path):
        return path
    pair = _pair_files(path)
    return None if pair is None else pair[0]


def pair_file(path: Path, stem: str, extension: str) -> Optional[Path]:
    """The file ``stem`` + ``extension`` (".hdr" or ".img"; upper case and .gz too) beside
    ``path``, or None."""
    for name in (extension, extension.upper(), extension + ".gz", extension.upper() + ".gz"):
        if path.with_name(stem + name).is_file():
            return path.with_name(stem + name)
    return None


def _ignored(stream: BinaryIO) -> int:
    """Bytes that ``stream`` (read to its end) skipped after its gzip data; 0 for a plain file."""
    return getattr(stream, "ignored", 0)


def _pair_pass(header: Path, image: Path) -> tuple[Optional[_Layout], int, int, int]:
    """(layout, bytes of the .img, non-finite voxels, bytes skipped after its gzip data) of a
    .hdr/.img pair."""
    with nifti_opener(header)(header, "rb") as stream:
        layout = _layout(stream.read(540), pair=True)
    if layout is None:
        return None, 0, 0, 0
    scan = _FiniteScan(layout)
    with nifti_opener(image)(image, "rb") as stream:
        size = _feed(stream, scan)
    return layout, size, scan.bad, _ignored(stream)


def _checked_pass(
    path: Path, keep: bool, out: Optional[np.ndarray] = None
) -> Optional[NiftiVoxels]:
    pair = None if is_nifti(path) else _pair_files(path)
    if pair is None and not is_nifti(path):
        return None
    try:
        if pair is not None:  # ITK pads a truncated .img silently too; ITK reads the voxels
            layout, size, bad, ignored = _pair_pass(*pair)
            data = None
        else:
            _refuse_misnamed_gzip(path)
            _refuse_nifti2(path)
            with nifti_opener(path)(path, "rb") as stream:
                layout, size, bad, data = _scan(stream, keep, out)
            ignored = _ignored(stream)
    except (EOFError, OSError, zlib.error) as error:
        raise UNetPlusPlusError(
            f"Cannot read {path}: the compressed file is truncated or corrupt ({error})."
        ) from error
    if layout is None:
        return None
    _check_size(path, layout)
    header = header_bytes(path if pair is None else pair[0])
    problem = spacing_problem(header, str(path))  # ITK would read 1 mm (nifti_spacing)
    if problem:
        raise UNetPlusPlusError(problem)
    expected = layout.offset + layout.nbytes
    source = path if pair is None else pair[1]
    if size < expected:
        raise UNetPlusPlusError(
            f"Cannot read {source}: the file is truncated ({size} of {expected} bytes of image "
            "data)."
        )
    if bad:
        raise nonfinite_error(str(path), bad)
    if ignored:  # after the refusals: the voxels are complete
        warnings.warn(trailing_warning(path, source, ignored), UserWarning, stacklevel=3)
    _warn_transforms(path if pair is None else pair[0], header)
    return data


def _warn_transforms(header: Path, raw: bytes) -> None:
    """UserWarnings when the NIfTI-1 header's sform and qform disagree
    (:mod:`.nifti_transforms`) and when the sform's scales differ from pixdim
    (:mod:`.nifti_spacing`: ITK's own warning, which the CLI hides)."""
    for warning in (transform_warning(raw, str(header)), sform_scale_warning(raw, str(header))):
        if warning:
            warnings.warn(warning, UserWarning, stacklevel=4)


def header_transform_warning(header: Path, source: str) -> Optional[str]:
    """The warning of :func:`.nifti_transforms.transform_warning` for the NIfTI-1 header in
    file ``header`` (``.nii``, ``.nii.gz``, ``.hdr``; its first 348 bytes are read, nothing
    more), naming ``source``; None when they agree, for another header, and when the file
    cannot be read (gone, unreadable, a broken gzip): never raises for the file."""
    try:
        with nifti_opener(header)(header, "rb") as stream:
            return transform_warning(stream.read(348), source)
    except (EOFError, OSError, zlib.error):
        return None


def _refuse_misnamed_gzip(path: Path) -> None:
    """A gzip-compressed NIfTI-1 named ``.nii`` (not ``.nii.gz``): ITK (SimpleITK, 3D Slicer)
    picks its reader by the name and answered "Unable to determine ImageIO reader", which our
    message then called a truncated or corrupt file (tester 12). Say what it is and how to fix
    it: the name, since every other ITK-based tool fails on it as well."""
    if not path.name.lower().endswith(".nii"):
        return
    with open(path, "rb") as stream:
        if stream.read(2) != GZIP_MAGIC:
            return
    try:
        with gzip.open(path, "rb") as stream:
            first = stream.read(4)
    except (EOFError, OSError, zlib.error):
        first = b""  # a broken gzip: still not a plain .nii, and the name is still wrong
    nifti = len(first) == 4 and 348 in (
        struct.unpack("<i", first)[0],
        struct.unpack(">i", first)[0],
    )
    what = "a gzip-compressed NIfTI file (a .nii.gz)" if nifti else "gzip-compressed"
    raise UNetPlusPlusError(
        f"{path} is {what} but its name ends in .nii, and the image reader (ITK, as in 3D "
        f"Slicer) chooses the format by the name: rename it to {path.name}.gz."
    )


def _refuse_nifti2(path: Path) -> None:
    """NIfTI-2 (sizeof_hdr 540): ITK 5.4's reader, SimpleITK's and 3D Slicer's, reads NIfTI-1
    only and answered "Unable to determine ImageIO reader", which our message then called a
    truncated or corrupt file. Say what it is and how to convert it."""
    with nifti_opener(path)(path, "rb") as stream:
        first = stream.read(4)
    if len(first) == 4 and 540 in (struct.unpack("<i", first)[0], struct.unpack(">i", first)[0]):
        raise UNetPlusPlusError(
            f"{path} is a NIfTI-2 file, which the image reader (ITK, as in 3D Slicer) cannot "
            "read; save it as NIfTI-1 or NRRD first, e.g. with nibabel: "
            "nibabel.save(nibabel.Nifti1Image(img.dataobj, img.affine, img.header), "
            "'image.nii.gz')."
        )


def _check_size(path: Path, layout: _Layout) -> None:
    """Refuse the sizes nifticlib refuses (dim[0] outside 1..7, a dim[i] below 1), before ITK
    prints its own message on stderr; an image with a 0 dimension is empty."""
    ndim = int(layout.dims[0]) if layout.dims else 0
    sizes = [int(n) for n in layout.dims[1 : 1 + ndim]] if 1 <= ndim <= 7 else []
    if sizes and min(sizes) == 0:
        raise UNetPlusPlusError(f"{path} is empty (its NIfTI header gives the size {sizes}).")
    if not sizes or min(sizes) < 0:
        raise UNetPlusPlusError(
            f"Cannot read {path}: its NIfTI header gives an impossible size (dim "
            f"{list(layout.dims)}: 1 to 7 dimensions of at least one voxel each)."
        )


#: The former name (truncation only); it now checks the raw values too.
check_nifti_complete = check_nifti


#: numpy voxel type -> the SimpleITK pixel type ITK reads it as.
_SITK_TYPES = {"u1": "sitkUInt8", "i1": "sitkInt8", "u2": "sitkUInt16", "i2": "sitkInt16",
               "u4": "sitkUInt32", "i4": "sitkInt32", "u8": "sitkUInt64", "i8": "sitkInt64",
               "f4": "sitkFloat32", "f8": "sitkFloat64"}  # fmt: skip


class HeaderImage:
    """An image's geometry from ITK's header reading, with voxels read by :func:`read_nifti`.

    It answers the ``sitk.Image`` methods that reading and its checks use (size, spacing,
    origin, direction, dimension, components, pixel type); ``voxels`` is (z, y, x), float32 or
    the file's ``stored`` type.
    """

    def __init__(self, reader, voxels: NiftiVoxels) -> None:
        self.reader, self.voxels, self.stored = reader, voxels.array, voxels.stored

    def GetDimension(self) -> int:  # noqa: N802 - the sitk.Image method names
        return int(self.reader.GetDimension())

    def GetNumberOfComponentsPerPixel(self) -> int:  # noqa: N802
        return int(self.reader.GetNumberOfComponents())

    def GetPixelIDTypeAsString(self) -> str:  # noqa: N802
        import SimpleITK as sitk

        return sitk.GetPixelIDValueAsString(self.reader.GetPixelIDValue())

    def GetSize(self) -> tuple:  # noqa: N802
        return tuple(self.reader.GetSize())

    def GetSpacing(self) -> tuple:  # noqa: N802
        return reader_geometry(self.reader)[0]

    def GetOrigin(self) -> tuple:  # noqa: N802
        return tuple(self.reader.GetOrigin())

    def GetDirection(self) -> tuple:  # noqa: N802
        return reader_geometry(self.reader)[1]


def reader_geometry(reader) -> tuple[tuple, tuple]:
    """(spacing, direction) of a ``sitk.ImageFileReader`` after ``ReadImageInformation``, as
    ``sitk.ReadImage`` gives them: ITK's ImageFileReader turns a negative spacing (a NIfTI
    pixdim < 0 with qform only) into a positive one with that axis's direction column
    negated, which the header reading alone does not; -0.0 becomes 0.0 as in the full reading.
    Same voxels, same physical points."""
    spacing = [float(v) for v in reader.GetSpacing()]
    n = len(spacing)
    direction = [float(v) for v in reader.GetDirection()]
    for column, step in enumerate(spacing):
        if step < 0:
            spacing[column] = -step
            for row in range(n):
                direction[row * n + column] = -direction[row * n + column]
    return tuple(spacing), tuple(v + 0.0 for v in direction)


def header_image(path: Path, voxels: NiftiVoxels) -> Optional[HeaderImage]:
    """The file's geometry as ITK reads it, with ``voxels`` (:func:`read_nifti`), or None when
    ITK would read another size or pixel type (then ITK reads the whole file). Raises
    RuntimeError when ITK cannot read the header."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    pixel = getattr(sitk, _SITK_TYPES[voxels.stored.str[1:]])
    same_size = tuple(reader.GetSize()) == tuple(voxels.array.shape[::-1])
    if reader.GetDimension() != 3 or not same_size or reader.GetPixelIDValue() != pixel:
        return None
    return HeaderImage(reader, voxels)
