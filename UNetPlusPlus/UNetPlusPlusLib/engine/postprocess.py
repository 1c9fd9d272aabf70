"""Post-processing of label maps: the largest component per label, the removal of small
foreground components, or the component at a click."""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

import numpy as np
import SimpleITK as sitk


def keep_largest_component(
    label_array_zyx: np.ndarray,
    labels: Optional[Iterable[int]] = None,
    fully_connected: bool = True,
    copy: bool = True,
) -> np.ndarray:
    """Return a copy where each label keeps only its largest connected component.

    ``labels`` limits the labels processed (default: every non-zero value present); removed
    voxels become background (0). ``fully_connected`` uses 26-connectivity (else 6). With
    ``copy=False`` the array itself is changed and returned (no copy of a 512^2 x 300 grid).
    Raises ValueError for an array that is not an integer (z, y, x) one.
    """
    array = np.asarray(label_array_zyx)
    if array.ndim != 3 or array.dtype.kind not in "uib":
        raise ValueError(
            f"expected an integer (z, y, x) label array, got {array.dtype} {array.shape}"
        )
    out = array.copy() if copy else array
    box = _nonzero_box(array)
    if box is None:
        return out
    # components live inside the labels' bounding box: label it alone (exact; on a 512^2 x 800
    # CT this avoids 32-bit component images of the whole grid, docs/BENCHMARK_E2E.md)
    _keep_largest(out[box], labels, fully_connected)
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


#: Edge (voxels) of the blocks that find the separate groups of labels (:func:`_groups`).
GROUP_BLOCK = 8
#: More groups than this: the labels' box is labelled at once.
MAX_GROUPS = 32


def _keep_largest(array: np.ndarray, labels, fully_connected: bool) -> None:
    """In place on ``array`` (a view of the labels' box): removing one label's voxels leaves
    the masks of the others, and the groups, as they were."""
    out = array
    values = np.unique(array) if labels is None else np.asarray(list(labels))
    groups = _groups(array)
    for value in values:
        if value == 0:
            continue
        mask = array == value
        if not mask.any():
            continue
        largest = _largest_by_groups(mask, groups, fully_connected) if groups else None
        if largest is not None:  # exact: no component crosses two groups
            slices, keep = largest
            out[mask] = 0
            out[slices][keep] = value
            continue
        components = sitk.ConnectedComponent(
            sitk.GetImageFromArray(mask.view(np.uint8)), fully_connected
        )
        ranked = sitk.RelabelComponent(components, sortByObjectSize=True)
        out[mask & (sitk.GetArrayViewFromImage(ranked) != 1)] = 0


def _groups(array: np.ndarray) -> Optional[list[tuple[tuple[slice, ...], np.ndarray]]]:
    """Parts of ``array`` that no connected component crosses: per 26-connected group of
    :data:`GROUP_BLOCK`-voxel blocks holding labels, its slices and the mask of its blocks
    there (two touching voxels lie in one block or in touching blocks). None for one group or
    more than :data:`MAX_GROUPS`. On the 512x512x300 CT the liver and the distant false positives
    are labelled in boxes of their own instead of one box around all (docs/BENCHMARK_E2E.md)."""
    b = GROUP_BLOCK
    shape = tuple(-(-n // b) for n in array.shape)
    occupied = np.zeros(shape, dtype=np.uint8)
    plane = np.zeros((shape[1] * b, shape[2] * b), dtype=bool)
    for k in range(shape[0]):
        plane[: array.shape[1], : array.shape[2]] = array[k * b : (k + 1) * b].any(axis=0)
        occupied[k] = plane.reshape(shape[1], b, shape[2], b).any(axis=(1, 3))
    image = sitk.ConnectedComponent(sitk.GetImageFromArray(occupied), True)
    shapes = sitk.LabelShapeStatisticsImageFilter()
    shapes.Execute(image)
    if not 1 < shapes.GetNumberOfLabels() <= MAX_GROUPS:
        return None
    groups = sitk.GetArrayViewFromImage(image)
    found = []
    for label in shapes.GetLabels():
        x, y, z, sx, sy, sz = shapes.GetBoundingBox(label)
        blocks = groups[z : z + sz, y : y + sy, x : x + sx] == label
        slices = tuple(
            slice(start * b, min((start + size) * b, n))
            for start, size, n in zip((z, y, x), (sz, sy, sx), array.shape)
        )
        member = blocks.repeat(b, 0).repeat(b, 1).repeat(b, 2)
        found.append((slices, member[tuple(slice(0, s.stop - s.start) for s in slices)]))
    return found


def _largest_by_groups(
    mask: np.ndarray, groups, fully_connected: bool
) -> Optional[tuple[tuple[slice, ...], np.ndarray]]:
    """(slices, mask there) of the largest component of ``mask``, labelled group by group;
    None when two components share the largest size (the caller then labels the whole box, so
    ties break as SimpleITK's RelabelComponent breaks them)."""
    candidates = []
    for slices, member in groups:
        part = mask[slices] & member
        if not part.any():
            continue
        relabel = sitk.RelabelComponentImageFilter()
        relabel.SetSortByObjectSize(True)
        ranked = relabel.Execute(
            sitk.ConnectedComponent(sitk.GetImageFromArray(part.view(np.uint8)), fully_connected)
        )
        candidates.append((list(relabel.GetSizeOfObjectsInPixels()), slices, ranked))
    largest = max(sizes[0] for sizes, _, _ in candidates)
    if sum(sizes.count(largest) for sizes, _, _ in candidates) > 1:
        return None
    _, slices, ranked = next(c for c in candidates if c[0][0] == largest)
    return slices, sitk.GetArrayViewFromImage(ranked) == 1


def remove_small_components(
    label_array_zyx: np.ndarray,
    min_fraction: float,
    fully_connected: bool = True,
    copy: bool = True,
) -> tuple[np.ndarray, int]:
    """Remove the connected components of the foreground (all non-zero labels together) that
    hold fewer voxels than ``min_fraction`` (0 < f <= 1) times the largest one.

    The labels inside a kept component are unchanged; removed voxels become background (0). A
    tumour and its oedema are one foreground component, so a multifocal tumour keeps every
    focus at least that large, while scattered false positives far from it go (nnU-Net's
    post-processing removes small components per region in the same spirit: Isensee et al.,
    Nat. Methods 18, 2021). ``fully_connected`` uses 26-connectivity (else 6). Returns the
    array (a copy unless ``copy=False``) and the number of components removed. Raises
    ValueError for an array that is not an integer (z, y, x) one or a fraction outside (0, 1].
    """
    array = np.asarray(label_array_zyx)
    if array.ndim != 3 or array.dtype.kind not in "uib":
        raise ValueError(
            f"expected an integer (z, y, x) label array, got {array.dtype} {array.shape}"
        )
    if not 0.0 < float(min_fraction) <= 1.0:
        raise ValueError(f"min_fraction must be in (0, 1], got {min_fraction}")
    out = array.copy() if copy else array
    box = _nonzero_box(array)
    if box is None:
        return out, 0
    part = out[box]
    components = sitk.ConnectedComponent(
        sitk.GetImageFromArray((part != 0).view(np.uint8)), fully_connected
    )
    ids = sitk.GetArrayViewFromImage(components)
    sizes = np.bincount(ids.ravel())
    sizes[0] = 0
    small = (sizes > 0) & (sizes < float(min_fraction) * sizes.max())  # per component id
    if small.any():
        part[small[ids]] = 0  # a table look-up per voxel (np.isin compared every id)
    return out, int(np.count_nonzero(small))


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


def small_lesion_warning(
    label_array_zyx: np.ndarray, spacing_zyx: Sequence[float], min_mm3: float, name: str
) -> Optional[str]:
    """A warning when the kept result at a click is non-empty but smaller than ``min_mm3``.

    ``label_array_zyx``: the labels after :func:`keep_component_at_point`; ``spacing_zyx`` in mm;
    ``min_mm3``: the manifest's ``postprocess.min_lesion_mm3`` (the lung-nodule model: 14.1 mm^3,
    a sphere of 3 mm diameter, LIDC-IDRI's smallest annotated nodule size; the smallest expert
    outline among the 814 LIDC crops here is 29 mm^3). Returns None when the result is empty
    (another warning says so) or large enough. A click just outside a nodule otherwise returned a
    confident sliver of a few voxels.
    """
    count = int(np.count_nonzero(label_array_zyx))
    if count == 0:
        return None
    volume_mm3 = count * float(np.prod(np.asarray(spacing_zyx, dtype=np.float64)))
    if volume_mm3 >= min_mm3:
        return None
    diameter = (6.0 * min_mm3 / np.pi) ** (1.0 / 3.0)
    return (
        f"The {name} found at the clicked point is only {volume_mm3:.1f} mm^3 ({count} voxels), "
        f"smaller than a {diameter:.0f} mm {name}; the click may have missed the lesion. Check "
        "it, or click on the lesion's centre."
    )
