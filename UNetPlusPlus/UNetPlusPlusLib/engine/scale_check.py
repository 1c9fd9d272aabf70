"""An image far too small and too fine for the model's anatomy: a spacing in a wrong unit.

The demo CT (122 x 101 x 112 voxels of 3 mm) with a header spacing of 0.05 mm is a body 6 mm
across; at 0.05 mm a 512 x 512 x 300 CT is 25 mm across. The liver model (3 mm voxels, a
144 mm tile) segmented it as "liver 0.004 ml" with only the thin-input warning. No scan of a
patient is that small and that fine at once; the header's spacing is wrong (another unit, or
lost in a conversion). :func:`check_model_scale` refuses an image that, on every axis, is both
smaller than :data:`TILE_SHARE` of the model's tile and has voxels at least
:data:`FINER_FACTOR` times finer than the model's finest: the model would see a speck of padding,
and no real input of the model's anatomy is like that (the smallest image in the shared data,
a 20 mm LIDC nodule crop, has 0.45 mm voxels or more; the liver tile is 144 mm).
``header_warnings`` warns of voxels finer than any clinical scanner's for every model.
numpy only: the CLI runs it before importing torch.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import UNetPlusPlusError

#: Refused when smaller than this share of the model's tile along every axis of the image ...
TILE_SHARE = 0.25
#: ... and with voxels this many times finer than the model's (or more) along every axis.
FINER_FACTOR = 10.0


def check_model_scale(
    size_xyz: Sequence[int],
    spacing_xyz: Sequence[float],
    model_spacing_xyz: Sequence[float],
    tile_xyz: Sequence[int],
    source: str = "The input volume",
) -> None:
    """Raise UNetPlusPlusError for an image (``size_xyz`` voxels of ``spacing_xyz`` mm) that a
    model (voxels of ``model_spacing_xyz`` mm, tiles of ``tile_xyz`` voxels) cannot see at
    its scale: see the module's docstring. Names the spacing, the extent and what the same
    voxels would span at the model's spacing."""
    spacing = np.asarray(spacing_xyz, dtype=np.float64)
    model = np.asarray(model_spacing_xyz, dtype=np.float64)
    extent = np.asarray(size_xyz, dtype=np.float64) * spacing
    tile_mm = np.asarray(tile_xyz, dtype=np.float64) * model
    small = bool(np.all(extent < TILE_SHARE * tile_mm.min()))
    fine = bool(np.all(spacing * FINER_FACTOR <= model.min()))
    if not (small and fine):
        return
    voxels = " x ".join(f"{v:.3g}" for v in spacing)
    mm = " x ".join(f"{v:.3g}" for v in extent)
    at_model = " x ".join(f"{n * d:.0f}" for n, d in zip(size_xyz, model))
    raise UNetPlusPlusError(
        f"{source} has voxels of {voxels} mm and measures only {mm} mm: no scan of a patient is "
        f"that small, and the model works on {' x '.join(f'{v:g}' for v in model)} mm voxels "
        f"in tiles of {tile_mm.min():.0f} mm or more, so it would see a speck and give a "
        "meaningless result. The voxel spacing in the header is probably in a wrong unit or "
        f"was lost in a conversion (its {' x '.join(str(int(n)) for n in size_xyz)} voxels "
        f"would span {at_model} mm at the model's spacing): fix the spacing in the header "
        "(for example in 3D Slicer's Volumes module, Volume Information) and run again."
    )
