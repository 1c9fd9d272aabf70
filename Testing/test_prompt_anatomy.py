"""The liver model's anatomy checks on ROI and click results (engine/prompt_anatomy.py): judged
against the whole image's anatomy, in the engine (whole volume), the CLI (a ROI's region read)
and Slicer (a ROI node, a click), on the demo CT, as stored and with an oblique direction.

Tester 20: a ROI or a click on the demo CT's spleen gave "liver 154 ml" / "142.6 ml" in silence;
a ROI over the whole image lost the "cut at the top of the image" warning."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from helpers import rotation_matrix
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.prompt_anatomy import (
    PROMPT_LEFT_MM,
    on_image,
    slices_box,
    strided_ct_volume,
)
from UNetPlusPlusLib.engine.volume import Box, Grid, Volume

DEMO_CT = "Resources/Examples/example_ct.nii.gz"
#: LPS (mm) on the demo CT; TotalSegmentator's labels (shared data): the spleen (label 1) and
#: the liver (label 5, centre x -66.6 mm, the body's midline near x +1.4 mm, the liver's
#: left lobe up to x +67 mm).
SPLEEN_ROI = Box((50.0, -190.0, 340.0), (170.0, -60.0, 427.0))  # tester 20's, in LPS
SPLEEN_POINT = (112.9, -122.7, 394.8)
LIVER_POINT = (-68.0, -185.3, 391.3)  # near the liver's centre
LOBE_POINT = (21.96, -236.32, 400.30)  # the left lobe, 20 mm left of the midline
LOWER_LIVER_ROI = Box((-140.0, -275.0, 295.0), (70.0, -80.0, 380.0))  # top 47 mm below the image's
LEFT_LOBE_ROI = Box((-18.6, -275.0, 295.0), (70.0, -80.0, 427.0))  # x > the midline - 20 mm
WHOLE_ROI = Box((-200.0, -320.0, 80.0), (200.0, 0.0, 440.0))
#: An oblique direction about all three axes (about the image's centre).
OBLIQUE = (3.0, -3.0, 10.0)
NOT_LIVER = "segment is not where a liver lies"
LEFT = "left of the body's midline"
CUT_TOP = "cut by the edge of the image at its top (head end)"


@pytest.fixture(scope="module")
def predictor():
    from UNetPlusPlusLib.engine.predictor import Predictor

    return Predictor.from_task("liver", device="cpu", threads=2)


@pytest.fixture(scope="module")
def demo(repo_root):
    return read_volume(repo_root / DEMO_CT)


def _turned(volume: Volume, angles) -> tuple[Volume, callable]:
    """The volume with its direction turned by ``angles`` (degrees, helpers.rotation_matrix)
    about its centre (same voxels), and the map of an LPS point of the anatomy onto it."""
    turn = rotation_matrix(angles)
    centre = volume.grid.index_to_physical((np.array(volume.grid.size_xyz) - 1) / 2.0)
    origin = centre + turn @ (np.asarray(volume.origin) - centre)
    turned = Volume(volume.array, volume.spacing, tuple(origin), turn @ volume.direction)
    return turned, lambda point: tuple(centre + turn @ (np.asarray(point, float) - centre))


def _box_on(box: Box, move) -> Box:
    """The LPS box holding ``box``'s corners moved by ``move``."""
    ends = list(zip(box.lower, box.upper))
    corners = np.array([move(corner) for corner in itertools.product(*ends)])
    return Box(tuple(corners.min(axis=0)), tuple(corners.max(axis=0)))


def _run(predictor, demo, direction: str, roi=None, point=None):
    volume, move = (demo, lambda p: tuple(p)) if direction == "stored" else _turned(demo, OBLIQUE)
    return predictor.segment(
        volume,
        roi=None if roi is None else _box_on(roi, move),
        point=None if point is None else move(point),
        crop_output=point is not None,  # as the CLI's single click
    )


@pytest.mark.parametrize("direction", ["stored", "oblique"])
@pytest.mark.parametrize("prompt", ["roi", "point"])
def test_a_roi_or_a_click_on_the_spleen_is_warned_left_of_the_midline(
    predictor, demo, direction, prompt
):
    kind = {"roi": {"roi": SPLEEN_ROI}, "point": {"point": SPLEEN_POINT}}[prompt]
    result = _run(predictor, demo, direction, **kind)
    warned = [w for w in result.info["warnings"] if NOT_LIVER in w]
    assert len(warned) == 1 and LEFT in warned[0], result.info["warnings"]
    anatomy = result.info["anatomy"]
    assert "left_side" in anatomy["failed"] and not anatomy["passed"]
    assert anatomy["midline_offset_mm"] > 70.0  # the spleen: 95-97 mm left, as stored
    assert 100.0 < result.labels.array.astype(bool).sum() * 27 / 1000 < 200.0  # ml, 3 mm voxels


@pytest.mark.parametrize(
    "direction, kind",
    [
        ("stored", {"roi": LOWER_LIVER_ROI}),
        ("stored", {"roi": LEFT_LOBE_ROI}),
        ("stored", {"point": LIVER_POINT}),
        ("stored", {"point": LOBE_POINT}),
        ("oblique", {"point": LIVER_POINT}),
        ("oblique", {"roi": LEFT_LOBE_ROI}),
    ],
)
def test_rois_and_clicks_on_the_real_liver_get_no_anatomy_warning(predictor, demo, direction, kind):
    """The liver, all of it or a part a ROI holds: no anatomy warning; the image-edge cut only
    at the image's top (the demo CT's top slice cuts the liver), never at a ROI's face."""
    result = _run(predictor, demo, direction, **kind)
    warnings = result.info["warnings"]
    assert not [w for w in warnings if NOT_LIVER in w], warnings
    assert result.info["anatomy"]["passed"] and result.info["anatomy"]["failed"] == []
    cut = [w for w in warnings if "cut by the edge of the image" in w]
    if kind.get("roi") is LOWER_LIVER_ROI:  # its top 47 mm below the image's: the ROI's face
        assert cut == [] and any("edge of the region of interest" in w for w in warnings)
    else:
        assert len(cut) == 1 and CUT_TOP in cut[0], warnings
    if kind.get("roi") is LEFT_LOBE_ROI and direction == "stored":  # left of it, within margin
        assert 0.0 < result.info["anatomy"]["midline_offset_mm"] <= PROMPT_LEFT_MM


def test_a_roi_over_the_whole_image_is_warned_as_the_plain_run(predictor, demo):
    plain = predictor.segment(demo)
    boxed = predictor.segment(demo, roi=WHOLE_ROI)
    assert np.array_equal(plain.labels.array, boxed.labels.array)
    assert [w for w in boxed.info["warnings"] if CUT_TOP in w] == [
        w for w in plain.info["warnings"] if CUT_TOP in w
    ]
    assert len([w for w in plain.info["warnings"] if CUT_TOP in w]) == 1
    assert boxed.info["anatomy"]["edge"] == plain.info["anatomy"]["edge"]


def test_the_cli_judges_a_rois_region_read_against_the_whole_image(repo_root, tmp_path, capsys):
    """`segment --roi` reads only the ROI's region (region_read.py): the anatomy is the whole
    image's (the streamed ~2 mm CT), so the spleen is warned and a ROI over the whole image
    keeps the cut at the top (tester 20's commands, in RAS)."""
    from UNetPlusPlusLib.cli import main

    ct = str(repo_root / DEMO_CT)
    out = ["-o", str(tmp_path / "r.seg.nrrd"), "--overwrite"]
    spleen = ["--roi", "-170", "60", "340", "-50", "190", "427"]
    assert main(["segment", ct, "--task", "liver", *spleen, *out]) == 0
    err = capsys.readouterr().err
    assert err.count(NOT_LIVER) == 1 and LEFT in err, err
    whole = ["--roi", "-200", "0", "80", "200", "320", "440"]
    assert main(["segment", ct, "--task", "liver", *whole, *out]) == 0
    err = capsys.readouterr().err
    assert err.count(CUT_TOP) == 1 and NOT_LIVER not in err, err
    assert (
        main(["segment", ct, "--task", "liver", "--point", "-112.9", "122.7", "394.8", *out]) == 0
    )
    err = capsys.readouterr().err
    assert err.count(NOT_LIVER) == 1 and LEFT in err, err


def test_slicer_roi_node_and_click_on_the_spleen_are_warned(demo):
    slicer = pytest.importorskip("slicer")
    if not hasattr(slicer, "vtkMRMLScene"):
        pytest.skip("slicer-core (MRML) is not installed")
    from UNetPlusPlusLib.adapter import geometry
    from UNetPlusPlusLib.adapter.logic import SegmentationLogic

    scene = slicer.vtkMRMLScene()
    node = geometry.volume_node_from_volume(scene, demo, "CT")
    roi = slicer.vtkMRMLMarkupsROINode()
    scene.AddNode(roi)
    roi.SetCenter(*geometry.lps_to_ras((SPLEEN_ROI.lower + SPLEEN_ROI.upper) / 2.0))
    roi.SetSize(*(SPLEEN_ROI.upper - SPLEEN_ROI.lower))
    logic = SegmentationLogic()
    logic.segment([node], "liver", device="cpu", roi_node=roi)
    assert len([w for w in logic.warnings if NOT_LIVER in w and LEFT in w]) == 1, logic.warnings
    logic.segment([node], "liver", device="cpu", point_ras=geometry.lps_to_ras(SPLEEN_POINT))
    assert len([w for w in logic.warnings if NOT_LIVER in w and LEFT in w]) == 1, logic.warnings


def test_the_strided_ct_sits_where_the_images_voxels_do():
    direction = rotation_matrix((12.0, -8.0, 25.0))
    full = Grid((9, 7, 5), (0.7, 0.9, 2.5), (3.0, -4.0, 5.0), direction)
    array = np.arange(5 * 7 * 9, dtype=np.float32).reshape(5, 7, 9)
    strided = strided_ct_volume(array[::1, ::2, ::2], full)  # fine_steps: x 2, y 2, z 1
    assert strided.shape_zyx == (5, 4, 5) and strided.spacing == (1.4, 1.8, 2.5)
    for index in [(0, 0, 0), (4, 3, 2), (2, 1, 4)]:  # (x, y, z) on the strided grid
        physical = strided.grid.index_to_physical(index)
        assert np.allclose(physical, full.index_to_physical((index[0] * 2, index[1] * 2, index[2])))


def test_a_clicks_crop_is_placed_on_the_whole_image_and_boxed():
    direction = rotation_matrix((12.0, -8.0, 25.0))
    image = Grid((10, 8, 6), (1.0, 2.0, 3.0), (5.0, -7.0, 11.0), direction)
    crop = np.ones((2, 3, 4), dtype=np.uint8)  # (z, y, x) from index (x 5, y 4, z 1)
    crop_grid = Grid((4, 3, 2), image.spacing, tuple(image.index_to_physical((5, 4, 1))), direction)
    placed = on_image(crop, crop_grid, image)
    assert placed.shape == (6, 8, 10) and placed.sum() == crop.size
    assert placed[1:3, 4:7, 5:9].all()
    box = slices_box(image, (slice(1, 3), slice(4, 7), slice(5, 9)))
    corners = [image.index_to_physical((x, y, z)) for x in (5, 8) for y in (4, 6) for z in (1, 2)]
    assert np.allclose(box.lower, np.min(corners, axis=0))
    assert np.allclose(box.upper, np.max(corners, axis=0))


def test_a_click_of_a_model_without_an_anatomy_key_is_not_checked(sphere_predictor):
    """No ``inference.anatomy`` (the nodule model): the click's labels are not copied onto the
    whole image for a check, and no ``anatomy`` summary is added."""
    from helpers import make_sphere_image
    from UNetPlusPlusLib.engine.image_read import volume_from_sitk

    volume = volume_from_sitk([make_sphere_image((32, 32, 32), (2.0, 2.0, 2.0))])
    centre = volume.grid.index_to_physical((15.5, 15.5, 15.5))
    result = sphere_predictor.segment(volume, point=tuple(centre), crop_output=True)
    assert result.labels.array.any() and "anatomy" not in result.info
