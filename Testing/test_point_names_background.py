"""A refused click is named the same way by the Slicer Logic's in-process run and by its
background job, through `unetpp serve` or a one-shot `unetpp segment`: "Point 'F-2' (2 of 3) at
(-56.0, -4.0, 30.0) mm RAS ...", its coordinates at 0.1 mm. Before, the background path (the
panel's) said "The clicked point (-56.0371, ...) mm RAS", without the point's label and with
the coordinates as `:g` printed them. The CLI's `--point-name`, one per `--point`, carries
the name. Real MRML (slicer-core), the shipped nodule model; the refusals come before it loads."""

from __future__ import annotations

import pytest
import SimpleITK as sitk
from test_click_check import AIR, NODULE, chest
from UNetPlusPlusLib.engine.volume import volume_to_sitk

NAME = "Point 'F-2' (2 of 3)"
#: a click as Slicer places it: not on round millimetres
AIR_RAS = (-AIR[0] - 0.0371234, -AIR[1], AIR[2] + 0.0418)
OFF_RAS = (500.04, 3.0, 4.0)


@pytest.fixture(scope="module")
def chest_node():
    slicer = pytest.importorskip("slicer")
    if not hasattr(slicer, "vtkMRMLScene"):
        pytest.skip("slicer-core (MRML) is not installed")
    from test_adapter_logic import add_volume

    scene = slicer.vtkMRMLScene()
    return add_volume(scene, volume_to_sitk(chest()), "chest")


def in_process_message(node, point_ras, name) -> str:
    from UNetPlusPlusLib.adapter.logic import SegmentationLogic
    from UNetPlusPlusLib.errors import UNetPlusPlusError

    with pytest.raises(UNetPlusPlusError) as refused:
        SegmentationLogic().segment([node], "lung-nodule", point_ras=point_ras, point_name=name)
    return str(refused.value)


@pytest.mark.parametrize("persistent", [True, False], ids=["serve", "one-shot"])
def test_the_background_job_names_a_refused_click_as_the_in_process_run(chest_node, persistent):
    from UNetPlusPlusLib.adapter.logic import SegmentationLogic
    from UNetPlusPlusLib.errors import PointRefusedError

    logic = SegmentationLogic(persistent=persistent)
    try:
        for point, name in ((AIR_RAS, NAME), (AIR_RAS, None)):
            job = logic.start_job([chest_node], "lung-nodule", point_ras=point, point_name=name)
            job.wait(timeout=120)
            assert job.state == "failed", job.log
            assert job.error == in_process_message(chest_node, point, name)
        # off the image: refused before the job starts (the grid suffices), in the same words
        with pytest.raises(PointRefusedError) as refused:
            logic.start_job([chest_node], "lung-nodule", point_ras=OFF_RAS, point_name=NAME)
        assert str(refused.value) == in_process_message(chest_node, OFF_RAS, NAME)
    finally:
        logic.shutdown()
    assert job.error.startswith("The clicked point at (-56.0, -4.0, 30.0) mm RAS lies in the air")


def test_the_in_process_words(chest_node):
    """What the background job must match (test_adapter_click_names.py asserts the rest)."""
    assert in_process_message(chest_node, AIR_RAS, NAME).startswith(
        f"{NAME} at (-56.0, -4.0, 30.0) mm RAS lies in the air outside the body "
    )
    assert in_process_message(chest_node, OFF_RAS, NAME).startswith(
        f"{NAME} at (500.0, 3.0, 4.0) mm RAS lies outside the image, whose voxel centres "
    )


@pytest.fixture()
def chest_file(tmp_path):
    path = tmp_path / "chest.nrrd"
    sitk.WriteImage(volume_to_sitk(chest()), str(path))
    return path


def test_point_name_names_each_point_of_the_cli(chest_file, tmp_path, capsys):
    from UNetPlusPlusLib.cli import main

    out = tmp_path / "two.seg.nrrd"
    argv = ["segment", str(chest_file), "--task", "lung-nodule", "-o", str(out)]
    nodule = [str(-NODULE[0]), str(-NODULE[1]), str(NODULE[2])]
    air = [str(-AIR[0]), str(-AIR[1]), str(AIR[2])]
    names = ["--point-name", "lesion A", "--point-name=-left apex"]
    assert main([*argv, "--point", *nodule, "--point", *air, *names]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error: -left apex at (-56.0, -4.0, 30.0) mm RAS lies in the air"), err
    assert main([*argv, "--point", *air, "--point-name", "A", "--lps"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error: A at (-56.0, -4.0, 30.0) mm LPS lies outside the image"), err
    assert not out.exists()


def test_point_name_needs_one_per_point(chest_file, tmp_path, capsys):
    from UNetPlusPlusLib.cli import main

    argv = ["segment", str(chest_file), "--task", "lung-nodule", "-o", str(tmp_path / "o.nrrd")]
    assert main([*argv, "--point", "1", "2", "3", "--point-name", "A", "--point-name", "B"]) == 2
    err = capsys.readouterr().err
    assert "argument --point-name: give one per --point (2 --point-name for 1 --point)" in err
    assert main([*argv, "--point-name", "A"]) == 2
    assert "(1 --point-name for 0 --point)" in capsys.readouterr().err
