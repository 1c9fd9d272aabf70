"""The front-back orientation check of a CT (engine/orientation_check.py): a synthetic torso with
a spine on several grid directions, flipped front-back in its array or in its header; weak
evidence (a crop, a thin slab) that must stay silent; the shared CTs; and the warning's path to
the CLI summary and the --progress-json result."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import rotation_matrix
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.orientation_check import check_orientation, measure_ap
from UNetPlusPlusLib.engine.registry import find_model
from UNetPlusPlusLib.engine.sanity import check_model_input
from UNetPlusPlusLib.engine.volume import Grid, Volume
from UNetPlusPlusLib.warm_cache import WarmCache

FLIPPED = "seems flipped front to back"
DIRECTIONS = {
    "axial": np.eye(3),
    "oblique": rotation_matrix((8, -6, 15)),
    "x and y reversed": np.diag([-1.0, -1.0, 1.0]),
}


def torso(direction: np.ndarray, spacing: float = 4.0, height_mm: float = 240.0) -> Volume:
    """A CT-like torso in LPS mm: air outside a 0 HU elliptic body (300 x 220 mm), a spine
    (700 HU, 16 mm radius) 70 mm behind the centre (LPS +y) on every slice, a sternum (700
    HU) 95 mm in front of it on the upper third, two lungs (-850 HU)."""
    half = np.array([180.0, 140.0, height_mm / 2])
    size = np.ceil(2 * half / spacing).astype(int)
    origin = -direction @ ((size - 1) / 2 * spacing)
    grid = Grid(tuple(size), (spacing,) * 3, tuple(origin), direction)
    k, j, i = np.meshgrid(*(np.arange(n) for n in grid.shape_zyx), indexing="ij")
    points = grid.index_to_physical(np.stack([i, j, k], axis=-1).reshape(-1, 3))
    x, y, z = (points[:, a].reshape(grid.shape_zyx) for a in range(3))
    ct = np.where((x / 150) ** 2 + (y / 110) ** 2 <= 1, 0.0, -1000.0)
    for side in (-1, 1):
        ct[((x - side * 75) / 50) ** 2 + (y / 75) ** 2 <= 1] = -850.0
    ct[x**2 + (y - 70) ** 2 <= 16**2] = 700.0
    ct[(np.abs(x) <= 12) & (np.abs(y + 95) <= 5) & (z > height_mm / 6)] = 700.0
    return Volume.on_grid(ct[None].astype(np.float32), grid, ("CT",))


def flipped_ap(volume: Volume, how: str) -> Volume:
    """``volume`` flipped front-back: its array along the axis nearest LPS y ("array"), or
    that axis's direction column negated ("header")."""
    axis = int(np.argmax(np.abs(volume.direction[1])))  # x, y or z index axis
    if how == "array":
        return volume.with_array(np.flip(volume.array, axis=3 - axis).copy())
    direction = volume.direction.copy()
    direction[:, axis] *= -1.0
    return Volume(volume.array, volume.spacing, volume.origin, direction, volume.channel_names)


def ap_warnings(task: str, volume: Volume) -> list[str]:
    return [w for w in check_model_input(find_model(task), volume) if FLIPPED in w]


@pytest.mark.parametrize("name", sorted(DIRECTIONS))
def test_a_torso_with_its_spine_behind_passes_on_every_direction(name):
    found = measure_ap(torso(DIRECTIONS[name]))
    assert not found.flipped
    assert found.offset == pytest.approx(70 / 110, abs=0.1)  # the spine's centre, 70 of 110 mm
    assert ap_warnings("liver", torso(DIRECTIONS[name])) == []


@pytest.mark.parametrize("how", ["array", "header"])
@pytest.mark.parametrize("name", sorted(DIRECTIONS))
def test_a_front_back_flip_of_the_array_or_the_header_is_warned(name, how):
    volume = flipped_ap(torso(DIRECTIONS[name]), how)
    assert measure_ap(volume).offset < -0.4  # in front (an oblique array flip: not exact)
    for task in ("liver", "lung-nodule"):  # both CT models, before any inference
        found = ap_warnings(task, volume)
        assert len(found) == 1, found
        assert "anterior-posterior axis" in found[0] and "Input 'CT'" in found[0]


def test_slices_of_two_legs_apart_are_skipped_not_a_crash():
    """Below the pelvis the body is two legs with air between them, on the body's midline:
    measure_ap raised IndexError there (the demo CT resampled into a padded axis-aligned grid,
    where the legs' slices no longer touch the image's edge)."""
    volume = torso(np.eye(3))
    ct = volume.array[0].copy()
    legs = ct[:15]  # the lowest 60 mm: two 0 HU legs with a bone each, apart on the midline
    k, j, i = np.meshgrid(*(np.arange(n) for n in legs.shape), indexing="ij")
    points = volume.grid.index_to_physical(np.stack([i, j, k], axis=-1).reshape(-1, 3))
    x, y = (points[:, a].reshape(legs.shape) for a in range(2))
    legs[:] = -1000.0
    for side in (-1, 1):
        legs[(x - side * 90) ** 2 + y**2 <= 45**2] = 0.0
        legs[(x - side * 90) ** 2 + y**2 <= 12**2] = 700.0
    found = measure_ap(volume.with_array(ct[None]))
    assert not found.flipped
    assert found.offset == pytest.approx(70 / 110, abs=0.1)  # the torso's slices still count


def test_a_left_right_flip_is_not_a_front_back_flip():
    volume = torso(np.eye(3))
    mirrored = volume.with_array(np.flip(volume.array, axis=3).copy())
    assert ap_warnings("liver", mirrored) == []


def test_weak_evidence_says_nothing():
    """A crop inside the body (its ends cut by the image's edge) and a slab of a few slices
    show no clear spine: no decision, even flipped."""
    whole = flipped_ap(torso(np.eye(3)), "array")
    crop = whole.with_array(whole.array[:, :, 10:50, 20:70].copy())
    crop.origin = tuple(whole.grid.index_to_physical((20, 10, 0)))
    thin = flipped_ap(torso(np.eye(3), height_mm=12.0), "array")
    for volume in (crop, thin):
        found = measure_ap(volume)
        assert found.offset is None and not found.flipped, found
        assert ap_warnings("liver", volume) == []


def test_an_mr_model_is_not_checked():
    volume = flipped_ap(torso(np.eye(3)), "array")
    assert check_orientation(find_model("liver"), volume)  # the same volume, for a CT model
    volume = volume.with_array(np.repeat(volume.array, 4, axis=0))
    assert check_orientation(find_model("brain-tumor"), volume) == []


# ---------------------------------------------------------------------------- shared data
def _read(path: Path) -> Volume:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_volume([path], ["CT"])


@pytest.mark.parametrize(
    "name", ["example_ct.nii.gz", "example_ct_dicom", "lits-0", "lits-1", "pulm_ct_cropped.nii.gz"]
)
def test_shared_cts_pass_as_given_and_whole_torsos_are_caught_flipped(shared_data, name):
    examples = shared_data / "liver" / "totalsegmentator-examples"
    path = (
        shared_data / "liver" / "lits-partial" / f"liver_{name[-1]}_ct.nii.gz"
        if name.startswith("lits")
        else examples / name
    )
    volume = _read(path)
    assert ap_warnings("liver", volume) == []
    clear = name != "pulm_ct_cropped.nii.gz"  # a heart crop: the body is cut, no decision
    for how in ("array", "header"):
        assert len(ap_warnings("liver", flipped_ap(volume, how))) == int(clear), (name, how)


def test_lidc_crops_and_slabs_say_nothing_even_flipped(shared_data):
    nodules = shared_data / "lung-nodule"
    crops = sorted((nodules / "lidc-vois" / "image").glob("*.nii.gz"))[::80]
    slabs = [p for p in sorted((nodules / "lidc-dicom-slabs").iterdir()) if p.is_dir()]
    for path in crops + slabs:
        volume = _read(path)
        for case in (volume, flipped_ap(volume, "array")):
            assert ap_warnings("lung-nodule", case) == [], path


# ---------------------------------------------------------------------------- CLI
def test_the_cli_serve_and_slicer_show_the_warning_once(sphere_model, tmp_path, capsys):
    from helpers import sphere_model_copy
    from UNetPlusPlusLib.cli import build_parser, main
    from UNetPlusPlusLib.cli_serve import serve
    from UNetPlusPlusLib.engine.volume import volume_to_sitk

    model = sphere_model_copy(sphere_model, tmp_path / "model", spacing_mm=4.0)  # 8x cheaper
    volume = flipped_ap(torso(np.eye(3), spacing=4.0, height_mm=100.0), "array")
    sitk.WriteImage(volume_to_sitk(volume), str(tmp_path / "flipped.nrrd"))
    args = ["segment", str(tmp_path / "flipped.nrrd"), "--model", str(model)]
    assert main(args + ["--depth", "1", "-o", str(tmp_path / "x.nrrd")]) == 0
    assert capsys.readouterr().err.count(f"warning: Input 'CT' {FLIPPED}") == 1
    code = main(args + ["--depth", "1", "-o", str(tmp_path / "x.nrrd"), "--progress-json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out.splitlines()[-1])["result"]
    assert sum(FLIPPED in w for w in result["warnings"]) == 1, result

    replies = io.StringIO()
    request = {"id": 3, "argv": [*args[1:], "--depth", "1", "-o", str(tmp_path / "y.nrrd")]}
    serve(io.StringIO(json.dumps(request) + "\n"), replies, build_parser, cache=WarmCache())
    answers = [json.loads(line) for line in replies.getvalue().splitlines()]
    result = next(a["result"] for a in answers if "result" in a)
    assert sum(FLIPPED in w for w in result["warnings"]) == 1, result


def test_the_slicer_logic_and_job_show_the_warning(sphere_model, tmp_path, background_logic):
    pytest.importorskip("slicer")
    import slicer
    from helpers import logic_warnings_both_ways, sphere_model_copy
    from test_adapter_logic import add_volume
    from UNetPlusPlusLib.engine.manifest import ModelManifest
    from UNetPlusPlusLib.engine.volume import volume_to_sitk

    manifest = ModelManifest.load(sphere_model_copy(sphere_model, tmp_path, spacing_mm=4.0))
    volume = flipped_ap(torso(np.eye(3), spacing=4.0, height_mm=100.0), "array")
    logic = background_logic
    scene = slicer.vtkMRMLScene()
    node = add_volume(scene, volume_to_sitk(volume), "flipped")
    said, shown = logic_warnings_both_ways(logic, [node], manifest, depth=1)
    assert sum(FLIPPED in w for w in said) == 1
    assert shown.count(f"\nWarning: Input 'CT' {FLIPPED}") == 1


def _fine_torso_file(volume: Volume, path: Path) -> None:
    """``volume`` (4 mm voxels) resampled (nearest) to 1.5 x 1.5 x 1 mm and written as int16:
    a z stride of 2 in the check's ~2 mm view, so streamed slabs start between its samples."""
    from UNetPlusPlusLib.engine.volume import volume_to_sitk

    image = volume_to_sitk(volume)
    spacing = (1.5, 1.5, 1.0)
    size = [int(n * s0 / s) for n, s0, s in zip(image.GetSize(), image.GetSpacing(), spacing)]
    image = sitk.Resample(
        image, size, sitk.Transform(), sitk.sitkNearestNeighbor, image.GetOrigin(), spacing,
        image.GetDirection(), -1000.0,
    )  # fmt: skip
    sitk.WriteImage(sitk.Cast(image, sitk.sitkInt16), str(path), True)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd"])
def test_the_streamed_roi_checks_warn_as_the_whole_image_read(sphere_model, tmp_path, suffix):
    """`unetpp segment --roi` checks the whole file streamed slab by slab (streamed_checks.py)
    and reads only the region: the front-back check did not run there. It now runs on the
    streamed ~2 mm view, with the whole image's result; an unflipped torso stays silent."""
    from contextlib import redirect_stdout

    from UNetPlusPlusLib.cli import main
    from UNetPlusPlusLib.engine import streamed_checks
    from UNetPlusPlusLib.engine.orientation_check import check_orientation_strided

    upright = torso(DIRECTIONS["x and y reversed"], spacing=4.0, height_mm=100.0)
    for volume, expected in ((flipped_ap(upright, "array"), 1), (upright, 0)):
        path = tmp_path / f"ct{expected}{suffix}"
        _fine_torso_file(volume, path)
        shapes = []

        def ap_check(ct, grid, shapes=shapes):
            shapes.append(ct.shape)
            return check_orientation_strided(find_model("liver"), ct, grid)

        said = streamed_checks.check_files([path], ["CT"], ["CT"], 200_000, ap_check=ap_check)
        whole = check_orientation(find_model("liver"), _read(path))
        assert len(whole) == expected, whole
        assert [w for w in said if FLIPPED in w] == whole, (said, whole)
        assert len(shapes) == 1 and shapes[0][0] == -(-_read(path).array.shape[1] // 2)
        argv = ["segment", str(path), "--model", str(sphere_model), "--depth", "1"]
        argv += ["-o", str(tmp_path / f"x{expected}.nrrd"), "--progress-json", "--lps"]
        stream = io.StringIO()
        with redirect_stdout(stream):
            assert main([*argv, "--roi", "-20", "-20", "-20", "20", "20", "20"]) == 0
        result = json.loads(stream.getvalue().splitlines()[-1])["result"]
        assert [w for w in result["warnings"] if FLIPPED in w] == whole, result["warnings"]
