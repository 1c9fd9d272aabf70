"""Input sanity (engine/sanity.py, nifti_check.py): inputs that cannot be right are refused with
one actionable line, borderline ones warn; real data of the shipped models passes.

Issue 9 cases 1, 2 and 7 are reproduced here on the data the issue names.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import make_sphere_image
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.manifest import ModelManifest
from UNetPlusPlusLib.engine.predictor import Predictor
from UNetPlusPlusLib.engine.sanity import check_header, check_intensities, check_volume
from UNetPlusPlusLib.engine.volume import Volume
from UNetPlusPlusLib.errors import UNetPlusPlusError

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_CT = REPO / "Resources" / "Examples" / "example_ct.nii.gz"
MODELS = REPO / "UNetPlusPlus" / "UNetPlusPlusLib" / "Resources" / "Models"
BRATS = ("FLAIR", "T1", "T1ce", "T2")


def manifest(task: str) -> ModelManifest:
    return ModelManifest.load(MODELS / task / "model.json")


def check(task: str, volume: Volume) -> list[str]:
    """The sanity checks the Predictor runs for ``task`` (no weights loaded, no inference)."""
    return check_volume(volume, [c.modality for c in manifest(task).channels])


def ct_like(shape=(8, 10, 12), seed=0) -> np.ndarray:
    """Air around a soft-tissue block with noise, in HU: a plausible CT."""
    rng = np.random.default_rng(seed)
    array = np.full(shape, -1000.0, np.float32) + rng.normal(0, 10, shape).astype(np.float32)
    array[2:-2, 2:-2, 2:-2] = 40 + rng.normal(0, 10, (shape[0] - 4, shape[1] - 4, shape[2] - 4))
    return array


def volume(*channels: np.ndarray, names=None, spacing=(1.0, 1.0, 1.0)) -> Volume:
    names = names or [f"c{i}" for i in range(len(channels))]
    # not the default geometry of an image saved without one (check_header warns about it)
    return Volume(np.stack(channels), spacing, (-90.0, -126.0, -72.0), np.eye(3), tuple(names))


def run_cli(tmp_path, inputs, task) -> tuple[int, str, Path]:
    out = tmp_path / "labels.nii.gz"
    code = main(["segment", *map(str, inputs), "--task", task, "--labelmap", str(out), "--quiet"])
    return code, str(out), out


# --------------------------------------------------------------------------- raw values
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".mha"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_are_refused_alike_in_every_format(tmp_path, suffix, bad):
    array = ct_like()
    array[3, 4, 5] = bad
    path = tmp_path / f"bad{suffix}"
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    with pytest.raises(UNetPlusPlusError, match=r"bad\..* contains 1 NaN or infinite voxel"):
        read_volume([path])


@pytest.mark.parametrize("dtype", ["<f8", ">f4"])
def test_raw_nifti_check_reads_float64_and_big_endian(tmp_path, dtype):
    array = ct_like().astype(dtype)
    array[0, 0, 0] = np.nan
    image = sitk.GetImageFromArray(array.astype(np.float64 if "8" in dtype else np.float32))
    path = tmp_path / "bad.nii"
    sitk.WriteImage(image, str(path))
    if dtype.startswith(">"):  # rewrite as a big-endian NIfTI-1 by hand
        data = bytearray(path.read_bytes())
        header, voxels = data[:352], np.frombuffer(bytes(data[352:]), "<f4")
        swapped = bytearray(header)
        for start, fmt in [(0, "i"), (40, "8h"), (70, "h"), (72, "h"), (108, "f")]:
            import struct

            size = struct.calcsize(fmt)
            values = struct.unpack("<" + fmt, header[start : start + size])
            swapped[start : start + size] = struct.pack(">" + fmt, *values)
        path.write_bytes(bytes(swapped) + voxels.astype(">f4").tobytes())
    from UNetPlusPlusLib.engine.nifti_check import check_nifti

    with pytest.raises(UNetPlusPlusError, match="1 NaN or infinite"):
        check_nifti(path)


def test_issue_case_1_nan_outside_a_disc_in_a_nifti_ct_is_refused(tmp_path):
    """The example CT as float32 NIfTI with NaN outside a central disc: exit 2, no output."""
    ct = sitk.ReadImage(str(EXAMPLE_CT), sitk.sitkFloat32)
    array = sitk.GetArrayFromImage(ct)
    _, y, x = np.indices(array.shape)
    disc = (y - array.shape[1] / 2) ** 2 + (x - array.shape[2] / 2) ** 2 < (array.shape[2] / 4) ** 2
    array[~disc] = np.nan
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(ct)
    for suffix in (".nii.gz", ".nrrd"):
        path = tmp_path / f"nan_ct{suffix}"
        sitk.WriteImage(image, str(path))
        code, _, out = run_cli(tmp_path, [path], "liver")
        assert code == 2 and not out.exists()
        with pytest.raises(UNetPlusPlusError, match=f"{int((~disc).sum())} NaN or infinite"):
            read_volume([path])


# --------------------------------------------------------------------------- header
def _nrrd(path: Path, directions: str, size=(6, 5, 4)) -> Path:
    data = ct_like(size[::-1]).astype(np.int16).tobytes()
    header = (
        "NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\n"
        f"sizes: {size[0]} {size[1]} {size[2]}\nspace directions: {directions}\n"
        "kinds: domain domain domain\nendian: little\nencoding: raw\nspace origin: (0,0,0)\n\n"
    )
    path.write_bytes(header.encode() + data)
    return path


@pytest.mark.parametrize(
    "directions, match",
    [
        ("(1,0,0) (0.5,1,0) (0,0,1)", "sheared direction"),
        ("(1e-6,0,0) (0,1e-6,0) (0,0,1e-6)", "metres or micrometres"),
        ("(1000,0,0) (0,1000,0) (0,0,1000)", "metres or micrometres"),
        ("(0,0,0) (0,1,0) (0,0,1)", "Cannot read"),  # ITK refuses a zero axis itself
        ("(1,0,0) (1,0,0) (0,0,1)", "Cannot read"),  # and two parallel axes
    ],
)
def test_impossible_headers_are_refused(tmp_path, directions, match):
    with pytest.raises(UNetPlusPlusError, match=match):
        read_volume([_nrrd(tmp_path / "odd.nrrd", directions)])


@pytest.mark.parametrize(
    "spacing, direction",
    [
        ((1, 0, 1), np.eye(3)),
        ((1, -2, 1), np.eye(3)),
        ((1, float("nan"), 1), np.eye(3)),
        ((1, 1, 1), [[1, 0, 0], [0, 1, 0], [0, 1, 1e-3]]),
    ],
)
def test_header_check_refuses_nonpositive_spacing_and_degenerate_directions(spacing, direction):
    with pytest.raises(UNetPlusPlusError, match="spacing|direction"):
        check_header((4, 4, 4), spacing, (0, 0, 0), direction, "x.nrrd")


def test_spacing_limits_hold_for_a_float32_header():
    """A NIfTI header stores spacing as float32: 0.01 mm read back as 0.0099999998 was refused
    as 'a voxel spacing of (0.01, 0.01, 0.01) mm, outside 0.01..100 mm' (tester 10). The limits
    themselves pass, in float32 or float64; beyond them is still refused."""
    for limit in (0.01, 100.0):
        for value in (limit, float(np.float32(limit))):
            check_header((64, 64, 64), (value, 1.0, 1.0), (5, 5, 5), np.eye(3), "x.nii")
    for value in (0.0099, 100.1):
        with pytest.raises(UNetPlusPlusError, match="outside 0.01..100 mm"):
            check_header((64, 64, 64), (value, 1.0, 1.0), (5, 5, 5), np.eye(3), "x.nii")


def test_one_voxel_thick_volume_is_refused_and_thick_slices_warn():
    with pytest.raises(UNetPlusPlusError, match="single slice"):
        check_header((64, 64, 1), (1, 1, 1), (0, 0, 0), np.eye(3), "x.nrrd")
    warnings = check_header((64, 64, 4), (1, 1, 12), (0, 0, 0), np.eye(3), "x.nrrd")
    assert len(warnings) == 1 and "thick" in warnings[0]


def test_the_default_geometry_of_an_image_saved_without_one_warns(tmp_path, sphere_model, capsys):
    # tester 8: the example CT saved from its array alone (1 mm, origin 0; its voxels are 3 mm)
    # gave "liver 4.448 ml" (1031.6 ml with its geometry) with no warning
    warnings = check_header((64, 64, 32), (1, 1, 1), (0, 0, 0), np.eye(3), "x.nii.gz")
    assert len(warnings) == 1 and "saved without one (1 x 1 x 1 mm voxels" in warnings[0]
    for spacing, origin, direction in [
        ((1, 1, 1), (0, 0, 0.5), np.eye(3)),  # a real origin
        ((1, 1, 1.2), (0, 0, 0), np.eye(3)),  # a real spacing
        ((1, 1, 1), (0, 0, 0), np.diag([-1.0, -1.0, 1.0])),  # a real direction (BraTS)
    ]:
        assert check_header((64, 64, 32), spacing, origin, direction, "x.nii.gz") == []
    path = tmp_path / "array_only.nii.gz"
    ball = sitk.GetArrayFromImage(make_sphere_image((24, 20, 20), radius_mm=10, noise=5))
    sitk.WriteImage(sitk.GetImageFromArray(ball.astype(np.int16)), str(path))
    argv = ["segment", str(path), "--model", str(sphere_model), "--quiet", "--threads", "1"]
    assert main([*argv, "-o", str(tmp_path / "x.nii.gz")]) == 0
    expected = "warning: The input volume has the geometry of an image saved without one"
    assert expected in capsys.readouterr().err


def test_an_origin_far_from_any_scanner_is_refused(tmp_path, sphere_model, capsys):
    """Tester 14: the demo CT with its origin at 1e30 mm gave a 0.27 ml "liver" with only a
    misleading anatomy warning. Beyond 1 km from the isocentre (the shared data's origins reach
    1.6 m) the header is refused before any work, and nothing is written."""
    lps = np.diag([-1.0, -1.0, 1.0])
    assert check_header((64, 64, 32), (1, 1, 2), (1628.0, -900.0, 1e5), lps, "ct") == []
    for origin in ((1e30, 0.0, 0.0), (0.0, -2e6, 0.0)):
        with pytest.raises(UNetPlusPlusError, match="more than 1 km from the scanner's isocentre"):
            check_header((64, 64, 32), (1, 1, 2), origin, lps, "ct.nrrd")
    image = make_sphere_image((24, 20, 20), radius_mm=10, noise=5)
    image.SetOrigin((1e30, 0.0, 0.0))
    path, out = tmp_path / "far.nrrd", tmp_path / "far.seg.nrrd"
    sitk.WriteImage(image, str(path))
    argv = ["segment", str(path), "--model", str(sphere_model), "--quiet", "--threads", "1"]
    assert main([*argv, "-o", str(out)]) != 0
    err = capsys.readouterr().err
    assert "more than 1 km" in err and "Traceback" not in err and not out.exists()


def test_a_field_of_view_wider_than_any_scanner_warns():
    # tester 8: the example CT (122 x 101 x 112 voxels of 3 mm) with 9 mm in its header, 1.1 m
    # wide, gave "liver 22074.12 ml" with no warning
    lps = np.diag([-1.0, -1.0, 1.0])
    warnings = check_header((122, 101, 112), (9, 9, 9), (178.0, -11.3, 94.3), lps, "ct.nii.gz")
    assert len(warnings) == 1 and warnings[0].startswith("ct.nii.gz is 1.1 m wide (left-right)")
    assert "voxel spacing (9 x 9 x 9 mm) is probably wrong" in warnings[0]
    assert check_header((122, 101, 112), (3, 3, 3), (178.0, -11.3, 94.3), lps, "ct") == []
    # a 2 m whole-body scan stored with its long axis first: the length is along z, not across
    sagittal_first = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    assert check_header((1000, 512, 512), (2, 0.9, 0.9), (0.0, 0.0, 0.5), sagittal_first, "x") == []


def test_a_scan_longer_than_any_patient_warns():
    # tester 10: 50 mm slices in a header made a 5.6 m tall image with only the thick-voxel
    # warning; a real 2 m whole-body scan is not warned
    lps = np.diag([-1.0, -1.0, 1.0])
    warnings = check_header((512, 512, 112), (0.8, 0.8, 50), (0.0, 0.0, 0.5), lps, "ct.nii.gz")
    long = [w for w in warnings if w.startswith("ct.nii.gz is 5.6 m long (head-foot)")]
    assert len(warnings) == 2 and len(long) == 1 and any("thick" in w for w in warnings)
    assert "voxel spacing (0.8 x 0.8 x 50 mm) is probably wrong" in long[0]
    assert check_header((512, 512, 1000), (0.8, 0.8, 2), (0.0, 0.0, 0.5), lps, "ct") == []


def test_4d_nrrd_with_one_frame_reads_like_the_4d_nifti(tmp_path):
    image = sitk.GetImageFromArray(ct_like())
    image.SetSpacing((0.5, 0.6, 0.7))
    image.SetOrigin((1.0, 2.0, 3.0))
    four_d = sitk.JoinSeries([image])
    volumes = []
    for suffix in (".nii.gz", ".nrrd", ".mha"):
        path = tmp_path / f"frame{suffix}"
        sitk.WriteImage(four_d, str(path))
        volumes.append(read_volume([path]))
    for other in volumes[1:]:
        assert np.array_equal(other.array, volumes[0].array)
        assert np.allclose(other.spacing, volumes[0].spacing, atol=1e-6)
        assert np.allclose(other.origin, volumes[0].origin)
    two = tmp_path / "two.nrrd"
    sitk.WriteImage(sitk.JoinSeries([image, image]), str(two))
    with pytest.raises(UNetPlusPlusError, match="4D image"):
        read_volume([two])


# --------------------------------------------------------------------------- intensities
@pytest.mark.parametrize("value, what", [(0.0, "empty"), (37.0, "constant")])
def test_constant_or_empty_channel_is_refused_naming_it(value, what):
    rng = np.random.default_rng(0)
    mr = [rng.gamma(2.0, 50.0, (8, 10, 12)).astype(np.float32) for _ in range(4)]
    mr[2] = np.full_like(mr[2], value)
    with pytest.raises(UNetPlusPlusError, match=f"'T1ce' is {what}"):
        check("brain-tumor", volume(*mr, names=BRATS))


def test_identical_channels_are_refused():
    rng = np.random.default_rng(0)
    mr = [rng.gamma(2.0, 50.0, (8, 10, 12)).astype(np.float32) for _ in range(4)]
    mr[3] = mr[1].copy()
    with pytest.raises(UNetPlusPlusError, match="'T1' and 'T2' are identical"):
        check("brain-tumor", volume(*mr, names=BRATS))


def test_channels_equal_only_on_the_compared_part_are_not_identical():
    """Identical channels are sought on a strided part of their samples first: two channels
    equal there (every 5th voxel) but not in between are not refused, identical ones are."""
    rng = np.random.default_rng(0)
    mr = [rng.gamma(2.0, 50.0, (20, 30, 40)).astype(np.float32) for _ in range(4)]
    mr[3] = mr[1].copy()
    with pytest.raises(UNetPlusPlusError, match="'T1' and 'T2' are identical"):
        check("brain-tumor", volume(*mr, names=BRATS))
    mr[3].reshape(-1)[1::5] += 1.0  # off the part (24000 voxels // 4096: every 5th)
    assert check("brain-tumor", volume(*mr, names=BRATS)) == []


def test_a_fraction_off_the_strided_part_makes_a_label_map_an_image():
    """The label-map test reads a strided part first (every 2nd of 150000 voxels): a BraTS
    _seg given as FLAIR is refused; with one fractional voxel off that part it is an image."""
    rng = np.random.default_rng(0)
    shape = (50, 60, 50)
    mr = [rng.gamma(2.0, 50.0, shape).astype(np.float32) for _ in range(3)]
    seg = rng.choice([0.0, 1.0, 2.0, 4.0], shape).astype(np.float32)
    with pytest.raises(UNetPlusPlusError, match="'FLAIR' looks like a label map .4 distinct"):
        check("brain-tumor", volume(seg, *mr, names=BRATS))
    seg.reshape(-1)[1] = 0.5
    assert check("brain-tumor", volume(seg, *mr, names=BRATS)) == []


@pytest.mark.parametrize(
    "array, match",
    [
        (np.random.default_rng(0).integers(0, 12, (8, 10, 12)), "looks like a label map"),
        (np.clip(ct_like(), -1024, None) + 1024, "HU = value - 1024"),  # no rescale
        (ct_like() / 1000.0, "no air"),  # a normalised CT
        (np.clip(ct_like(), -300, None), "no air"),  # a crop without air or lung
    ],
)
def test_ct_channel_that_cannot_be_hounsfield_units_is_refused(array, match):
    with pytest.raises(UNetPlusPlusError, match=match):
        check("liver", volume(array.astype(np.float32), names=["CT"]))


def test_ct_or_a_label_map_given_to_an_mr_model_is_refused():
    rng = np.random.default_rng(0)
    mr = [rng.gamma(2.0, 50.0, (8, 10, 12)).astype(np.float32) for _ in range(4)]
    assert check("brain-tumor", volume(*mr, names=BRATS)) == []
    seg = rng.choice([0.0, 1.0, 2.0, 4.0], (8, 10, 12)).astype(np.float32)  # a BraTS _seg
    for c in (0, 1):  # as FLAIR, as T1: refused like a label map given to the CT model
        given = list(mr)
        given[c] = seg
        with pytest.raises(UNetPlusPlusError, match=f"'{BRATS[c]}' looks like a label map .4 "):
            check("brain-tumor", volume(*given, names=BRATS))
    given = list(mr)
    given[0] = seg
    warnings = check_intensities(np.stack(given), BRATS, ["MR"] * 4, strict_modality=False)
    assert len(warnings) == 1 and "label map" in warnings[0]  # training data: a warning
    mr[0] = ct_like()  # a CT given as FLAIR
    with pytest.raises(UNetPlusPlusError, match="'FLAIR' looks like a CT"):
        check("brain-tumor", volume(*mr, names=BRATS))


def test_mr_with_many_negative_voxels_warns_and_a_few_do_not():
    rng = np.random.default_rng(1)
    mr = [rng.gamma(2.0, 50.0, (8, 10, 12)).astype(np.float32) for _ in range(4)]
    offset = [m - 100.0 for m in mr]  # an offset image: most voxels negative
    warnings = check("brain-tumor", volume(*offset, names=BRATS))
    assert len(warnings) == 4 and all("negative voxels" in w for w in warnings)
    assert "'FLAIR' has " in warnings[0]
    ringing = [m.copy() for m in mr]
    ringing[2].flat[:5] = -3.0  # 5 of 960 voxels: interpolation ringing, no warning
    assert check("brain-tumor", volume(*ringing, names=BRATS)) == []


def test_training_data_check_turns_modality_refusals_into_warnings():
    array = np.clip(ct_like(), -300, None)[np.newaxis]
    warnings = check_intensities(array, ["CT"], ["CT"], strict_modality=False)
    assert len(warnings) == 1 and "no air" in warnings[0]


# --------------------------------------------------------------------------- the issue's data
def test_issue_case_7_label_map_and_mr_given_to_the_liver_model_are_refused(shared_data, tmp_path):
    examples = shared_data / "liver" / "totalsegmentator-examples"
    code, _, out = run_cli(tmp_path, [examples / "example_seg_fast_force_split.nii.gz"], "liver")
    assert code == 2 and not out.exists()
    with pytest.raises(UNetPlusPlusError, match="label map .62 distinct integer values"):
        check("liver", read_volume([examples / "example_seg_fast_force_split.nii.gz"], ["CT"]))
    with pytest.raises(UNetPlusPlusError, match="not a CT in Hounsfield units: it holds no air"):
        check("liver", read_volume([examples / "example_mr_sm.nii.gz"], ["CT"]))
    code, _, out = run_cli(tmp_path, [examples / "example_mr_sm.nii.gz"], "liver")
    assert code == 2 and not out.exists()


def test_issue_case_2_blank_brats_channels_are_refused(shared_data, tmp_path, capsys):
    zeros = sitk.GetImageFromArray(np.zeros((155, 240, 240), np.uint8))
    paths = []
    for name in BRATS:
        paths.append(tmp_path / f"zero_{name}.nii.gz")
        sitk.WriteImage(zeros, str(paths[-1]))
    code, _, out = run_cli(tmp_path, paths, "brain-tumor")
    assert code == 2 and not out.exists()
    assert "error: Input channel 'FLAIR' is empty (all 0)" in capsys.readouterr().err
    case = shared_data / "brain-tumor" / "brats2018" / "Brats18_CBICA_ALU_1"
    files = [case / f"Brats18_CBICA_ALU_1_{n.lower()}.nii.gz" for n in BRATS]
    real = read_volume(files, BRATS)
    assert check("brain-tumor", real) == []
    real.array[2] = 0.0  # T1ce replaced by zeros
    with pytest.raises(UNetPlusPlusError, match="'T1ce' is empty"):
        check("brain-tumor", real)


def test_real_inputs_of_the_shipped_models_pass_without_warnings(shared_data):
    assert check("liver", read_volume([EXAMPLE_CT], ["CT"])) == []
    liver = shared_data / "liver"
    for path in [liver / "lits-partial" / "liver_0_ct.nii.gz", liver / "dcmqi-liver" / "ct-3slice"]:
        assert check("liver", read_volume([path], ["CT"])) == [], path
    vois = sorted((shared_data / "lung-nodule" / "lidc-vois" / "image").glob("*.nii.gz"))
    for path in vois[::40]:
        assert check("lung-nodule", read_volume([path], ["CT"])) == [], path
    slabs = sorted((shared_data / "lung-nodule" / "lidc-dicom-slabs").iterdir())
    for folder in [p for p in slabs if p.is_dir()]:  # one series each: no ambiguity
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the truncated slice of patient 3 is skipped
            slab = read_volume([folder], ["CT"])
        assert check("lung-nodule", slab) == [], folder
    brats12 = shared_data / "brain-tumor" / "brats2012-HG0001"
    files = [brats12 / f"BRATS_HG0001_{n}.mha" for n in ("FLAIR", "T1", "T1C", "T2")]
    assert check("brain-tumor", read_volume(files, BRATS)) == []


def test_predictor_reports_warnings_in_its_info(sphere_predictor):
    from helpers import make_sphere_image
    from UNetPlusPlusLib.engine.image_read import volume_from_sitk

    image = make_sphere_image(size_xyz=(24, 24, 3), spacing=(2.0, 2.0, 12.0), radius_mm=8.0)
    result = sphere_predictor.segment(volume_from_sitk([image]), depth=1)
    assert any("very thick voxels" in w for w in result.info["warnings"])


def test_predictor_refuses_before_inference():
    predictor = Predictor.from_task("liver", device="cpu")
    with pytest.raises(UNetPlusPlusError, match="is empty"):
        predictor.segment(volume(np.zeros((8, 10, 12), np.float32), names=["CT"]))
