"""Engine image types, reading and writing with SimpleITK, canonical grids and resampling.

Conventions (docs/ARCHITECTURE.md): physical space is ITK LPS in millimetres; arrays are
(z, y, x) with channels first; vectors (spacing, origin, sizes, points) are (x, y, z); column
``direction[:, a]`` is the LPS direction of index axis ``a`` and
``physical = origin + direction @ (spacing * index_xyz)``.

The geometry contract: the engine resamples an input onto a *canonical grid* (identity LPS
direction, the model's spacing, covering the input's physical extent), infers there, and
resamples the class probabilities back onto the exact input grid, so the storage order of a
volume (axis permutations, LPS/RAS flips, oblique directions) does not change the result in
physical space.

Reading lives in :mod:`.image_read` (``read_image``, ``read_volume``, ``read_labelmap``,
``volume_from_sitk``), which imports this module; import them from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence, Union

import numpy as np
import SimpleITK as sitk

from ..errors import UNetPlusPlusError
from .dicom import sitk_reason as _sitk_reason

if TYPE_CHECKING:
    from .manifest import LabelSpec

PathLike = Union[str, Path]
Vector3 = tuple[float, float, float]

#: Relative tolerance for "same geometry" between channels (spacing, origin, direction).
GEOMETRY_TOLERANCE = 1e-4

_INTERPOLATORS = {"linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor}
_LABELMAP_SUFFIXES = (".nrrd", ".nii", ".nii.gz", ".mha", ".mhd")


# --------------------------------------------------------------------------- types
def _vector3(values: Sequence[float], name: str) -> Vector3:
    out = tuple(float(v) for v in values)
    if len(out) != 3:
        raise ValueError(f"{name} must have 3 values (x, y, z), got {values!r}")
    return out  # type: ignore[return-value]


def _direction3(direction: Any) -> np.ndarray:
    out = np.array(direction, dtype=np.float64).reshape(3, 3)
    if abs(np.linalg.det(out)) < 1e-6:
        raise ValueError(f"direction is singular: {out.tolist()}")
    return out


@dataclass(eq=False)
class Grid:
    """A voxel grid in LPS space: size (x, y, z), spacing, origin and direction."""

    size_xyz: tuple[int, int, int]
    spacing: Vector3
    origin: Vector3
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self) -> None:
        self.size_xyz = tuple(int(s) for s in self.size_xyz)  # type: ignore[assignment]
        if len(self.size_xyz) != 3 or min(self.size_xyz) < 1:
            raise ValueError(f"grid size must be 3 positive integers, got {self.size_xyz}")
        self.spacing = _vector3(self.spacing, "spacing")
        if min(self.spacing) <= 0:
            raise ValueError(f"spacing must be positive, got {self.spacing}")
        self.origin = _vector3(self.origin, "origin")
        self.direction = _direction3(self.direction)

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        return tuple(reversed(self.size_xyz))  # type: ignore[return-value]

    @classmethod
    def from_sitk(cls, image: sitk.Image) -> Grid:
        return cls(image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection())

    def index_to_physical(self, index_xyz: Any) -> np.ndarray:
        """LPS points of continuous (x, y, z) indices; accepts (3,) or (N, 3)."""
        index = np.asarray(index_xyz, dtype=np.float64)
        scaled = index * np.asarray(self.spacing)
        return np.asarray(self.origin) + scaled @ self.direction.T

    def physical_to_index(self, points_xyz: Any) -> np.ndarray:
        """Continuous (x, y, z) indices of LPS points; accepts (3,) or (N, 3)."""
        offset = np.asarray(points_xyz, dtype=np.float64) - np.asarray(self.origin)
        return (offset @ np.linalg.inv(self.direction).T) / np.asarray(self.spacing)

    def corner_points(self) -> np.ndarray:
        """LPS positions of the 8 corner voxel centres, (8, 3)."""
        last = np.asarray(self.size_xyz, dtype=np.float64) - 1
        corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], float)
        return self.index_to_physical(corners * last)

    def isclose(self, other: Grid, tolerance: float = GEOMETRY_TOLERANCE) -> bool:
        """Same size, and spacing/origin/direction equal within a relative tolerance."""
        return not _geometry_differences(self, other, tolerance)


@dataclass(eq=False)
class Volume:
    """A multi-channel image: float32 array (C, z, y, x) plus LPS geometry."""

    array: np.ndarray
    spacing: Vector3
    origin: Vector3
    direction: np.ndarray
    channel_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.array = np.asarray(self.array, dtype=np.float32)
        if self.array.ndim != 4:
            raise ValueError(f"Volume.array must be (C, z, y, x), got shape {self.array.shape}")
        self.spacing = _vector3(self.spacing, "spacing")
        self.origin = _vector3(self.origin, "origin")
        self.direction = _direction3(self.direction)
        self.channel_names = tuple(str(n) for n in self.channel_names)

    @classmethod
    def on_grid(cls, array: np.ndarray, grid: Grid, channel_names: Sequence[str] = ()) -> Volume:
        return cls(array, grid.spacing, grid.origin, grid.direction.copy(), tuple(channel_names))

    @property
    def grid(self) -> Grid:
        return Grid(self.array.shape[:0:-1], self.spacing, self.origin, self.direction)

    @property
    def num_channels(self) -> int:
        return int(self.array.shape[0])

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        return tuple(self.array.shape[1:])  # type: ignore[return-value]

    def with_array(self, array: np.ndarray, channel_names: Sequence[str] | None = None) -> Volume:
        """A volume with the same geometry and a new (C, z, y, x) array."""
        names = self.channel_names if channel_names is None else tuple(channel_names)
        return Volume(array, self.spacing, self.origin, self.direction.copy(), names)


@dataclass(eq=False)
class LabelVolume:
    """A label map: integer array (z, y, x), LPS geometry and the manifest's labels.

    Value 0 is background and is not listed in ``labels``.
    """

    array: np.ndarray
    spacing: Vector3
    origin: Vector3
    direction: np.ndarray
    labels: list[LabelSpec] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.array = np.asarray(self.array)
        if self.array.ndim != 3 or self.array.dtype.kind not in "ui":
            raise ValueError(
                f"LabelVolume.array must be an integer (z, y, x) array, got "
                f"{self.array.dtype} {self.array.shape}"
            )
        self.spacing = _vector3(self.spacing, "spacing")
        self.origin = _vector3(self.origin, "origin")
        self.direction = _direction3(self.direction)
        self.labels = list(self.labels)

    @classmethod
    def on_grid(cls, array: np.ndarray, grid: Grid, labels: Sequence[Any] = ()) -> LabelVolume:
        return cls(array, grid.spacing, grid.origin, grid.direction.copy(), list(labels))

    @property
    def grid(self) -> Grid:
        return Grid(self.array.shape[::-1], self.spacing, self.origin, self.direction)


@dataclass
class SegmentationResult:
    """Labels (and optionally probabilities) on the input grid, plus run information."""

    labels: LabelVolume
    probabilities: Volume | None = None
    info: dict = field(default_factory=dict)
    disagreement: Volume | None = None  # (1, z, y, x) in [0, 1], if asked (disagreement.py)


@dataclass(frozen=True)
class Box:
    """An axis-aligned physical LPS box given by two opposite corners (x, y, z), in mm."""

    corner_a: Vector3
    corner_b: Vector3

    def __post_init__(self) -> None:
        object.__setattr__(self, "corner_a", _vector3(self.corner_a, "corner_a"))
        object.__setattr__(self, "corner_b", _vector3(self.corner_b, "corner_b"))

    @classmethod
    def around(cls, point_xyz: Sequence[float], size_mm_xyz: Sequence[float]) -> Box:
        """The box of physical size ``size_mm_xyz`` centred on ``point_xyz``."""
        point = np.asarray(_vector3(point_xyz, "point"))
        half = np.abs(np.asarray(_vector3(size_mm_xyz, "box size"))) / 2
        return cls(tuple(point - half), tuple(point + half))

    @property
    def lower(self) -> np.ndarray:
        return np.minimum(self.corner_a, self.corner_b)

    @property
    def upper(self) -> np.ndarray:
        return np.maximum(self.corner_a, self.corner_b)

    def corner_points(self) -> np.ndarray:
        """The 8 corners, (8, 3)."""
        lo, hi = self.lower, self.upper
        return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])
                         for z in (lo[2], hi[2])])  # fmt: skip

    def intersect(self, other: Box) -> Box:
        lo, hi = np.maximum(self.lower, other.lower), np.minimum(self.upper, other.upper)
        if np.any(lo > hi):
            raise UNetPlusPlusError(
                "The region of interest and the box around the point do not overlap; place the "
                "point inside the region of interest."
            )
        return Box(tuple(lo), tuple(hi))


def _geometry_differences(a: Grid, b: Grid, tolerance: float = GEOMETRY_TOLERANCE) -> list[str]:
    """Human-readable differences between two grids (empty when they match)."""
    problems = []
    if a.size_xyz != b.size_xyz:
        problems.append(f"size {a.size_xyz} vs {b.size_xyz}")
    if not np.allclose(a.spacing, b.spacing, rtol=tolerance, atol=0):
        problems.append(f"spacing {_fmt(a.spacing)} vs {_fmt(b.spacing)}")
    extent = float(np.linalg.norm(np.multiply(a.size_xyz, a.spacing)))
    if not np.allclose(a.origin, b.origin, rtol=0, atol=tolerance * max(extent, 1.0)):
        problems.append(f"origin {_fmt(a.origin)} vs {_fmt(b.origin)}")
    if not np.allclose(a.direction, b.direction, rtol=0, atol=tolerance):
        problems.append("direction differs")
    return problems


def _fmt(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"


# --------------------------------------------------------------------------- conversion
def _grid_to_sitk(image: sitk.Image, grid: Grid) -> sitk.Image:
    image.SetSpacing(grid.spacing)
    image.SetOrigin(grid.origin)
    image.SetDirection(grid.direction.flatten().tolist())
    return image


def array_to_sitk(array_zyx: np.ndarray, grid: Grid) -> sitk.Image:
    """A (z, y, x) array as a SimpleITK image on ``grid``."""
    array_zyx = np.asarray(array_zyx)
    if array_zyx.dtype == np.float16 or array_zyx.dtype == bool:
        array_zyx = array_zyx.astype(np.float32 if array_zyx.dtype == np.float16 else np.uint8)
    if array_zyx.shape != grid.shape_zyx:
        raise ValueError(f"array shape {array_zyx.shape} does not match grid {grid.shape_zyx}")
    return _grid_to_sitk(sitk.GetImageFromArray(array_zyx), grid)


def volume_to_sitk(volume: Volume, channel: int = 0) -> sitk.Image:
    """One channel of a Volume as a float32 SimpleITK image with its geometry."""
    return array_to_sitk(volume.array[channel], volume.grid)


def labels_to_sitk(labels: LabelVolume) -> sitk.Image:
    """A LabelVolume as an integer SimpleITK image with its geometry."""
    return array_to_sitk(labels.array, labels.grid)


def write_labelmap(labels: LabelVolume, path: PathLike) -> None:
    """Write a label map as NRRD, NIfTI or MetaImage (by extension), compressed."""
    path = Path(path)
    if not path.name.lower().endswith(_LABELMAP_SUFFIXES):
        raise UNetPlusPlusError(
            f"Cannot write {path}: use a .nrrd, .nii.gz, .nii, .mha or .mhd file name."
        )
    try:
        sitk.WriteImage(labels_to_sitk(labels), str(path), useCompression=True)
    except RuntimeError as error:
        raise UNetPlusPlusError(f"Cannot write {path}: {_sitk_reason(error)}.") from error


# --------------------------------------------------------------------------- geometry
def canonical_grid(volume: Volume | LabelVolume | Grid, spacing_xyz: Sequence[float]) -> Grid:
    """Identity-direction (LPS) grid at ``spacing_xyz`` covering the volume's physical extent.

    The extent is the bounding box of the 8 corner voxel centres after the volume's direction
    is applied, so oblique and flipped volumes are fully covered; the grid is centred on it.
    """
    source = volume if isinstance(volume, Grid) else volume.grid
    spacing = np.asarray(_vector3(spacing_xyz, "spacing"))
    if np.any(spacing <= 0):
        raise UNetPlusPlusError(f"The model spacing must be positive, got {spacing.tolist()}.")
    corners = source.corner_points()
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    size = np.ceil((hi - lo) / spacing - 1e-4).astype(int) + 1
    size = np.maximum(size, 1)
    origin = (lo + hi) / 2 - (size - 1) * spacing / 2
    return Grid(tuple(size), tuple(spacing), tuple(origin), np.eye(3))


def _resampler(grid: Grid, interpolator: str, default: float) -> sitk.ResampleImageFilter:
    if interpolator not in _INTERPOLATORS:
        raise ValueError(f"interpolator must be one of {sorted(_INTERPOLATORS)}: {interpolator}")
    resampler = sitk.ResampleImageFilter()
    resampler.SetSize([int(s) for s in grid.size_xyz])
    resampler.SetOutputSpacing(grid.spacing)
    resampler.SetOutputOrigin(grid.origin)
    resampler.SetOutputDirection(grid.direction.flatten().tolist())
    resampler.SetInterpolator(_INTERPOLATORS[interpolator])
    resampler.SetDefaultPixelValue(float(default))
    return resampler


def resample_volume(
    volume: Volume,
    grid: Grid,
    interpolator: str = "linear",
    default: float | Sequence[float] | None = None,
) -> Volume:
    """Resample every channel onto ``grid``.

    Voxels outside the input get ``default``: one value, one per channel, or (None) each
    channel's minimum, e.g. air for CT and 0 for skull-stripped MR.
    """
    source = volume.grid
    out = np.empty((volume.num_channels,) + grid.shape_zyx, dtype=np.float32)
    for c in range(volume.num_channels):
        channel = volume.array[c]
        if default is None:
            fill = float(channel.min())
        elif np.ndim(default) == 0:
            fill = float(default)  # type: ignore[arg-type]
        else:
            fill = float(default[c])  # type: ignore[index]
        resampler = _resampler(grid, interpolator, fill)
        resampler.SetOutputPixelType(sitk.sitkFloat32)
        resampled = resampler.Execute(array_to_sitk(channel, source))
        out[c] = sitk.GetArrayViewFromImage(resampled)  # the view needs `resampled` alive
    return Volume.on_grid(out, grid, volume.channel_names)


def resample_labels(labels: LabelVolume, grid: Grid) -> LabelVolume:
    """Nearest-neighbour resampling of a label map onto ``grid`` (outside: background)."""
    resampler = _resampler(grid, "nearest", 0)
    image = resampler.Execute(labels_to_sitk(labels))
    array = sitk.GetArrayFromImage(image).astype(labels.array.dtype, copy=False)
    return LabelVolume.on_grid(array, grid, labels.labels)


def resample_to_reference(
    array_czyx: Any,
    grid: Grid,
    reference: Volume | LabelVolume | Grid,
    interpolator: str = "linear",
) -> np.ndarray:
    """Resample a (C, z, y, x) array on ``grid`` onto the reference grid, channel by channel.

    Used to put class probabilities back on the input grid before the argmax. Points just
    outside ``grid`` take the nearest value (nearest-neighbour extrapolation).
    Returns float32 (C, z, y, x) shaped like the reference.
    """
    if hasattr(array_czyx, "detach"):  # a torch tensor
        array_czyx = array_czyx.detach().cpu().numpy()
    array_czyx = np.asarray(array_czyx)
    if array_czyx.ndim != 4 or array_czyx.shape[1:] != grid.shape_zyx:
        raise ValueError(f"array shape {array_czyx.shape} does not match grid {grid.shape_zyx}")
    target = reference if isinstance(reference, Grid) else reference.grid
    resampler = _resampler(target, interpolator, 0.0)
    resampler.SetOutputPixelType(sitk.sitkFloat32)
    resampler.SetUseNearestNeighborExtrapolator(True)
    out = np.empty((array_czyx.shape[0],) + target.shape_zyx, dtype=np.float32)
    for c in range(array_czyx.shape[0]):
        channel = np.asarray(array_czyx[c], dtype=np.float32)
        resampled = resampler.Execute(array_to_sitk(channel, grid))
        out[c] = sitk.GetArrayViewFromImage(resampled)  # the view needs `resampled` alive
    return out


def box_to_index_slices(grid: Grid, box: Box) -> tuple[slice, slice, slice]:
    """(z, y, x) slices of the voxels of ``grid`` whose footprint meets the box.

    The box corners are mapped into index space (any direction), so for oblique grids the
    slices hold the box's bounding box in index space.
    """
    index = grid.physical_to_index(box.corner_points())
    size = np.asarray(grid.size_xyz)
    start = np.floor(index.min(axis=0) + 0.5).astype(int)
    stop = np.floor(index.max(axis=0) + 0.5).astype(int) + 1
    start, stop = np.maximum(start, 0), np.minimum(stop, size)
    if np.any(stop <= start):
        raise UNetPlusPlusError(
            f"The region from {_fmt(box.lower)} to {_fmt(box.upper)} mm (LPS) lies outside the "
            "volume; place it on the image."
        )
    return tuple(slice(int(a), int(b)) for a, b in zip(start[::-1], stop[::-1]))  # type: ignore[return-value]


def crop_to_box(volume: Volume, box: Box) -> tuple[Volume, tuple[slice, slice, slice]]:
    """Crop to the voxels meeting a physical box; returns the crop and its (z, y, x) slices."""
    slices = box_to_index_slices(volume.grid, box)
    return crop_to_slices(volume, slices), slices


def crop_to_slices(volume: Volume, slices: tuple[slice, slice, slice]) -> Volume:
    """The voxels ``slices`` (z, y, x, inside the image) of ``volume``, a copy with the same
    spacing and direction and the origin of its first voxel."""
    start_xyz = [s.start for s in reversed(slices)]
    origin = volume.grid.index_to_physical(start_xyz)
    array = np.ascontiguousarray(volume.array[(slice(None),) + tuple(slices)])
    direction = volume.direction.copy()
    return Volume(array, volume.spacing, tuple(origin), direction, volume.channel_names)


def paste_into(
    full_shape_zyx: Sequence[int],
    slices: tuple[slice, slice, slice],
    array: np.ndarray,
    fill: float = 0,
) -> np.ndarray:
    """Place a cropped (..., z, y, x) array back into a full-size array filled with ``fill``."""
    array = np.asarray(array)
    out = np.full(array.shape[:-3] + tuple(full_shape_zyx), fill, dtype=array.dtype)
    out[(Ellipsis,) + tuple(slices)] = array
    return out
