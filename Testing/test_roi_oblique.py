"""A ROI on an oblique image restricts the result to the ROI itself (tester 10).

A ROI is an axis-aligned box in patient space (RAS on the command line, LPS in the engine). On
an oblique image its corners were mapped to index space and the result kept everything in their
bounding box there, a larger, rotated region: on the example CT resampled onto a grid rotated by
30 and 20 degrees, `--roi -200 -200 0 200 200 400` gave 1024.4 ml of liver reaching 59 mm
beyond the ROI in y (352.6 ml on the axis-aligned CT), while the README says everything outside
the ROI stays background.
"""

from __future__ import annotations

import numpy as np
from helpers import make_sphere_image, rotation_matrix
from UNetPlusPlusLib.engine.image_read import volume_from_sitk
from UNetPlusPlusLib.engine.volume import Box


def _centres(labels) -> np.ndarray:
    """LPS centres (n, 3) of the labelled voxels of a LabelVolume."""
    zyx = np.argwhere(labels.array > 0)
    ijk = zyx[:, ::-1].astype(float)
    matrix = np.asarray(labels.direction) @ np.diag(labels.spacing)
    return ijk @ matrix.T + np.asarray(labels.origin)


def test_a_roi_on_an_oblique_image_leaves_nothing_outside_the_box(sphere_predictor):
    direction = rotation_matrix((0, 0, 40))  # 40 degrees about z
    image = make_sphere_image((40, 40, 24), radius_mm=14, direction=direction, noise=5)
    volume = volume_from_sitk(image)
    centre = np.asarray(image.TransformContinuousIndexToPhysicalPoint((19.5, 19.5, 11.5)))
    whole = sphere_predictor.segment(volume, depth=4).labels
    assert (whole.array > 0).sum() > 500
    roi = Box(tuple(centre - (20, 20, 20)), tuple(centre + (0, 20, 20)))  # cuts the ball at x
    result = sphere_predictor.segment(volume, depth=4, roi=roi).labels
    assert result.array.shape == whole.array.shape  # still on the input grid
    inside = _centres(result)
    assert len(inside) > 100
    # a voxel counts as in the ROI when its footprint meets it (as on axis-aligned grids):
    # its centre at most half its extent along each patient axis outside the box
    tolerance = 0.5 * np.abs(np.asarray(result.direction) @ np.diag(result.spacing)).sum(axis=1)
    assert np.all(inside >= roi.lower - tolerance) and np.all(inside <= roi.upper + tolerance)
    # and what lies in the box is kept: the whole-volume result there, give or take the border
    kept = _centres(whole)
    in_box = np.all((kept >= roi.lower - tolerance) & (kept <= roi.upper + tolerance), axis=1)
    assert abs(len(inside) - int(in_box.sum())) <= 0.1 * in_box.sum()
