"""Refuse a model grid that cannot fit in memory, before anything is allocated on it.

The engine resamples the input (or its ROI or point crop) onto the model's spacing before
inference. A header whose spacing is far too large (50 mm voxels: a 122 x 101 x 112 CT becomes a
6.1 x 5.1 x 5.6 m body) turns that into billions of voxels: `unetpp segment --task liver`
allocated 22 GB on a 23 GB machine and was killed by the kernel's out-of-memory killer, with no
message and the other programs of the machine at risk. :func:`check_model_grid_fits` compares a
lower bound of what the run needs on the model grid with the machine's physical memory and
refuses with one line that names the sizes and the likely cause. numpy only.

The input itself is read whole on its own grid first (without ``--roi``): a 2048 x 2048 x 1024
int16 NRRD (8 GiB, all but empty, 0.2 mm voxels) made ``unetpp segment`` hold 20 GB when the
kernel killed it, after 205 s. :func:`check_input_fits` refuses such an input from its header.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..errors import UNetPlusPlusError
from .system_memory import physical_memory_bytes
from .volume import Grid, canonical_grid

#: float32 bytes per model-grid voxel, per array the run holds at least once on that grid: the
#: resampled input and its normalised copy (one per channel) and the summed class probabilities
#: with their tile weights (one per class plus one): a lower bound of the run's peak.
BYTES_PER_VALUE = 4


def model_grid_bytes(grid: Grid, channels: int, classes: int) -> int:
    """Lower bound (bytes) of what inference holds on ``grid``: ``channels`` input channels
    twice (resampled, normalised) and ``classes`` probabilities (background included) plus
    their weights, float32."""
    voxels = int(np.prod(np.asarray(grid.size_xyz, dtype=np.int64)))
    return voxels * BYTES_PER_VALUE * (2 * int(channels) + int(classes) + 1)


def whole_grid_may_not_fit(
    volume_grid: Grid, spacing: Sequence[float], channels: int, classes: int
) -> bool:
    """Whether the whole input's model grid (``volume_grid`` at the model's ``spacing``, mm)
    needs more than the physical memory: then the run may be refused (the body's or non-zero
    box, :func:`check_model_grid_fits`), and its header warnings wait for that answer."""
    memory = physical_memory_bytes()
    grid = canonical_grid(volume_grid, spacing)
    return memory is not None and model_grid_bytes(grid, channels, classes) > memory


def check_model_grid_fits(
    grid: Grid,
    region: Grid,
    channels: int,
    classes: int,
    memory_bytes: Optional[int] = None,
    remedy: str = "restrict the run to a region of interest",
    whole_input: Optional[Grid] = None,
    part: str = "the body's box",
) -> None:
    """Refuse a model grid whose arrays cannot fit in the machine's memory.

    ``grid``: the model grid about to be resampled onto (size in voxels, spacing in mm);
    ``region``: the input grid it covers (for the message: its size, spacing and physical
    extent); ``channels``, ``classes``: the model's input channels and output classes
    (background included); ``memory_bytes``: the memory to compare with (default: the physical
    memory; no check where it is unknown); ``remedy``: what to do when the image is that large
    (ends the message); ``whole_input``: the whole input's grid when ``region`` is ``part`` of it
    (a crop): the message then gives the whole input's model grid, as
    ``tile_count.long_run_warning`` gave it before, and the part's size in it. Raises
    UNetPlusPlusError naming the sizes.
    """
    memory = physical_memory_bytes() if memory_bytes is None else int(memory_bytes)
    needed = model_grid_bytes(grid, channels, classes)
    if memory is None or needed <= memory:
        return
    whole = canonical_grid(whole_input, grid.spacing) if whole_input is not None else grid
    cropped = tuple(whole.size_xyz) != tuple(grid.size_xyz)
    source = whole_input if whole_input is not None and cropped else region
    corners = source.corner_points()
    extent_m = (corners.max(axis=0) - corners.min(axis=0)) / 1000.0
    model_grid = f"a {_voxels(whole)} voxel model grid"
    which = f"; {part} in it, {_voxels(grid)} voxels," if cropped else ", which"
    raise UNetPlusPlusError(
        f"At the model's spacing ({_fmt(grid.spacing, 'mm')}) the input becomes {model_grid} "
        f"(from an input grid of {_voxels(source)} voxels){which} needs at least "
        f"{_size(needed)}, more than this machine's {_size(memory)}. The image "
        f"spans {_fmt(extent_m, 'm')} with {_fmt(source.spacing, 'mm')} voxels: if no patient "
        f"is that large, the spacing in its header is wrong (fix the header); otherwise "
        f"{remedy}."
    )


def _voxels(grid: Grid) -> str:
    return " x ".join(str(n) for n in grid.size_xyz)


def input_bytes(size_xyz: Sequence[int], channels: int, stored_bytes: int = 0) -> int:
    """Lower bound (bytes) of reading a whole input of ``channels`` images of ``size_xyz``
    voxels: the float32 volume, each image's voxels as stored (``stored_bytes`` per voxel and
    channel, 0 when they are decoded straight into the volume) while it is converted, and the
    uint8 labels of the result on the same grid."""
    voxels = int(np.prod(np.asarray(size_xyz, dtype=np.int64)))
    return voxels * (int(channels) * BYTES_PER_VALUE + int(stored_bytes) + 1)


def check_input_fits(
    size_xyz: Sequence[int],
    channels: int,
    stored_bytes: int,
    source: str,
    memory_bytes: Optional[int] = None,
) -> None:
    """Refuse to read a whole input (``channels`` images of ``size_xyz`` voxels, ``source``
    naming the first) whose :func:`input_bytes` exceed the machine's physical memory
    (``memory_bytes``; no check where it is unknown). Raises UNetPlusPlusError naming the sizes
    and what to do (--roi reads only a region)."""
    memory = physical_memory_bytes() if memory_bytes is None else int(memory_bytes)
    needed = input_bytes(size_xyz, channels, stored_bytes)
    if memory is None or needed <= memory:
        return
    raise UNetPlusPlusError(
        f"{source} is {' x '.join(str(int(n)) for n in size_xyz)} voxels: reading it whole "
        f"needs at least {_size(needed)}, more than this machine's {_size(memory)}. Segment a "
        "region of it (`--roi`, which reads only that region of a NRRD, NIfTI or MetaImage "
        "file), or crop or resample the image first."
    )


def _size(size_bytes: int) -> str:
    if size_bytes >= 2**30:
        return f"{size_bytes / 2**30:.3g} GiB"
    return f"{size_bytes / 2**20:.3g} MiB"


def _fmt(values: Sequence[float], unit: str) -> str:
    return " x ".join(f"{v:.3g}" for v in values) + f" {unit}"
