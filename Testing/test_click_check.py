"""What lies under a lung-nodule click (engine/click_check.py): a synthetic chest with a nodule,
a calcified nodule, bone, solid tissue and outside air, through the shipped nodule model, the
CLI and `unetpp serve`; the shared CTs' spine and the LIDC nodules."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pytest
import SimpleITK as sitk
from UNetPlusPlusLib.engine.click_check import measure_click, segment_warning
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.registry import find_model
from UNetPlusPlusLib.engine.volume import LabelVolume, Volume
from UNetPlusPlusLib.errors import UNetPlusPlusError

SPACING = (0.7, 0.7, 1.25)
BONE, SOLID = "is bone", "is solid and away from the lung"
#: LPS mm of the synthetic chest's parts (the image spans 0-112 x 0-112 x 0-60 mm)
NODULE, CALCIFIED, LUNG = (40.0, 50.0, 30.0), (25.0, 70.0, 30.0), (35.0, 75.0, 30.0)
SPINE, TISSUE, AIR = (90.0, 85.0, 30.0), (90.0, 40.0, 30.0), (56.0, 4.0, 30.0)
CORTEX = (SPINE[0] + 10.5, SPINE[1], SPINE[2])


def chest() -> Volume:
    """A CT-like chest: air (-1000 HU) outside a soft-tissue body (40 HU) from y = 12 mm, a
    lung (-850 HU) on its left half, a 5 mm nodule (40 HU) and a 2 mm calcified nodule (900
    HU) in the lung, a vertebra-like block (200 HU inside a 3 mm, 900 HU cortex) in the tissue."""
    rng = np.random.default_rng(0)
    shape = (48, 160, 160)  # z, y, x
    k, j, i = np.indices(shape)
    x, y, z = i * SPACING[0], j * SPACING[1], k * SPACING[2]
    ct = np.where(y >= 12.0, 40.0, -1000.0)
    ct[(x < 62) & (x > 8) & (y > 22) & (y < 104)] = -850.0
    ct[(x - NODULE[0]) ** 2 + (y - NODULE[1]) ** 2 + (z - NODULE[2]) ** 2 <= 25] = 40.0
    ct[(x - CALCIFIED[0]) ** 2 + (y - CALCIFIED[1]) ** 2 + (z - CALCIFIED[2]) ** 2 <= 4] = 900.0
    block = (np.abs(x - SPINE[0]) <= 12) & (np.abs(y - SPINE[1]) <= 12)
    ct[block] = 900.0
    ct[(np.abs(x - SPINE[0]) <= 9) & (np.abs(y - SPINE[1]) <= 9)] = 200.0
    ct = ct + rng.normal(0, 15, shape)
    return Volume(ct[None].astype(np.float32), SPACING, (0, 0, 0), np.eye(3), ("CT",))


@pytest.fixture(scope="module")
def volume() -> Volume:
    return chest()


@pytest.mark.parametrize(
    "point, verdict",
    [(NODULE, ""), (CALCIFIED, ""), (LUNG, ""), (TISSUE, "soft_tissue")]
    + [(SPINE, "soft_tissue"), (CORTEX, "bone"), (AIR, "outside_air")],
)
def test_what_lies_under_a_click(volume, point, verdict):
    assert measure_click(volume, point).verdict == verdict


def test_the_nodule_model_warns_before_inference_and_refuses_outside_air(volume):
    from UNetPlusPlusLib.engine.predictor import Predictor

    predictor = Predictor.from_task("lung-nodule", device="cpu", threads=2)
    nodule = predictor.segment(volume, point=NODULE)
    assert nodule.labels.array.any()
    assert not [w for w in nodule.info["warnings"] if BONE in w or SOLID in w]
    assert nodule.info["click"]["verdict"] == ""
    calcified = predictor.segment(volume, point=CALCIFIED)
    assert not [w for w in calcified.info["warnings"] if BONE in w or "as bone has" in w]
    for point, marker in ((CORTEX, BONE), (SPINE, SOLID), (TISSUE, SOLID)):
        result = predictor.segment(volume, point=point)
        found = [w for w in result.info["warnings"] if marker in w]
        assert len(found) == 1, result.info["warnings"]
        assert "Click on the nodule itself" in found[0]
    with pytest.raises(UNetPlusPlusError, match="air outside the body"):
        predictor.segment(volume, point=AIR)


def test_a_bone_like_segment_is_warned_after_inference(volume):
    manifest = find_model("lung-nodule")
    labels = np.zeros(volume.shape_zyx, dtype=np.uint8)
    k, j, i = (np.round(np.asarray(SPINE)[::-1] / np.asarray(SPACING)[::-1])).astype(int)
    labels[k - 4 : k + 4, j - 16 : j + 17, i - 16 : i + 17] = 1  # the whole block: 900 and 200 HU
    result = LabelVolume(labels, SPACING, (0, 0, 0), np.eye(3), list(manifest.labels))
    assert "as bone has" in segment_warning(manifest, volume, result)
    crop = LabelVolume(  # the same on the smallest extent that holds it (point_crop.py)
        labels[k - 4 : k + 4, j - 16 : j + 17, i - 16 : i + 17],
        SPACING,
        tuple(np.asarray(SPACING) * [i - 16, j - 16, k - 4]),
        np.eye(3),
        list(manifest.labels),
    )
    assert "as bone has" in segment_warning(manifest, volume, crop)
    labels[:] = 0
    k, j, i = (np.round(np.asarray(NODULE)[::-1] / np.asarray(SPACING)[::-1])).astype(int)
    labels[k - 2 : k + 3, j - 4 : j + 5, i - 4 : i + 5] = 1
    assert segment_warning(manifest, volume, result) is None


def test_the_cli_and_serve_show_the_warning_and_the_refusal(volume, tmp_path, capsys):
    from UNetPlusPlusLib.cli import build_parser, main
    from UNetPlusPlusLib.cli_serve import serve
    from UNetPlusPlusLib.engine.volume import volume_to_sitk
    from UNetPlusPlusLib.warm_cache import WarmCache

    sitk.WriteImage(volume_to_sitk(volume), str(tmp_path / "chest.nrrd"))
    argv = [str(tmp_path / "chest.nrrd"), "--task", "lung-nodule", "--lps", "--depth", "1"]
    spine = ["--point", *(str(v) for v in CORTEX)]
    assert main(["segment", *argv, *spine, "-o", str(tmp_path / "s.nrrd")]) == 0
    assert capsys.readouterr().err.count(f"warning: The tissue at the clicked point {BONE}") == 1
    assert main(["segment", *argv, *spine, "-o", str(tmp_path / "s.nrrd"), "--progress-json"]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])["result"]
    assert sum(BONE in w for w in result["warnings"]) == 1
    air = ["--point", *(str(v) for v in AIR)]
    assert main(["segment", *argv, *air, "-o", str(tmp_path / "a.nrrd")]) == 2
    assert "error: The clicked point (56, 4, 30) mm LPS lies in the air outside the body" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "a.nrrd").exists()

    replies = io.StringIO()
    request = {"id": 1, "argv": [*argv, *spine, "-o", str(tmp_path / "t.nrrd")]}
    serve(io.StringIO(json.dumps(request) + "\n"), replies, build_parser, cache=WarmCache())
    answers = [json.loads(line) for line in replies.getvalue().splitlines()]
    result = next(a["result"] for a in answers if "result" in a)
    assert sum(BONE in w for w in result["warnings"]) == 1


def test_two_clicks_say_each_click_warning_once_with_its_number(volume, tmp_path, capsys):
    """Tester 13: with two points each click warning was said early as 'at the clicked point'
    and again at the end as 'at point N of 2': 7 warning lines under '5 warnings above'."""
    import re

    from UNetPlusPlusLib.cli import main
    from UNetPlusPlusLib.engine.volume import volume_to_sitk

    sitk.WriteImage(volume_to_sitk(volume), str(tmp_path / "chest.nrrd"))
    argv = [str(tmp_path / "chest.nrrd"), "--task", "lung-nodule", "--lps", "--depth", "1"]
    points = ["--point", *(str(v) for v in CORTEX), "--point", *(str(v) for v in TISSUE)]
    assert main(["segment", *argv, *points, "-o", str(tmp_path / "s.nrrd")]) == 0
    captured = capsys.readouterr()
    err = captured.err
    lines = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(lines) == len(set(lines)), lines
    assert "at the clicked point" not in err
    assert sum(f"at point 1 of 2 {BONE}" in line for line in lines) == 1
    assert sum(f"at point 2 of 2 {SOLID}" in line for line in lines) == 1
    said = re.search(r"(\d+) warnings? above", captured.out)
    assert said and int(said.group(1)) == len(lines), captured
    assert main(["segment", *argv, *points, "-o", str(tmp_path / "s.nrrd"), "--progress-json"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    early = [o["warning"] for o in out if "warning" in o]
    assert sum(f"at point 1 of 2 {BONE}" in w for w in early) == 1
    assert not any("at the clicked point" in w for w in early)


# ---------------------------------------------------------------------------- shared data
def test_lidc_nodules_are_not_flagged(shared_data):
    crops = sorted((shared_data / "lung-nodule" / "lidc-vois" / "image").glob("*.nii.gz"))
    for path in crops[::40]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            crop = read_volume([path], ["CT"])
        centre = crop.grid.index_to_physical((np.asarray(crop.grid.size_xyz) - 1) / 2.0)
        assert measure_click(crop, centre).verdict == "", path.name


@pytest.mark.parametrize("name", ["LIDC-IDRI-0140_R_1", "LIDC-IDRI-0416_R_1", "LIDC-IDRI-0659_R_4"])
def test_no_voxel_of_a_faint_nodule_is_refused_as_outside_air(shared_data, name):
    """Tester 13: clicks on voxels of these expert-outlined nodules (faint, in dark lung:
    median -903 to -961 HU within 3 mm, lung share within 20 mm 0.36-0.67) were refused as 'the
    air outside the body': 301 of LIDC-IDRI-0140_R_1's 3205 voxels. Outside air clicks (of the
    margins script) have at most 0.247 lung around."""
    folder = shared_data / "lung-nodule" / "lidc-vois"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        crop = read_volume([folder / "image" / f"{name}.nii.gz"], ["CT"])
        mask = read_volume([folder / "nodule_mask" / f"{name}.nii.gz"]).array[0] > 0
    refused = []
    voxels = np.argwhere(mask)
    for z, y, x in voxels[:: max(1, len(voxels) // 150)]:  # at most about 150 clicks
        click = measure_click(crop, crop.grid.index_to_physical(np.array([x, y, z], float)))
        if click.verdict == "outside_air":
            refused.append((int(x), int(y), int(z), round(click.median_hu)))
    assert not refused, refused[:5]


def test_a_click_on_the_spine_of_example_ct_is_warned(shared_data):
    examples = shared_data / "liver" / "totalsegmentator-examples"
    ct = read_volume([examples / "example_ct.nii.gz"], ["CT"])
    seg = sitk.ReadImage(str(examples / "example_seg_fast_force_split.nii.gz"))
    seg = sitk.GetArrayFromImage(seg)
    for value in (28, 31):  # two vertebrae (TotalSegmentator: 26 S1 ... 50 C1)
        centre = np.argwhere(seg == value).mean(axis=0)  # (z, y, x) of the vertebra
        click = measure_click(ct, ct.grid.index_to_physical(centre[::-1]))
        assert click.verdict in ("bone", "soft_tissue") and click.lung_share < 0.05, click


def test_the_slicer_logic_and_job_show_the_warning(volume, background_logic):
    pytest.importorskip("slicer")
    import slicer
    from helpers import logic_warnings_both_ways
    from test_adapter_logic import add_volume
    from UNetPlusPlusLib.engine.volume import volume_to_sitk

    manifest = find_model("lung-nodule")
    logic = background_logic
    scene = slicer.vtkMRMLScene()
    node = add_volume(scene, volume_to_sitk(volume), "chest")
    point_ras = (-CORTEX[0], -CORTEX[1], CORTEX[2])  # Slicer clicks are RAS
    said, shown = logic_warnings_both_ways(logic, [node], manifest, depth=1, point_ras=point_ras)
    assert sum(BONE in w for w in said) == 1, said
    assert shown.count(f"\nWarning: The tissue at the clicked point {BONE}") == 1, shown
