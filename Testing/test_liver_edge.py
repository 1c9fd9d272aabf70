"""A liver segment cut by the image's edge (engine/liver_edge.py): the sides named in patient
terms on axis-aligned, oblique and reversed grids, a grazing tip not counted, slabs and small
cut segments called unreliable; the demo CT's reference liver (cut by the image's top) and the
shipped model's 100 ml on the demo CT's middle third (the silent case: Dice 0.16) through the
Predictor and the CLI."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import rotation_matrix
from UNetPlusPlusLib.engine.liver_edge import (
    SMALL_AREA_SHARE,
    EdgeCut,
    check_edges,
    edge_cut,
    edge_warning,
)
from UNetPlusPlusLib.engine.volume import Grid

DEMO_CT = Path(__file__).resolve().parents[1] / "Resources" / "Examples" / "example_ct.nii.gz"
EXAMPLES = Path("liver") / "totalsegmentator-examples"
MIDDLE_THIRD = slice(37, 74)  # of the demo CT's 112 slices


def _ball(shape=(20, 30, 40), centre=(10, 15, 20), radius=8.0) -> np.ndarray:
    z, y, x = np.indices(shape)
    c = np.asarray(centre, dtype=float)
    return (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= radius**2


def _grid(shape, direction=None) -> Grid:
    direction = np.eye(3) if direction is None else direction
    return Grid(shape[::-1], (2.0, 2.0, 3.0), (10.0, -20.0, 5.0), direction)


def test_a_segment_inside_the_image_or_grazing_its_edge_is_not_cut():
    ball = _ball()
    assert edge_cut(ball, _grid(ball.shape)) == EdgeCut()
    # a ball whose pole just touches the top slice: its section there is one voxel of ~200
    grazing = _ball(centre=(11, 15, 20))
    assert grazing[-1].any() and edge_cut(grazing, _grid(grazing.shape)).sides == []
    assert edge_warning(EdgeCut(), "liver", 100.0) is None


@pytest.mark.parametrize(
    "direction, top, front",
    [
        (np.eye(3), "superior", "posterior"),
        (np.diag([-1.0, -1.0, 1.0]), "superior", "anterior"),  # RAS-like storage order
        (np.diag([1.0, 1.0, -1.0]), "inferior", "posterior"),  # slices stored head first
        (rotation_matrix((20, -15, 25)), "superior", "posterior"),  # oblique
    ],
    ids=["LPS", "RAS", "head first", "oblique"],
)
def test_the_sides_are_named_in_patient_terms_from_the_direction(direction, top, front):
    """The ball cut by the last slice (k+) and by the last row (j+): the patient sides those
    faces look towards follow the grid's direction, not the array's order."""
    ball = _ball(centre=(16, 24, 20))  # cut at z = 19 and y = 29, far from the x ends
    cut = edge_cut(ball, _grid(ball.shape, direction))
    assert sorted(cut.sides) == sorted([top, front]), cut
    assert 0.5 < cut.section_share[top] < 1.0 and not cut.unreliable


def test_a_slab_through_the_organ_or_a_small_cut_segment_is_unreliable():
    slab = np.zeros((10, 30, 40), dtype=bool)
    slab[:, 5:25, 10:30] = True  # cut at both ends in z
    cut = edge_cut(slab, _grid(slab.shape))
    assert set(cut.sides) == {"inferior", "superior"} and cut.unreliable
    text = edge_warning(cut, "liver", 123.4)
    assert "at its top (head end) (100% of its largest cross-section) and bottom (feet end)" in text
    assert "(123 ml) is a lower bound" in text
    assert "unreliable" in text and "Check every slice" in text
    top_cut = _ball(centre=(16, 15, 20))
    assert not edge_cut(top_cut, _grid(top_cut.shape)).unreliable
    small = edge_cut(top_cut, _grid(top_cut.shape), area_share=SMALL_AREA_SHARE / 2)
    assert small.sides == ["superior"] and small.unreliable
    # a small segment that no side cuts is the anatomy rules' business, not this one's
    assert not edge_cut(_ball(), _grid((20, 30, 40)), area_share=0.01).unreliable
    with pytest.raises(ValueError, match="does not match grid"):
        edge_cut(slab, _grid((9, 30, 40)))


@pytest.mark.parametrize("direction", [np.eye(3), rotation_matrix((20, -15, 25))])
def test_an_image_one_slice_thick_is_cut_at_its_top_and_bottom(direction):
    """Its top and bottom cuts meet the same voxels: they are two cuts (a slab), not one
    oblique cut met twice (before: "bottom" alone, and not unreliable). Also with padding
    above the one slice of data."""
    one = np.zeros((1, 30, 40), dtype=bool)
    one[0, 5:25, 10:30] = True
    cut = edge_cut(one, _grid(one.shape, direction))
    assert cut.sides[:2] == ["superior", "inferior"] and cut.unreliable, cut
    padded = np.zeros((4, 30, 40), dtype=bool)
    padded[0] = one[0]
    ct = np.full(padded.shape, -3024.0, dtype=np.float32)
    ct[0] = 40.0
    cut = edge_cut(padded, _grid(padded.shape, direction), ct=ct)
    assert cut.sides[:2] == ["superior", "inferior"] and cut.unreliable, cut


def test_the_sides_and_their_order_do_not_depend_on_the_storage_order(shared_data):
    """s0009's liver (cut at its top, front and right: every share 1.0) in 9 storage orders
    of the same physical image: the same sides in the same order (before: the order followed
    the array's axes, and on an edge shared by two axes the side named could change)."""
    folder = shared_data / "liver" / "totalsegmentator-dataset-s0009"
    ct = sitk.ReadImage(str(folder / "ct.nii.gz"), sitk.sitkFloat32)
    liver = sitk.ReadImage(str(folder / "liver.nii.gz"))
    found = set()
    for order in ["LPS", "RAS", "LPI", "AIR", "SPL", "IRP"]:  # with the CT's padding rule
        image, label = (sitk.DICOMOrient(im, order) for im in (ct, liver))
        ct_array = sitk.GetArrayFromImage(image)
        cut = edge_cut(sitk.GetArrayFromImage(label), Grid.from_sitk(image), 0.3, ct_array)
        found.add(tuple(cut.sides))
    for permutation in ([1, 0, 2], [2, 0, 1], [0, 2, 1]):
        image, label = (sitk.PermuteAxes(im, permutation) for im in (ct, liver))
        cut = edge_cut(sitk.GetArrayFromImage(label), Grid.from_sitk(image))
        found.add(tuple(cut.sides))
    assert found == {("superior", "right", "anterior")}, found


def test_check_edges_fills_the_summary_and_fails_only_unreliable_results():
    slab = np.zeros((10, 30, 40), dtype=np.uint8)
    slab[:, 5:25, 10:30] = 2
    summary = {"passed": True, "failed": [], "position": {"area_share": 0.3}}
    (warning,) = check_edges(slab, _grid(slab.shape), "liver", 2, summary)
    voxel_ml = 2.0 * 2.0 * 3.0 / 1000.0
    assert f"({10 * 20 * 20 * voxel_ml:.0f} ml)" in warning
    assert summary["passed"] is False and summary["failed"] == ["cut_unreliable"]
    assert summary["edge"]["unreliable"] and summary["edge"]["section_share"]["superior"] == 1.0
    summary = {"passed": True, "failed": [], "position": {"area_share": 0.3}}
    assert check_edges(slab, _grid(slab.shape), "liver", 1, summary) == []  # value 1: none
    assert summary["passed"] is True and summary["edge"]["sides"] == []


def test_padding_beyond_the_segment_is_the_images_edge_enclosed_gas_is_not():
    """A CT resampled onto a rotated grid has padding (below -1010 HU) between its data and the
    grid's faces: a segment cut by the data's top ends at padding, not at the grid's face.
    Bowel gas (-1024 HU) beside the segment, with tissue beyond it, is no edge."""
    ball = _ball(shape=(30, 30, 40), centre=(16, 15, 20))
    ct = np.full(ball.shape, 40.0, dtype=np.float32)
    ct[20:] = -1024.0  # padding from z = 20 to the grid's end
    cut = edge_cut(ball & (np.indices(ball.shape)[0] < 20), _grid(ball.shape), ct=ct)
    assert cut.sides == ["superior"] and cut.section_share["superior"] > 0.5
    assert edge_cut(ball & (np.indices(ball.shape)[0] < 20), _grid(ball.shape)).sides == []
    gas = np.full(ball.shape, 40.0, dtype=np.float32)
    gas[20:25] = -1024.0  # a gas layer over the segment, tissue above it
    assert edge_cut(ball & (np.indices(ball.shape)[0] < 20), _grid(ball.shape), ct=gas).sides == []
    with pytest.raises(ValueError, match="does not match grid"):
        edge_cut(ball, _grid(ball.shape), ct=ct[1:])


@pytest.mark.parametrize("pad", [-1024.0, -3024.0])
@pytest.mark.parametrize("angles", [(25, 0, 0), (20, -15, 25)])
def test_the_demo_liver_on_a_rotated_padded_grid_is_cut_at_its_top(shared_data, angles, pad):
    """The demo CT and its reference liver resampled onto rotated grids that hold all of them
    (padded corners, as test_fov_padding): still cut at the top, the dome outside."""
    from helpers import rotated_grid

    def rotated(image, default, how):
        size, origin, spacing, direction = rotated_grid(image, angles)
        return sitk.Resample(
            image, size, sitk.Transform(), how, origin, spacing, direction, default
        )

    ct = rotated(sitk.ReadImage(str(DEMO_CT), sitk.sitkFloat32), pad, sitk.sitkLinear)
    label = sitk.ReadImage(str(shared_data / EXAMPLES / "example_seg_fast_force_split.nii.gz"))
    liver = rotated(sitk.Cast(label == 5, sitk.sitkUInt8), 0, sitk.sitkNearestNeighbor)
    grid = Grid.from_sitk(ct)
    cut = edge_cut(sitk.GetArrayFromImage(liver), grid, 0.28, sitk.GetArrayFromImage(ct))
    assert cut.sides == ["superior"] and not cut.unreliable, cut
    assert 0.5 < cut.section_share["superior"] <= 1.0  # 1.007 at 25 degrees about x, before


def test_the_demo_cts_reference_liver_is_cut_by_the_top_of_the_image_only(shared_data):
    """The demo CT stops inside the liver (TotalSegmentator's label, not expert: 90 % of its
    largest cross-section on the top slice, the dome outside); its lower tip is inside."""
    image = sitk.ReadImage(str(DEMO_CT))
    labels = sitk.GetArrayFromImage(
        sitk.ReadImage(str(shared_data / EXAMPLES / "example_seg_fast_force_split.nii.gz"))
    )
    cut = edge_cut(labels == 5, Grid.from_sitk(image), area_share=0.28)
    assert cut.sides == ["superior"] and not cut.unreliable
    assert cut.section_share["superior"] == pytest.approx(0.90, abs=0.02)


@functools.cache
def _middle_third():
    """The shipped model's result on the demo CT's middle third (slices 37-73)."""
    from UNetPlusPlusLib.engine.image_read import volume_from_sitk
    from UNetPlusPlusLib.engine.predictor import Predictor

    volume = volume_from_sitk([sitk.ReadImage(str(DEMO_CT))[:, :, MIDDLE_THIRD]], ["CT"])
    return Predictor.from_task("liver", device="cpu", threads=2).segment(volume)


def test_the_demo_cts_middle_third_is_warned_as_cut_and_unreliable(shared_data):
    """The silent case: about 100 ml of "liver" against 9 ml of the reference in this slab
    (Dice 0.16), no warning before."""
    result = _middle_third()
    ml = np.count_nonzero(result.labels.array) * 27.0 / 1000.0
    assert 50.0 < ml < 200.0  # still written: a warning, not a deletion
    anatomy = result.info["anatomy"]
    assert anatomy["edge"]["sides"] == ["superior"] and anatomy["edge"]["unreliable"]
    assert "cut_unreliable" in anatomy["failed"] and anatomy["passed"] is False
    (warning,) = [w for w in result.info["warnings"] if "cut by the edge of the image" in w]
    assert "at its top (head end)" in warning and f"({ml:.0f} ml) is a lower bound" in warning
    assert "unreliable" in warning
    reference = sitk.GetArrayFromImage(
        sitk.ReadImage(str(shared_data / EXAMPLES / "example_seg_fast_force_split.nii.gz"))
    )[MIDDLE_THIRD]
    from helpers import dice

    assert dice(result.labels.array > 0, reference == 5) < 0.3  # why "unreliable"


def test_the_cli_says_the_edge_warning_once(tmp_path, capsys):
    from UNetPlusPlusLib.cli import main

    path = tmp_path / "middle.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(DEMO_CT))[:, :, MIDDLE_THIRD], str(path))
    args = ["segment", str(path), "--task", "liver", "-o", str(tmp_path / "x.seg.nrrd")]
    assert main(args + ["--threads", "2"]) == 0
    err = capsys.readouterr().err
    assert err.count("warning: The 'liver' segment is cut by the edge of the image") == 1, err
    assert "is a lower bound" in err and "unreliable" in err
    assert (tmp_path / "x.seg.nrrd").is_file()  # written, with the warning


@pytest.mark.slow  # two runs of the shipped model: 21 s on the 2 shared cores
def test_the_slicer_logic_and_job_show_the_edge_warning(background_logic):
    """The shipped liver model on the middle third as a Slicer volume node: the warning reaches
    the Logic's warnings and the panel's text of a background job."""
    pytest.importorskip("slicer")
    import slicer
    from helpers import logic_warnings_both_ways
    from test_adapter_logic import add_volume
    from UNetPlusPlusLib.engine.registry import find_model

    scene = slicer.vtkMRMLScene()
    node = add_volume(scene, sitk.ReadImage(str(DEMO_CT))[:, :, MIDDLE_THIRD], "middle third")
    said, shown = logic_warnings_both_ways(background_logic, [node], find_model("liver"))
    assert sum("cut by the edge of the image" in w for w in said) == 1, said
    assert shown.count("\nWarning: The 'liver' segment is cut by the edge of the image") == 1
    assert "unreliable" in shown
