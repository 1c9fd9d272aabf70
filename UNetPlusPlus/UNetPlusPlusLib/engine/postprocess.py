"""Post-processing of label maps: keep the largest connected component of each label."""

from __future__ import annotations

from typing import Iterable, Optional

import numpy as np
import SimpleITK as sitk


def keep_largest_component(
    label_array_zyx: np.ndarray,
    labels: Optional[Iterable[int]] = None,
    fully_connected: bool = True,
) -> np.ndarray:
    """Return a copy where each label keeps only its largest connected component.

    ``labels`` limits the labels processed (default: every non-zero value present); removed
    voxels become background (0). ``fully_connected`` uses 26-connectivity (else 6).
    """
    array = np.asarray(label_array_zyx)
    if array.ndim != 3 or array.dtype.kind not in "uib":
        raise ValueError(
            f"expected an integer (z, y, x) label array, got {array.dtype} {array.shape}"
        )
    out = array.copy()
    values = np.unique(array) if labels is None else np.asarray(list(labels))
    for value in values:
        if value == 0:
            continue
        mask = array == value
        if not mask.any():
            continue
        components = sitk.ConnectedComponent(
            sitk.GetImageFromArray(mask.view(np.uint8)), fully_connected
        )
        ranked = sitk.RelabelComponent(components, sortByObjectSize=True)
        out[mask & (sitk.GetArrayViewFromImage(ranked) != 1)] = 0
    return out
