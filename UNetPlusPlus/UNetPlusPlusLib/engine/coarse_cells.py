"""The coarse LPS grid of the liver's anatomy checks: its cell size and its connected regions.

Shared by ``anatomy_check.py`` (lungs between and above the segment, the body) and
``liver_position.py`` (the trunk, both lungs), which it imports: one cell size and one
labelling of regions for both, without an import cycle.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

#: Spacing (mm) of the isotropic LPS grid the checks work on.
STEP_MM = 4.0


def regions(mask: np.ndarray, min_cells: int = 0) -> np.ndarray:
    """Connected regions (faces) of the boolean ``mask`` (2-D or 3-D, e.g. (z, y, x)) with at
    least ``min_cells`` cells, labelled 1..n from the largest; 0 elsewhere (SimpleITK's
    ``ConnectedComponent`` then ``RelabelComponent``)."""
    image = sitk.GetImageFromArray(np.asarray(mask).astype(np.uint8))
    return sitk.GetArrayFromImage(sitk.RelabelComponent(sitk.ConnectedComponent(image), min_cells))
