"""A click outside the image is one error naming the click as typed, in its frame (tester 8).

It was "The region of interest from (...) mm (LPS) lies outside the volume", an LPS box the
user never gave, also for a click typed in RAS.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import rotation_matrix
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.cli_points import check_point_on_image, check_roi_on_image, ras_to_lps
from UNetPlusPlusLib.engine.volume import Box, Grid
from UNetPlusPlusLib.errors import UNetPlusPlusError

DIRECTION = rotation_matrix((20, -10, 35))
GRID = Grid((40, 30, 20), (0.7, 0.8, 1.25), (-12.0, 30.0, 7.0), DIRECTION)


def test_points_on_the_oblique_image_pass_and_beyond_it_are_refused():
    for index in [(0, 0, 0), (39, 29, 19), (19.5, 14.5, 9.5), (-0.4, 29.4, 0)]:
        point = GRID.index_to_physical(index)
        check_point_on_image(GRID, point, ras_to_lps(point), "RAS", 1)
    outside = GRID.index_to_physical((45, 10, 10))
    with pytest.raises(UNetPlusPlusError, match=r"Point 2 \(.*\) mm RAS lies outside the image"):
        check_point_on_image(GRID, outside, ras_to_lps(outside), "RAS", 2)


def test_the_cli_names_the_typed_click_in_one_line(tmp_path, capfd):
    rng = np.random.default_rng(0)
    lung = rng.normal(-850, 40, (20, 30, 40)).astype(np.int16)
    lung[8:12, 12:18, 16:24] = 30  # a nodule
    image = sitk.GetImageFromArray(lung)
    image.SetSpacing(GRID.spacing)
    image.SetOrigin(GRID.origin)
    image.SetDirection(DIRECTION.flatten().tolist())
    path = tmp_path / "ct.nrrd"
    sitk.WriteImage(image, str(path))
    out = tmp_path / "out.seg.nrrd"
    code = main(["segment", str(path), "--task", "lung-nodule", "--point", "-516", "0", "0",
                 "-o", str(out), "--quiet"])  # fmt: skip
    err = capfd.readouterr().err
    assert code == 2 and err.count("error:") == 1 and "Traceback" not in err
    # one point is "The clicked point", as the air check and docs/CLI.md name it (not "Point 1")
    assert "error: The clicked point (-516, 0, 0) mm RAS lies outside the image" in err
    assert "--lps" not in err and not out.exists()
    code = main(["segment", str(path), "--task", "lung-nodule", "--point", "12", "-30", "7",
                 "--point", "-516", "0", "0", "-o", str(out), "--quiet"])  # fmt: skip
    (line,) = capfd.readouterr().err.splitlines()
    assert code == 2 and "Point 2 of 2 (-516, 0, 0) mm RAS lies outside the image" in line
    lps = GRID.index_to_physical((20, 15, 10))  # the nodule as ITK gives it, typed without --lps
    typed = [f"{v:.2f}" for v in lps]
    assert main(["segment", str(path), "--task", "lung-nodule", "--point", *typed,
                 "-o", str(out), "--quiet"]) == 2  # fmt: skip
    (line,) = capfd.readouterr().err.splitlines()
    assert "lies outside the image" in line and line.endswith("add --lps.")
    named = ["--point-name", "Point 'F-1'"]  # the Slicer module's runs: it has no --lps
    assert main(["segment", str(path), "--task", "lung-nodule", "--point", *typed, *named,
                 "-o", str(out), "--quiet"]) == 2  # fmt: skip
    (line,) = capfd.readouterr().err.splitlines()
    assert "Point 'F-1' at" in line and line.endswith("click on the image.")
    assert not out.exists()


def test_a_click_typed_in_the_other_frame_says_so():
    """LPS numbers typed as RAS (no --lps) were refused as off the image with no word on the
    frame (tester 26); the CLI's message now says the other frame puts the click on the
    image, and which option to give. Slicer's clicks (no --lps option) get no such hint."""
    lps = GRID.index_to_physical((20, 15, 10))  # on the image, as ITK writes it
    with pytest.raises(UNetPlusPlusError, match=r"Read as LPS .* add --lps\.$"):
        check_point_on_image(GRID, ras_to_lps(lps), lps, "RAS", 1, lps_option=True)
    ras = ras_to_lps(lps)  # the same click as Slicer shows it, given with --lps
    with pytest.raises(UNetPlusPlusError, match=r"Read as RAS .* leave out --lps\.$"):
        check_point_on_image(GRID, ras, ras, "LPS", 1, lps_option=True)
    with pytest.raises(UNetPlusPlusError) as raised:
        check_point_on_image(GRID, ras_to_lps(lps), lps, "RAS", 1)  # the Slicer module's call
    assert "--lps" not in str(raised.value)
    far = GRID.index_to_physical((400, 15, 10))  # off the image in both frames
    with pytest.raises(UNetPlusPlusError) as raised:
        check_point_on_image(GRID, far, ras_to_lps(far), "RAS", 1, lps_option=True)
    assert str(raised.value).endswith("click on the image.")


@pytest.mark.parametrize("read", ["region", "whole"])  # --roi alone streams; --preview reads all
@pytest.mark.parametrize("frame", ["RAS", "LPS"])
def test_a_roi_off_the_image_is_named_as_typed_with_the_image_extent(
    tmp_path, sphere_model, capsys, read, frame
):
    """A --roi off the image was reported as the box enlarged by a tile of context, in LPS
    (tester 12: 'The region from (-1122, -1122, 978) to (-978, -978, 1122) mm (LPS)' for
    --roi 1000 1000 1000 1100 1100 1100)."""
    values = np.random.default_rng(1).normal(-500, 300, (20, 30, 40)).astype(np.int16)
    image = sitk.GetImageFromArray(values)
    image.SetSpacing(GRID.spacing)
    image.SetOrigin(GRID.origin)
    image.SetDirection(DIRECTION.flatten().tolist())
    path = tmp_path / "ct.nrrd"
    sitk.WriteImage(image, str(path))
    argv = ["segment", str(path), "--model", str(sphere_model), "-o", str(tmp_path / "o.nrrd")]
    argv += ["--roi", "1000", "1000", "1000", "1100", "1100", "1100"]
    argv += (["--lps"] if frame == "LPS" else []) + (
        ["--preview", str(tmp_path / "p.png")] if read == "whole" else []
    )
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert (
        f"from (1000, 1000, 1000) to (1100, 1100, 1100) mm {frame} lies outside the image" in line
    )
    corners = GRID.corner_points() * (np.array([-1.0, -1.0, 1.0]) if frame == "RAS" else 1.0)
    low, high = corners.min(axis=0), corners.max(axis=0)
    assert f"x {low[0]:.1f} to {high[0]:.1f}, y {low[1]:.1f} to {high[1]:.1f}" in line
    assert f"mm {frame}; place the box on the image." in line and "1122" not in line
    assert not (tmp_path / "o.nrrd").exists()
    inside = GRID.index_to_physical((20, 15, 10))  # a box around the image's centre passes
    box = [*(inside - 5.0), *(inside + 5.0)]
    check_roi_on_image(GRID, Box(tuple(box[:3]), tuple(box[3:])), box, "LPS")


def test_two_points_on_one_lesion_combine_with_one_warning():
    """combine_point_results had an unused ``progress`` parameter before ``warnings``
    (tester 12): the warnings list is now its second argument."""
    from UNetPlusPlusLib.cli_points import combine_point_results
    from UNetPlusPlusLib.engine.manifest import LabelSpec
    from UNetPlusPlusLib.engine.volume import LabelVolume, SegmentationResult

    lesion = np.zeros((4, 5, 6), dtype=np.uint8)
    lesion[1:3, 1:4, 2:5] = 1
    spec = LabelSpec(value=1, name="nodule", color=(1.0, 0.0, 0.0))
    labels = LabelVolume(lesion, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3), [spec])
    results = [SegmentationResult(labels, None, {}), SegmentationResult(labels, None, {})]
    shared: list = []
    combined = combine_point_results(results, shared)
    assert [x.name for x in combined.labels] == ["nodule 1", "nodule 2"]
    assert np.array_equal(combined.array, lesion)  # the first point keeps every voxel
    (warning,) = shared
    assert warning.startswith("Point 2 of 2 lies on the lesion of point 1")


@pytest.mark.parametrize("frame", ["RAS", "LPS"])
def test_a_roi_between_two_voxel_centres_is_named_as_typed(frame, tmp_path, capsys):
    """A box thinner than a voxel on the image: the message gave the box in LPS, as
    "from (99.99, -200, 200) to (100, -100, 300) mm (LPS)" for `--roi -100 100 200 -99.99 200
    300` typed in RAS, after streaming the whole file (tester 18)."""
    grid = Grid((40, 30, 20), (2.0, 2.0, 3.0), (-12.0, 30.0, 7.0))
    lps = [-12.0 + 20.5, 40.0, 20.0, -12.0 + 21.5, 50.0, 35.0]  # x between centres 20 and 22
    given = lps if frame == "LPS" else [-lps[0], -lps[1], lps[2], -lps[3], -lps[4], lps[5]]
    check_roi_on_image(grid, Box((8.0, 40.0, 20.0), (10.5, 50.0, 35.0)), given, frame)  # holds x=10
    with pytest.raises(UNetPlusPlusError) as raised:
        check_roi_on_image(grid, Box(tuple(lps[:3]), tuple(lps[3:])), given, frame)
    message = str(raised.value)
    typed = ", ".join(f"{float(v):g}" for v in given[:3])
    assert f"from ({typed}) to (" in message and f"mm {frame} holds no voxel centre" in message


def test_a_point_model_without_a_point_is_refused_before_the_image_is_read(tmp_path, capsys):
    """The nodule model without --point or --roi said so only after reading and checking the
    whole volume and importing torch (38 s under load for a 53x64x11 crop; tester 20). Now it
    is the first error: the input below is not even an image, nothing is written."""
    path = tmp_path / "ct.nii.gz"
    path.write_bytes(b"not an image")
    out = tmp_path / "n.seg.nrrd"
    argv = [str(path), "--task", "lung-nodule", "-o", str(out), "--progress-json"]
    assert main(["segment", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "error: Model 'lung-nodule-ct' segments around a clicked point: give a point "
        "(--point X Y Z) or a region of interest on the lesion."
    ]
    assert '"load", "done": 1' not in captured.out and not out.exists()
