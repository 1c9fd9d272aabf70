"""The clicked points and the ROI of `unetpp segment`: RAS to LPS, the checks that a click or a
box lies on the image, and one label volume from the results of several points (one segment
per point)."""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

from .errors import UNetPlusPlusError


def _on_image(grid, point) -> bool:
    """True when ``point`` (LPS mm) lies within half a voxel of the image's outer centres."""
    import numpy as np

    index = grid.physical_to_index(np.asarray(point, dtype=np.float64))
    size = np.asarray(grid.size_xyz, dtype=np.float64)
    return bool(np.all(index >= -0.5) and np.all(index <= size - 0.5))


def _mm(value: float) -> str:
    """A coordinate in mm to 0.1 mm, never "-0.0" (a voxel centre at -0.04 mm was "-0.0")."""
    return f"{round(float(value), 1) + 0.0:.1f}"


def check_point_on_image(
    grid,
    point,
    given,
    frame: str,
    number: int,
    where: Optional[str] = None,
    lps_option: bool = False,
) -> None:
    """Refuse a click (``point`` in LPS mm; ``given`` as typed, in ``frame``) that lies outside
    the image's voxels (half a voxel beyond the outer centres at most). The engine's message
    named the click's box in LPS, also for a click typed in RAS. ``where`` names the click
    (default "Point <number> (<given>) mm <frame>"). ``lps_option``: the command line's
    ``--lps`` chose ``frame``; when the click read in the other frame lies on the image, the
    message says so and how to give it (LPS numbers typed as RAS, tester 26). Raises
    UNetPlusPlusError."""
    import numpy as np

    if _on_image(grid, point):
        return
    size = np.asarray(grid.size_xyz, dtype=np.float64)
    typed = ", ".join(f"{float(v):g}" for v in given)
    corners = [grid.index_to_physical(c) for c in ((0, 0, 0), tuple(int(n) - 1 for n in size))]
    if frame == "RAS":
        corners = [ras_to_lps(c) for c in corners]  # the same flip maps LPS back to RAS
    span = " to ".join("(" + ", ".join(_mm(v) for v in c) + ")" for c in corners)
    where = where or f"Point {number} ({typed}) mm {frame}"
    hint = ""
    if lps_option and _on_image(grid, ras_to_lps(point)):  # x and y negated: the other frame
        hint = (
            " Read as LPS (ITK's convention) it lies on the image: if these are LPS "
            "coordinates, add --lps."
            if frame == "RAS"
            else " Read as RAS (as Slicer shows them) it lies on the image: if these are RAS "
            "coordinates, leave out --lps."
        )
    raise UNetPlusPlusError(
        f"{where} lies outside the image, whose voxel centres run "
        f"from {span} mm {frame}; click on the image.{hint}"
    )


def check_roi_on_image(
    grid, roi, given: Sequence[float], frame: str, name: str = "The region of interest"
) -> None:
    """Refuse a ``--roi`` box (``roi``: a ``volume.Box`` in LPS mm; ``given``: its six numbers as
    typed, in ``frame``, "RAS" or "LPS") that holds no voxel centre of the image on ``grid``
    (off the image, or between two voxel centres): the message names the user's own box
    (``name``, e.g. "ROI 'R'" for the Slicer module's node) and the image's extent or voxel
    size, in ``frame``. The engine's
    message named the box enlarged by a tile of context, in LPS, also for a box typed in RAS
    (tester 12). Raises UNetPlusPlusError."""
    import numpy as np

    index = grid.physical_to_index(roi.corner_points())
    last = np.asarray(grid.size_xyz) - 1
    typed = [f"{float(v):g}" for v in given]
    if not np.any(index.max(axis=0) < -1e-6) and not np.any(index.min(axis=0) > last + 1e-6):
        # on the image, but between two voxel centres: the engine said so in LPS with the
        # box's numbers changed ("from (99.99, -200, 200)" for a box typed as -100 100 ...)
        if np.any(np.ceil(index.min(axis=0) - 1e-6) > np.floor(index.max(axis=0) + 1e-6)):
            spacing = " x ".join(f"{v:.3g}" for v in grid.spacing)
            raise UNetPlusPlusError(
                f"{name} from ({', '.join(typed[:3])}) to "
                f"({', '.join(typed[3:])}) mm {frame} holds no voxel centre: it is smaller "
                f"than the voxels ({spacing} mm). Draw a box that covers at least one voxel "
                "along each axis."
            )
        return
    corners = grid.corner_points()
    if frame == "RAS":
        corners = corners * np.array([-1.0, -1.0, 1.0])
    low, high = corners.min(axis=0), corners.max(axis=0)
    extent = ", ".join(f"{a} {_mm(lo)} to {_mm(hi)}" for a, lo, hi in zip("xyz", low, high))
    raise UNetPlusPlusError(
        f"{name} from ({', '.join(typed[:3])}) to ({', '.join(typed[3:])}) mm "
        f"{frame} lies outside the image, whose voxel centres span {extent} mm {frame}; "
        "place the box on the image."
    )


#: How a point without a name is called in messages (the engine's words).
CLICKED_POINT = "The clicked point"


def typed_point(typed: Sequence[float], number: int, count: int, frame: str) -> str:
    """A ``--point`` without ``--point-name`` as every refusal of it names it: "The clicked
    point (-516, 0, 0) mm RAS" when it is the only one, "Point 2 of 3 (...) mm RAS" among
    ``count``; ``typed`` as typed (``:g``), ``number`` from 1."""
    which = f"Point {number} of {count}" if count > 1 else CLICKED_POINT
    return f"{which} ({', '.join(f'{float(v):g}' for v in typed)}) mm {frame}"


def point_where(point: Sequence[float], name: Optional[str] = None, frame: str = "RAS") -> str:
    """A point as messages name it: ``name`` (default "The clicked point") and its position
    in ``frame`` at 0.1 mm, e.g. "Point 'F-2' (2 of 3) at (-56.0, -4.0, 30.0) mm RAS" (the
    Slicer module's in-process and background runs, ``--point-name``)."""
    coordinates = ", ".join(f"{float(v) + 0.0:.1f}" for v in point)
    return f"{name or CLICKED_POINT} at ({coordinates}) mm {frame}"


def ras_to_lps(point: Sequence[float]) -> tuple:
    """RAS and LPS differ by the sign of the first two axes."""
    return (-float(point[0]), -float(point[1]), float(point[2]))


def combine_point_results(results: list, warnings: Optional[list] = None):
    """One label volume from one result per point (``SegmentationResult``s whose labels share
    one grid): point k's labels become "<name> k".

    Model label v of point k (from 1) gets value (k - 1) * L + v (L labels); where segments of
    two points overlap, the earlier point keeps the voxel (a labelmap holds one label each).
    ``warnings``: a list that gets one warning per point that lost more than half of its
    outline (all of it: two clicks on one lesion) to earlier points, naming both points.
    Raises UNetPlusPlusError for more than 255 segments.
    """
    import numpy as np

    first = results[0].labels
    specs = list(first.labels)
    count = len(specs) * len(results)
    if count > 255:
        raise UNetPlusPlusError(f"Too many points: {len(results)} points give {count} segments.")
    array = np.zeros_like(first.array, dtype=np.uint8)
    labels = []
    for k, result in enumerate(results, start=1):
        outline = result.labels.array != 0
        lost = outline & (array != 0)
        if warnings is not None and 2 * int(np.count_nonzero(lost)) > np.count_nonzero(outline):
            owner = 1 + (int(np.bincount(array[lost]).argmax()) - 1) // len(specs)
            whole = not np.any(outline & ~lost)
            warnings.append(
                f"Point {k} of {len(results)} lies on the lesion of point {owner}: "
                + (f"its segment (ending in ' {k}') is empty" if whole else
                   f"most of its outline stays in the segment ending in ' {owner}'")
                + " (a voxel belongs to the first point whose outline holds it). "
                "Give one point per lesion."
            )  # fmt: skip
        for spec in specs:
            value = (k - 1) * len(specs) + spec.value
            free = (result.labels.array == spec.value) & (array == 0)
            array[free] = value
            labels.append(dataclasses.replace(spec, value=value, name=f"{spec.name} {k}"))
    return dataclasses.replace(first, array=array, labels=labels)
