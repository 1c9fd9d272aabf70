"""The anatomy check of a liver result (engine/anatomy_check.py): synthetic torsos on axis-aligned,
oblique and flipped grids, the shared CTs, the manifest key, the Predictor and the CLI."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import rotation_matrix
from UNetPlusPlusLib.engine.anatomy_check import (
    check_result,
    dilate_ball1,
    lung_and_body,
    measure_liver,
    open_ball1,
)
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.manifest import ModelManifest
from UNetPlusPlusLib.engine.volume import Grid, Volume
from UNetPlusPlusLib.errors import UNetPlusPlusError

EXAMPLES = Path("liver") / "totalsegmentator-examples"
DIRECTIONS = {
    "axial": np.eye(3),
    "oblique": rotation_matrix((10, -8, 20)),
    "flipped": np.diag([-1.0, -1.0, 1.0])
    @ rotation_matrix((0, 0, 5)),  # as most CTs: x, y reversed
    "upside down": np.diag([1.0, -1.0, -1.0]),
}


def torso(direction: np.ndarray, scale: float = 1.0, lungs: bool = True, spacing: float = 4.0):
    """A CT-like torso (LPS mm, times ``scale``): air outside a 0 HU elliptic body, two lungs
    (-850 HU) at x = +-80 mm from z = 90 to 290 mm, sampled on a grid with ``direction``
    centred at (0, 0, 100) mm. Returns the Volume and a function giving the (z, y, x) mask of
    a ball (centre, radius in mm, times ``scale``) on its grid."""
    half = np.array([190.0, 150.0, 220.0]) * scale
    size = np.ceil(2 * half / spacing).astype(int)
    centre = np.array([0.0, 0.0, 100.0]) * scale
    origin = centre - direction @ ((size - 1) / 2 * spacing)
    grid = Grid(tuple(size), (spacing,) * 3, tuple(origin), direction)
    k, j, i = np.meshgrid(*(np.arange(n) for n in grid.shape_zyx), indexing="ij")
    points = grid.index_to_physical(np.stack([i, j, k], axis=-1).reshape(-1, 3)) / scale
    x, y, z = (points[:, a].reshape(grid.shape_zyx) for a in range(3))
    ct = np.where((x / 150) ** 2 + (y / 110) ** 2 <= 1, 0.0, -1000.0)
    if lungs:
        for side in (-1, 1):
            inside = ((x - side * 80) / 50) ** 2 + (y / 80) ** 2 + ((z - 190) / 100) ** 2 <= 1
            ct[inside] = -850.0
    volume = Volume.on_grid(ct[None].astype(np.float32), grid, ("CT",))

    def ball(centre_mm, radius_mm: float) -> np.ndarray:
        c = np.asarray(centre_mm, dtype=float)
        return (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= radius_mm**2

    return volume, ball


@functools.cache
def torso_on(name: str):
    """:func:`torso` on the grid direction ``name`` of DIRECTIONS, built once per test run."""
    return torso(DIRECTIONS[name])


@pytest.mark.parametrize("shape", [(41, 33, 37), (1, 9, 9), (3, 1, 4), (2, 2, 2)])
def test_the_numpy_ball_morphology_is_simpleitks_bit_for_bit(shape):
    """open_ball1 / dilate_ball1 (numpy, for speed) give SimpleITK's radius-1 ball opening and
    grey dilation exactly, at the image's edges too, on masks from sparse to almost full."""
    rng = np.random.default_rng(sum(shape))
    for share in (0.2, 0.5, 0.8, 0.95):
        mask = rng.random(shape) < share
        image = sitk.GetImageFromArray(mask.astype(np.uint8))
        expected = sitk.GetArrayFromImage(sitk.BinaryMorphologicalOpening(image, [1] * 3)) > 0
        np.testing.assert_array_equal(open_ball1(mask), expected)
        labels = (rng.integers(1, 6, shape) * mask).astype(np.int32)
        expected = sitk.GetArrayFromImage(
            sitk.GrayscaleDilate(sitk.GetImageFromArray(labels), [1] * 3)
        )
        np.testing.assert_array_equal(dilate_ball1(labels), expected)
    # on a real lung mask: lung_and_body's opening of a torso's lung cells
    volume, _ = torso_on("oblique")
    lung, body, fov = lung_and_body(volume, volume.grid)
    assert lung.any() and body.any() and fov.all()
    image = sitk.GetImageFromArray(lung.astype(np.uint8))
    expected = sitk.GetArrayFromImage(sitk.BinaryMorphologicalOpening(image, [1] * 3)) > 0
    np.testing.assert_array_equal(open_ball1(lung), expected)


@pytest.mark.parametrize("shape", [(37, 29, 31), (3, 40, 41), (2, 5, 7)])
def test_the_numpy_bin_shrink_is_simpleitks(shape):
    """_shrunk (numpy bins, session 16) gives sitk.BinShrink's values and geometry on an
    oblique grid, for masks, whole-number HU (int16 and float32) and fractional float64 HU
    (cast to float32 first, as the SimpleITK path did), including axes shorter than a bin."""
    from UNetPlusPlusLib.engine.anatomy_check import STEP_MM, _shrunk

    rng = np.random.default_rng(sum(shape))
    fine = Grid(shape[::-1], (1.4, 1.3, 1.1), (-7.5, 3.25, 11.0), rotation_matrix((20, 10, -35)))
    hu = rng.integers(-1024, 2000, shape)
    for array in (hu > 300, hu.astype(np.int16), hu.astype(np.float32), hu / 7.0):
        got = _shrunk(array, fine)
        image = sitk.GetImageFromArray(np.asarray(array, dtype=np.float32))
        image.SetSpacing(fine.spacing)
        image.SetOrigin(fine.origin)
        image.SetDirection(fine.direction.flatten().tolist())
        factors = [
            max(1, min(n, int(round(STEP_MM / s)))) for s, n in zip(fine.spacing, fine.size_xyz)
        ]
        expected = sitk.BinShrink(image, factors)
        assert got.GetSize() == expected.GetSize()
        np.testing.assert_allclose(got.GetSpacing(), expected.GetSpacing(), rtol=0, atol=1e-12)
        np.testing.assert_allclose(got.GetOrigin(), expected.GetOrigin(), rtol=0, atol=1e-9)
        np.testing.assert_allclose(got.GetDirection(), expected.GetDirection(), atol=1e-12)
        got_values, want = sitk.GetArrayFromImage(got), sitk.GetArrayFromImage(expected)
        if array.dtype == np.float64:  # summation order: within a float32 step
            np.testing.assert_allclose(got_values, want, rtol=1e-6, atol=1e-4)
        else:
            np.testing.assert_array_equal(got_values, want)


LIVER = ((-80.0, 0.0, 60.0), 35.0)  # under the right lung (patient's right: -x in LPS)
HEART = ((5.0, 0.0, 170.0), 28.0)  # between the lungs
MIRRORED = ((80.0, 0.0, 60.0), 35.0)  # the liver's place on the patient's left
PELVIS = ((-60.0, 0.0, -40.0), 35.0)  # far below the lungs (liver-sized: no sliver)


@pytest.mark.parametrize("name", sorted(DIRECTIONS))
def test_a_right_sided_segment_under_the_lung_passes_on_every_direction(name):
    volume, ball = torso_on(name)
    findings = measure_liver(volume, ball(*LIVER))
    assert findings.failed == []
    assert findings.midline_offset_mm == pytest.approx(-80, abs=8)
    assert findings.flanked_share < 0.05 and findings.lung_near_top


@pytest.mark.parametrize("name", sorted(DIRECTIONS))
def test_a_segment_between_the_lungs_is_where_the_heart_is(name):
    volume, ball = torso_on(name)
    findings = measure_liver(volume, ball(*HEART))
    assert "between_lungs" in findings.failed
    assert findings.flanked_share > 0.6


@pytest.mark.parametrize("name", sorted(DIRECTIONS))
def test_a_left_sided_segment_is_on_the_wrong_side(name):
    volume, ball = torso_on(name)
    findings = measure_liver(volume, ball(*MIRRORED))
    assert findings.failed == ["left_side"]
    assert findings.midline_offset_mm == pytest.approx(80, abs=8)


@pytest.mark.parametrize("name", ["axial", "oblique"])
def test_a_segment_far_below_any_lung_is_not_under_the_lungs(name):
    volume, ball = torso_on(name)
    findings = measure_liver(volume, ball(*PELVIS))
    assert findings.failed == ["no_lung_above"]
    assert findings.room_above_mm > 200


def test_a_segment_at_the_top_of_the_image_is_not_judged_by_what_lies_above():
    volume, ball = torso(np.eye(3), lungs=False)
    top = volume.grid.index_to_physical((0, 0, volume.grid.size_xyz[2] - 1))[2]
    findings = measure_liver(volume, ball((-80.0, 0.0, top - 20.0), 35.0))  # cut by the top
    assert findings.room_above_mm < 30 and findings.failed == []
    # a ROI whose top cuts the segment: the image above the ROI is no room above the result
    pelvis = torso_on("axial")[1](*PELVIS)
    assert measure_liver(torso_on("axial")[0], pelvis).failed == ["no_lung_above"]
    roi_top = PELVIS[0][2] + PELVIS[1] - 5.0
    assert measure_liver(torso_on("axial")[0], pelvis, top_mm=roi_top).failed == []


def test_with_a_roi_the_room_above_is_named_the_rois_not_the_images():
    """A ROI's top bounds the region segmented: "ends 80 mm below the top of the image" meant
    the top of the ROI, 255 mm under the image's top here."""
    volume, ball = torso_on("axial")
    labels = ball(*PELVIS).astype(np.uint8)
    roi_top = PELVIS[0][2] + PELVIS[1] + 80.0  # 80 mm above the segment, below the lungs
    warnings, summary = check_result("liver", volume, labels, volume.grid, 1, "liver", roi_top)
    assert summary["failed"] == ["no_lung_above"] and summary["room_above_to"] == "ROI"
    assert summary["room_above_mm"] == pytest.approx(80, abs=2 * 4.0)
    (warning,) = warnings
    assert "mm below the top of the ROI with no lung above it" in warning, warning
    assert "(the ROI may show only the region below the liver" in warning
    assert "image" not in warning
    # no ROI, or one reaching above the image: the image's top, as before
    for top in (None, 1000.0):
        warnings, summary = check_result("liver", volume, labels, volume.grid, 1, "liver", top)
        assert summary["room_above_to"] == "image" and summary["room_above_mm"] > 200
        assert "mm below the top of the image with no lung" in warnings[0]


def test_a_header_only_left_right_flip_is_warned_with_its_orientation_hint():
    volume, ball = torso_on("axial")
    mask = ball(*LIVER)
    flipped = volume.direction.copy()
    flipped[:, 0] *= -1  # the same voxels, the header says left is right
    wrong = Volume(volume.array, volume.spacing, volume.origin, flipped)
    warnings, summary = check_result("liver", wrong, mask, wrong.grid, 1, "liver")
    assert summary["failed"] == ["left_side"] and summary["passed"] is False
    assert len(warnings) == 1
    assert "left-right orientation is wrong" in warnings[0] and "'liver'" in warnings[0]
    assert check_result("liver", volume, mask, volume.grid, 1, "liver")[0] == []


def test_the_mask_may_lie_on_another_grid_than_the_image():
    volume, ball = torso_on("axial")
    labels = ball(*HEART).astype(np.uint8) * 2
    part = volume.with_array(volume.array[:, 30:, :, :])  # an image region read (ROI + context)
    origin = volume.grid.index_to_physical((0, 0, 30))
    part = Volume(part.array, part.spacing, tuple(origin), part.direction)
    warnings, summary = check_result("liver", part, labels, volume.grid, 2, "liver")
    assert "between_lungs" in summary["failed"] and "where the heart is" in warnings[0]
    with pytest.raises(ValueError, match="unknown anatomy"):
        check_result("spleen", volume, labels, volume.grid, 2, "spleen")


# ---------------------------------------------------------------------------- the real CTs
def _label(path: Path, values) -> np.ndarray:
    return np.isin(sitk.GetArrayFromImage(sitk.ReadImage(str(path))), values)


@pytest.mark.parametrize(
    "image, label, values",
    [
        ("example_ct.nii.gz", "example_seg_fast_force_split.nii.gz", [5]),
        ("example_ct_sm.nii.gz", "example_seg.nii.gz", [5]),
        ("../lits-partial/liver_0_ct.nii.gz", "../lits-partial/liver_0_label.nii.gz", [1, 2]),
        ("../lits-partial/liver_1_ct.nii.gz", "../lits-partial/liver_1_label.nii.gz", [1, 2]),
        (
            "../totalsegmentator-dataset-s0009/ct.nii.gz",
            "../totalsegmentator-dataset-s0009/liver.nii.gz",
            [1],
        ),
    ],
)
def test_reference_livers_of_the_shared_data_pass(shared_data, image, label, values):
    folder = shared_data / EXAMPLES
    volume = read_volume([folder / image], ["CT"])
    findings = measure_liver(volume, _label(folder / label, values))
    assert findings.failed == [], findings


def test_example_ct_with_a_flipped_left_right_header_is_warned(shared_data):
    folder = shared_data / EXAMPLES
    volume = read_volume([folder / "example_ct.nii.gz"], ["CT"])
    direction = volume.direction.copy()
    direction[:, 0] *= -1
    flipped = Volume(volume.array, volume.spacing, volume.origin, direction)
    mask = _label(folder / "example_seg_fast_force_split.nii.gz", [5])
    assert measure_liver(flipped, mask).failed == ["left_side"]


def test_the_heart_of_pulm_ct_cropped_is_warned_through_the_predictor(shared_data):
    from UNetPlusPlusLib.engine.predictor import Predictor

    volume = read_volume([shared_data / EXAMPLES / "pulm_ct_cropped.nii.gz"], ["CT"])
    predictor = Predictor.from_task("liver", device="cpu", threads=2)
    result = predictor.segment(volume, depth=1)  # the cheapest head finds the heart too
    assert result.labels.array.any()
    # the heart: between the lungs, on slices full of lung (liver_lung_level.py), on the
    # skeleton's midline (liver_side.py)
    assert result.info["anatomy"]["failed"] == ["between_lungs", "in_chest", "on_midline"]
    assert [w for w in result.info["warnings"] if "where the heart is" in w]


def test_the_region_below_the_liver_is_warned(shared_data):
    image = sitk.ReadImage(str(shared_data / EXAMPLES / "example_ct.nii.gz"))[:, :, :60]
    from UNetPlusPlusLib.engine.image_read import volume_from_sitk

    volume = volume_from_sitk([image], ["CT"])
    # where the shipped model put 66 ml of "liver" (tester 6): right lower abdomen, slices 20-40
    mask = np.zeros(volume.shape_zyx, dtype=bool)
    mask[20:40, 20:40, 90:110] = True
    findings = measure_liver(volume, mask)
    assert findings.failed == ["no_lung_above"]
    # the check's own coarse-grid volume is named so: a reader took "segment_ml" for the
    # result's volume (tester 12: 1076 ml against 1031.6 ml)
    assert "segment_ml" not in vars(findings)
    assert abs(findings.coarse_segment_ml - 20**3 * 27 / 1000) < 0.25 * 216


# ---------------------------------------------------------------------------- manifest, CLI
def _anatomy_model(sphere_model: Path, folder: Path, anatomy, spacing_mm: float = 2.0) -> Path:
    """The sphere model with ``inference.anatomy``; at ``spacing_mm`` 4 its grid has 8x fewer
    voxels than the fixture's 2 mm one (helpers.sphere_model_copy)."""
    from helpers import sphere_model_copy

    return sphere_model_copy(sphere_model, folder, spacing_mm, anatomy=anatomy)


def test_the_manifest_key_is_validated_and_optional(sphere_model, tmp_path):
    assert "anatomy" not in ModelManifest.load(sphere_model).inference  # older manifests load
    assert ModelManifest.load(_anatomy_model(sphere_model, tmp_path, "liver")).inference == {
        "anatomy": "liver"
    }
    with pytest.raises(UNetPlusPlusError, match="inference.anatomy"):
        ModelManifest.load(_anatomy_model(sphere_model, tmp_path, "brain"))
    for task in ("brain-tumor", "lung-nodule"):
        from UNetPlusPlusLib.engine.registry import find_model

        assert "anatomy" not in find_model(task).inference
    from UNetPlusPlusLib.engine.registry import find_model

    assert find_model("liver").inference["anatomy"] == "liver"


def test_the_cli_warns_once_and_qualifies_the_heads_agreement(sphere_model, tmp_path, capsys):
    from UNetPlusPlusLib.cli import main
    from UNetPlusPlusLib.engine.volume import volume_to_sitk

    manifest = _anatomy_model(sphere_model, tmp_path, "liver", spacing_mm=4.0)
    volume, ball = torso(np.eye(3), scale=0.5, spacing=2.0)
    # the model's 300 HU ball, where the liver lies in situs inversus or a flipped header
    ct = np.where(ball(*MIRRORED), 300.0, volume.array[0]).astype(np.float32)
    sitk.WriteImage(volume_to_sitk(volume.with_array(ct[None])), str(tmp_path / "chest.nrrd"))
    args = ["segment", str(tmp_path / "chest.nrrd"), "--model", str(manifest), "--depth", "2"]
    code = main(args + ["-o", str(tmp_path / "x.nrrd"), "--disagreement", str(tmp_path / "d.nrrd")])
    out, err = capsys.readouterr()
    assert code == 0
    assert err.count("warning: The 'liver' segment is not where a liver lies") == 1, err
    assert "left-right orientation is wrong" in err
    assert "not a sign of a right result" in out


def test_serve_warns_on_every_result_but_measures_the_lungs_once(
    sphere_model, tmp_path, monkeypatch
):
    """`unetpp serve` on one volume: each result carries the anatomy warning (the Slicer module
    shows each result's warnings, and another depth is another segment), but the lung and body
    masks, which depend on the volume only, are measured once per model and volume (the warm
    cache's memo); a new cache measures again, and finds the same."""
    from helpers import sphere_model_copy
    from UNetPlusPlusLib.cli import build_parser
    from UNetPlusPlusLib.cli_segment import run_segment
    from UNetPlusPlusLib.engine import anatomy_check
    from UNetPlusPlusLib.engine.volume import volume_to_sitk
    from UNetPlusPlusLib.warm_cache import WarmCache

    # on the whole grid: the test needs two depths whose segments differ, and with the body
    # crop (engine/body_crop.py: the tiles lie elsewhere) both lie 38 mm left of the midline
    manifest = sphere_model_copy(sphere_model, tmp_path, 2.0, anatomy="liver", crop_body=False)
    volume, ball = torso(np.eye(3), scale=0.5, spacing=2.0)
    ct = np.where(ball(*MIRRORED), 300.0, volume.array[0]).astype(np.float32)
    sitk.WriteImage(volume_to_sitk(volume.with_array(ct[None])), str(tmp_path / "chest.nrrd"))
    measured = []
    original = anatomy_check.lung_and_body
    monkeypatch.setattr(
        anatomy_check, "lung_and_body", lambda *a: measured.append(1) or original(*a)
    )

    def request(cache, depth):
        argv = ["segment", str(tmp_path / "chest.nrrd"), "--model", str(manifest), "--depth"]
        argv += [depth, "--threads", "1", "--labelmap", str(tmp_path / f"l{depth}.nrrd")]
        summary = run_segment(build_parser().parse_args(argv), lambda *a: None, cache=cache)
        return [w for w in summary["warnings"] if "is not where a liver lies" in w]

    cache = WarmCache()
    first, second = request(cache, "1"), request(cache, "2")
    assert len(first) == len(second) == 1  # on each result, once, measured on that result:
    assert first != second  # depth 1's segment lies 13 mm left of the midline, depth 2's 26 mm
    assert len(measured) == 1  # measured for the first request only
    assert request(WarmCache(), "2") == second and len(measured) == 2


def test_a_side_that_runs_out_of_the_image_before_any_lung_is_unknown():
    from UNetPlusPlusLib.engine.anatomy_check import _flanked_share

    segment = np.zeros((1, 2, 20), dtype=bool)
    segment[0, :, 0:4] = True  # at the grid's right edge (x = 0)
    lung = np.zeros_like(segment)
    lung[0, :, 6] = True  # lung on its left only
    fov = np.ones_like(segment)
    assert _flanked_share(segment, lung, fov) is None  # the right side cannot be seen
    segment = np.roll(segment, 8, axis=2)  # now x = 8..11: right side inside, no lung
    lung = np.roll(lung, 8, axis=2)
    assert _flanked_share(segment, lung, fov) == 0.0
    lung[0, :, 5] = True  # lung within reach on the right too
    assert _flanked_share(segment, lung, fov) == 1.0


def test_the_cli_with_a_roi_names_the_rois_top(sphere_model, tmp_path, capsys):
    """`segment --roi` whose top lies 42 mm above the segment, in a CT without lungs: the
    warning names the top of the ROI, the region segmented, not the image's (142 mm up)."""
    from UNetPlusPlusLib.cli import main
    from UNetPlusPlusLib.engine.volume import volume_to_sitk

    manifest = _anatomy_model(sphere_model, tmp_path, "liver", spacing_mm=4.0)
    volume, ball = torso(np.eye(3), scale=0.5, lungs=False, spacing=2.0)  # top: z = 160 mm
    ct = np.where(ball((-60.0, 0.0, 0.0), 36.0), 300.0, volume.array[0]).astype(np.float32)
    sitk.WriteImage(volume_to_sitk(volume.with_array(ct[None])), str(tmp_path / "ct.nrrd"))
    args = ["segment", str(tmp_path / "ct.nrrd"), "--model", str(manifest), "--depth", "2"]
    roi = ["--lps", "--roi", "-55", "-25", "-30", "-5", "25", "60"]  # the ball: z -18 to 18
    for extra, region in (([], "image"), (roi, "ROI")):
        assert main(args + extra + ["-o", str(tmp_path / "x.nrrd"), "--overwrite"]) == 0
        err = capsys.readouterr().err
        assert err.count("warning: The 'liver' segment is not where a liver lies") == 1, err
        assert f"mm below the top of the {region} with no lung above it" in err, err


def test_the_orientation_and_liver_checks_measure_the_coarse_ct_once_per_memo(monkeypatch):
    """With one memo for the volume (the CLI's warm cache), the front-back check before the
    network and the liver check after it share one coarse CT (``coarse_ct_once``): measured
    once, with the same findings as each check measuring alone."""
    from UNetPlusPlusLib.engine import anatomy_check
    from UNetPlusPlusLib.engine.orientation_check import measure_ap

    volume, ball = torso_on("flipped")
    measured = []
    original = anatomy_check._field_of_view
    monkeypatch.setattr(
        anatomy_check, "_field_of_view", lambda *a: measured.append(1) or original(*a)
    )
    alone = (measure_ap(volume), measure_liver(volume, ball(*LIVER)))
    assert len(measured) == 2
    memo: dict = {}
    shared = (measure_ap(volume, memo), measure_liver(volume, ball(*LIVER), memo=memo))
    assert len(measured) == 3 and shared == alone
    assert alone[1].failed == [] and not alone[0].flipped
