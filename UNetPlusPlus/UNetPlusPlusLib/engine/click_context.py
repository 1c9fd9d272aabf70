"""Whether the image around a lung-nodule click can hold a nodule at all, before inference.

A 2 x 2 x 2 volume of 3 mm voxels clicked in its middle gave "nodule 0.189 ml" with no word:
the model outlines whatever it is shown, padding included (review cli20). Two checks on the
box of :data:`CONTEXT_MM` around the click (the click check's lung ball,
``click_check.LUNG_BALL_MM``), measured along the image's own index axes so an oblique
direction changes nothing:

- **field of view**: the image must reach at least :data:`MIN_FIELD_MM` along two of its three
  axes within that box; less cannot hold a nodule with the lung around it, which the model
  needs to tell a nodule from tissue. Refused (``UNetPlusPlusError``).
- **CT-like structure**: in a CT, neighbouring voxels are alike (air, lung, vessels and tissue
  are larger than a voxel); in pure noise they are not. The best of the axes' lag-1
  correlations (of each voxel with its next along that axis) over the whole image (at most
  :data:`MAX_PAIRS` pairs per axis, evenly strided) below :data:`MIN_NEIGHBOUR_CORRELATION` is
  refused. The whole image, not the box: a click in a large homogeneous organ of a CT with a
  sharp kernel has little structure around it, but the image, which holds air (the CT range
  check), has.

Margins on the 814 shared LIDC crops clicked at their centre (``scripts/click_context_margins.py``):
docs/INPUT_CHECKS_CT.md, "What lies under a click". numpy only.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..errors import UNetPlusPlusError
from . import run_memo
from .volume import Volume

#: Half the edge (mm) of the box around the click whose field of view and structure are judged.
CONTEXT_MM = 20.0
#: Within that box the image must reach at least this (mm) along two of its axes (the 814
#: LIDC crops: at least 19.8 mm in-plane, 2.5 mm along z; a 2 x 2 x 2 volume of 3 mm: 6 mm).
MIN_FIELD_MM = 10.0
#: The best axis's lag-1 correlation of neighbouring voxels must reach this (the 814 LIDC
#: crops: at least 0.518, median 0.966; white noise: 0.002; uniform noise the size of the
#: smallest crop, 3 x 43 x 43: at most 0.043 in 500 draws, one slice of 29 x 29: 0.117).
#: Not 0.2: the LIDC crops with white noise of 150 HU added (an ultra-low-dose scan's, with
#: a sharp kernel) gave 10 of 814 under 0.2 (0.155 at 0.625 mm slices), 1 under 0.1.
MIN_NEIGHBOUR_CORRELATION = 0.1
#: The neighbour pairs measured per axis at most (the other two axes strided evenly).
MAX_PAIRS = 200_000


def context_box(volume: Volume, point: Sequence[float]) -> tuple[slice, slice, slice]:
    """The (z, y, x) slices of ``volume``'s voxels within :data:`CONTEXT_MM` of ``point``
    (LPS mm) along each index axis, clipped to the image (possibly empty)."""
    grid = volume.grid
    centre = np.floor(grid.physical_to_index(np.asarray(point, dtype=np.float64)) + 0.5)
    reach = np.floor(CONTEXT_MM / np.asarray(grid.spacing, dtype=np.float64))
    size = np.asarray(grid.size_xyz)
    low = np.clip(centre - reach, 0, size).astype(int)
    high = np.clip(centre + reach + 1, 0, size).astype(int)
    return tuple(slice(int(a), int(b)) for a, b in zip(low[::-1], high[::-1]))  # type: ignore


def field_mm(volume: Volume, point: Sequence[float]) -> np.ndarray:
    """The extent (x, y, z) in mm of the image's voxels in :func:`context_box`: voxels times
    spacing along each index axis."""
    box = context_box(volume, point)
    counts = np.array([max(0, s.stop - s.start) for s in box[::-1]], dtype=np.float64)
    return counts * np.asarray(volume.grid.spacing, dtype=np.float64)


def neighbour_correlation(values: np.ndarray) -> Optional[float]:
    """The best, over the (z, y, x) axes with 2 voxels or more, of the Pearson correlation of
    each voxel of ``values`` with the next along that axis (at most :data:`MAX_PAIRS` pairs,
    the other axes strided); None when no axis has two voxels or every pair is constant."""
    best: Optional[float] = None
    data = np.asarray(values)
    for axis in range(data.ndim):
        if data.shape[axis] < 2:
            continue
        moved = np.moveaxis(data, axis, -1)
        rows = int(np.prod(moved.shape[:-1]))
        stride = max(1, int(np.ceil(np.sqrt(rows * (moved.shape[-1] - 1) / MAX_PAIRS))))
        sample = np.asarray(moved[::stride, ::stride], dtype=np.float64)
        first, second = sample[..., :-1].ravel(), sample[..., 1:].ravel()
        if first.std() == 0 or second.std() == 0:
            continue
        value = float(np.corrcoef(first, second)[0, 1])
        best = value if best is None else max(best, value)
    return best


def refuse_unfit_context(
    volume: Volume,
    point: Sequence[float],
    name: str,
    where: str = "The clicked point",
    channel: int = 0,
) -> None:
    """Raise UNetPlusPlusError when the CT ``channel`` of ``volume`` (C, z, y, x; HU) cannot
    show a ``name`` (the label, "nodule") at ``point`` (LPS mm, on the image): too small a
    field of view around it, or noise without a CT's structure (module docstring). ``where``
    names the click. The correlation is measured once per run (``run_memo``)."""
    field = field_mm(volume, point)
    if np.count_nonzero(field >= MIN_FIELD_MM) < 2:
        shown = " x ".join(f"{v:.3g}" for v in field)
        raise UNetPlusPlusError(
            f"{where}: the image measures only {shown} mm around it (within {CONTEXT_MM:g} mm), "
            f"too small a field of view to hold a {name} with the lung around it, which the "
            f"model needs (at least {MIN_FIELD_MM:g} mm along two axes). Give the whole CT, or "
            f"a crop that reaches at least {CONTEXT_MM:g} mm around the {name}."
        )
    key = ("neighbour_correlation", channel)
    correlation = run_memo.once(volume, key, lambda: neighbour_correlation(volume.array[channel]))
    if correlation is not None and correlation < MIN_NEIGHBOUR_CORRELATION:
        raise UNetPlusPlusError(
            f"{where}: the image looks like noise, not a CT: its neighbouring voxels are not "
            f"alike (correlation {correlation:.2f} at best, under {MIN_NEIGHBOUR_CORRELATION:g}; "
            f"a CT's are far more alike), so no {name} can be told there. Check that this is "
            "the CT volume you meant to segment."
        )
