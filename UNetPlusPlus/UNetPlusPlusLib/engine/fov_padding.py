"""Which cells of a CT's coarse grid hold measured data, not the padding of a resampled image.

A CT resampled onto a rotated grid (a gantry tilt corrected, an oblique reformat) holds padding
in its new corners: the header says "image", the scanner measured nothing there. The liver
check's "room above the segment" (``anatomy_check.py``) counted those corners as image above
the liver with no lung in it: the demo CT and LiTS volume 1 rotated 25 degrees about x (their
livers reach the top of the image) were warned "it ends 60 mm below the top of the image with
no lung above it" (docs/INPUT_CHECKS.md, "Anatomy of the result").

Padding is below any measured HU: air reads about -1000 HU, a padded corner -1024 HU or less
(-2000, -3024 on some scanners). A coarse cell whose mean is below :data:`PADDING_HU` holds
mostly padding. Scanners that clip air at -1024 HU make outside air "padding" too; the liver
check uses this only for the columns over the segment, whose top lies in the body.
"""

from __future__ import annotations

import numpy as np

#: A coarse cell with a mean HU below this is padding (air: about -1000 HU, with noise).
PADDING_HU = -1010.0


def measured(fov: np.ndarray, hu: np.ndarray) -> np.ndarray:
    """Cells (z, y, x) inside the image (``fov``) whose block-averaged ``hu`` is not padding."""
    return fov & (hu >= PADDING_HU)
