"""Post-processing of label maps: the largest component per label, or the component at a click."""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

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
    box = _nonzero_box(array)
    if box is None:
        return out
    # components live inside the labels' bounding box: label it alone (exact; on a 512^2 x 800
    # CT this avoids 32-bit component images of the whole grid, docs/BENCHMARK.md)
    out[box] = _keep_largest(array[box], labels, fully_connected)
    return out


def _nonzero_box(array: np.ndarray) -> Optional[tuple[slice, ...]]:
    """Slices of the bounding box of the non-zero voxels, or None when there are none."""
    box = []
    for axis in range(array.ndim):
        others = tuple(a for a in range(array.ndim) if a != axis)
        hits = np.flatnonzero(array.any(axis=others))
        if hits.size == 0:
            return None
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def _keep_largest(array: np.ndarray, labels, fully_connected: bool) -> np.ndarray:
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


def keep_component_at_point(
    label_array_zyx: np.ndarray,
    point_zyx: Sequence[float],
    spacing_zyx: Sequence[float],
    tolerance_mm: float,
    fully_connected: bool = True,
) -> tuple[np.ndarray, Optional[float]]:
    """Keep only the connected foreground component at a clicked point.

    ``point_zyx`` is a continuous voxel index (z, y, x); ``spacing_zyx`` in mm. The component
    (of all non-zero labels together) containing the voxel at the point is kept; if none does,
    the component nearest to the point, when its nearest voxel lies within ``tolerance_mm``.
    Otherwise everything becomes background. Returns the new array and the distance (mm) from
    the point to the kept component (0 inside it), or None when nothing was kept.
    """
    array = np.asarray(label_array_zyx)
    out = np.zeros_like(array)
    foreground = array != 0
    if not foreground.any():
        return out, None
    components = sitk.GetArrayFromImage(
        sitk.ConnectedComponent(sitk.GetImageFromArray(foreground.view(np.uint8)), fully_connected)
    )
    point = np.asarray(point_zyx, dtype=np.float64)
    spacing = np.asarray(spacing_zyx, dtype=np.float64)
    voxel = np.floor(point + 0.5).astype(int)
    inside = bool(np.all(voxel >= 0) and np.all(voxel < array.shape))
    if inside and components[tuple(voxel)] != 0:
        chosen, distance = int(components[tuple(voxel)]), 0.0
    else:
        # nearest foreground voxel, searched only within the tolerance box around the point
        radius = np.ceil(tolerance_mm / spacing).astype(int) + 1
        low = np.maximum(voxel - radius, 0)
        high = np.minimum(voxel + radius + 1, array.shape)
        if np.any(high <= low):
            return out, None
        window = tuple(slice(a, b) for a, b in zip(low, high))
        index = np.argwhere(components[window] != 0)
        if index.size == 0:
            return out, None
        distances = np.linalg.norm((index + low - point) * spacing, axis=1)
        nearest = int(np.argmin(distances))
        distance = float(distances[nearest])
        if distance > tolerance_mm:
            return out, None
        chosen = int(components[window][tuple(index[nearest])])
    keep = components == chosen
    out[keep] = array[keep]
    return out, distance
