"""`unetpp` as a new user meets it (issue 13): errors before work, all outputs or none,
options checked at parse time, one file per extension, one segment per point, no torch before
the checks, quiet closed pipes, the umask, readable warnings, a documented command set."""

from __future__ import annotations

import json
import locale
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import slicerio
from helpers import make_sphere_image, one_error_line, write_ball_ct
from UNetPlusPlusLib import cli_outputs
from UNetPlusPlusLib.cli import build_parser, main
from UNetPlusPlusLib.errors import UNetPlusPlusError

REPO = Path(__file__).resolve().parents[1]
LIB_PARENT = REPO / "UNetPlusPlus"


@pytest.fixture()
def ball(tmp_path) -> Path:
    """A 300 HU ball of radius 10 mm in a 48 x 40 x 40 mm CT-like volume (2 mm voxels)."""
    return write_ball_ct(tmp_path / "ball.nii.gz")


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


# ------------------------------------------------------------------ 1. no model found
@pytest.mark.parametrize("command", ["list", "verify", "prepare"])
def test_models_list_with_nothing_found_is_an_error_naming_where_it_looked(
    tmp_path, monkeypatch, capsys, command
):
    """Also `models verify` and `models prepare` without names, which printed nothing and
    exited 0 (prepare: review20b)."""
    from UNetPlusPlusLib.engine import model_search

    monkeypatch.setattr(model_search, "builtin_models_dir", lambda: None)
    monkeypatch.setattr(model_search, "expected_dir", lambda *parts: tmp_path / "builtin")
    monkeypatch.setenv("UNETPP_HOME", str(tmp_path / "home"))
    (tmp_path / "extra").mkdir()  # an empty folder (one that does not exist is refused)
    monkeypatch.setenv("UNETPP_MODELS", str(tmp_path / "extra"))
    assert main(["models", command]) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.startswith("error: No model") and err.count("\n") == 1 and not captured.out
    for folder in (tmp_path / "extra", tmp_path / "home" / "models", tmp_path / "builtin"):
        assert str(folder) in err


def test_unetpp_models_may_name_a_package_folder_itself(
    sphere_model, tmp_path, monkeypatch, capsys
):
    """README: "or by adding a model folder to the UNETPP_MODELS environment variable", and the
    error: "add its folder to UNETPP_MODELS". Only folders holding packages were searched, so
    a package's own folder was skipped in silence and `--task` kept saying "No model" (tester
    fresh30). A folder that holds model.json is that one package."""
    monkeypatch.setenv("UNETPP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("UNETPP_MODELS", str(sphere_model.parent))
    assert main(["models", "list"]) == 0
    assert f"sphere-test: sphere-test  ({sphere_model.parent})" in capsys.readouterr().out
    from UNetPlusPlusLib.engine.registry import find_model

    assert Path(find_model("sphere-test").path).resolve() == sphere_model.resolve()


@pytest.mark.parametrize("below", ["", "sub"])
def test_unetpp_home_that_is_a_file_is_one_clear_error(
    ball, sphere_model, tmp_path, monkeypatch, capsys, below
):
    """UNETPP_HOME naming a file: `segment --model` ran into OpenVINO's graph cache and said
    "the openvino executor could not run this model (NotADirectoryError)" (tester 12)."""
    home = tmp_path / "home-file"
    home.write_text("not a folder")
    setting = str(home / below) if below else str(home)
    monkeypatch.setenv("UNETPP_HOME", setting)
    monkeypatch.setenv("UNETPP_EXECUTOR", "openvino")
    argv = ["segment", str(ball), "--model", str(sphere_model), "-o", str(tmp_path / "o.nrrd")]
    for command in (argv, ["models", "list"]):
        assert main(command) == 2
        line = one_error_line(capsys)
        assert f"UNETPP_HOME={setting} " in line and "not a folder" in line
        assert "NotADirectoryError" not in line
    assert not (tmp_path / "o.nrrd").exists()


def test_an_unwritable_graph_cache_is_named(ball, sphere_model, tmp_path, monkeypatch, capsys):
    """A UNETPP_HOME whose graph cache cannot be written said only "OpenVINO could not run
    this model (FileNotFoundError)", naming no folder (tester 20)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "graphs").write_text("a file where the graph cache goes")
    monkeypatch.setenv("UNETPP_HOME", str(home))
    monkeypatch.setenv("UNETPP_EXECUTOR", "openvino")
    pytest.importorskip("openvino")
    argv = ["segment", str(ball), "--model", str(sphere_model), "-o", str(tmp_path / "o.nrrd")]
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert f"its graph cache {home / 'graphs'}" in line and "cannot be written" in line, line
    assert "Point UNETPP_HOME at a writable folder" in line
    assert not (tmp_path / "o.nrrd").exists()


# ------------------------------------------------------------------ 3. outputs before work
def test_output_under_a_file_is_refused_before_any_work(
    ball, sphere_model, tmp_path, no_work, capsys
):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    args = ["segment", str(ball), "--model", str(sphere_model)]
    assert main([*args, "-o", str(blocker / "sub" / "x.seg.nrrd")]) == 2
    assert "blocker is a file" in one_error_line(capsys)
    assert (
        main([*args, "-o", str(tmp_path / "a.seg.nrrd"), "--preview", str(blocker / "p.png")]) == 2
    )
    assert "--preview" in one_error_line(capsys)
    assert not (tmp_path / "a.seg.nrrd").exists()


def test_output_that_is_a_folder_or_read_only_is_refused(
    ball, sphere_model, tmp_path, no_work, monkeypatch, capsys
):
    (tmp_path / "folder.seg.nrrd").mkdir()
    args = ["segment", str(ball), "--model", str(sphere_model)]
    assert main([*args, "-o", str(tmp_path / "folder.seg.nrrd")]) == 2
    assert "names a folder, not a file" in one_error_line(capsys)
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(  # the test may run as root, who may write anywhere
        cli_outputs.os, "access", lambda p, mode: Path(p) != locked and real_access(p, mode)
    )
    assert (
        main([*args, "-o", str(tmp_path / "ok.seg.nrrd"), "--labelmap", str(locked / "l.nrrd")])
        == 2
    )
    line = one_error_line(capsys)
    assert "--labelmap" in line and "no write permission" in line
    assert _files(tmp_path) == ["ball.nii.gz", "folder.seg.nrrd", "locked"]


def test_a_failing_output_leaves_no_output_at_all(
    ball, sphere_model, tmp_path, monkeypatch, capsys
):
    import UNetPlusPlusLib.preview as preview

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(preview, "render_preview", full_disk)
    out = tmp_path / "new" / "deeper"
    code = main([
        "segment", str(ball), "--model", str(sphere_model), "--quiet",
        "-o", str(out / "x.seg.nrrd"), "--labelmap", str(tmp_path / "x.nrrd"),
        "--preview", str(out / "x.png"),
    ])  # fmt: skip
    assert code == 2
    warning, line = capsys.readouterr().err.strip().splitlines()  # the new folder, said first
    assert warning.startswith(f"warning: -o {out / 'x.seg.nrrd'}, --preview {out / 'x.png'}: ")
    assert f"the folder {tmp_path / 'new'} does not exist, so it is created" in warning
    assert line.startswith("error: Cannot write") and "x.png: the disk is full;" in line
    assert _files(tmp_path) == ["ball.nii.gz"]  # no file, no temporary file, no new folder


# ------------------------------------------------------------------ 4. options at parse time
@pytest.mark.parametrize(
    "option,message",
    [
        (["--overlap", "1.5"], "--overlap"),
        (["--overlap", "-0.1"], "--overlap"),
        (["--overlap", "nan"], "--overlap"),
        (["--tile-batch", "0"], "--tile-batch"),
        (["--threads", "0"], "--threads"),
        (["--threads", "two"], "--threads"),
        (["--depth", "7"], "Depth"),
        (["--device", "gpu"], "--device"),
        (["--roi", "0", "0", "0", "nan", "1", "1"], "--roi"),
        (["--point", "1", "2", "inf"], "--point"),
        (["--preview", "p.jpg"], "--preview"),
        (["--labelmap", "l.seg.nrrd.txt"], "--labelmap"),
        (["--probabilities", "prob"], "--probabilities"),
    ],
)
def test_bad_option_values_are_user_errors_at_parse_time(
    ball, sphere_model, tmp_path, no_work, capsys, option, message
):
    out = tmp_path / "x.seg.nrrd"
    code = main(["segment", str(ball), "--model", str(sphere_model), "-o", str(out), *option])
    assert code == 2
    assert message in one_error_line(capsys)
    assert not out.exists()


def test_unknown_subcommand_is_one_line(capsys):
    assert main(["segmnet"]) == 2
    assert "segmnet" in one_error_line(capsys)


# ------------------------------------------------------------------ 5. empty ROI
def test_zero_thickness_roi_is_refused(ball, sphere_model, sphere_predictor, tmp_path, capsys):
    out = tmp_path / "x.seg.nrrd"
    roi = ["--roi", "0", "10", "30", "5", "20", "30"]  # z1 == z2
    assert main(["segment", str(ball), "--model", str(sphere_model), "-o", str(out), *roi]) == 2
    assert "empty" in one_error_line(capsys) and not out.exists()
    from UNetPlusPlusLib.engine.image_read import read_volume
    from UNetPlusPlusLib.engine.volume import Box

    with pytest.raises(UNetPlusPlusError, match="empty"):  # the engine refuses it too
        sphere_predictor.segment(read_volume([ball]), roi=Box((0, 10, 30), (5, 20, 30)))


# ------------------------------------------------------------------ 6. the format -o names
def test_output_extension_decides_the_format(ball, sphere_model, tmp_path, capsys):
    out = tmp_path / "labels.nii.gz"
    assert (
        main(["segment", str(ball), "--model", str(sphere_model), "--quiet", "-o", str(out)]) == 0
    )
    labelmap = sitk.ReadImage(str(out))  # a real NIfTI labelmap
    assert labelmap.GetSize() == sitk.ReadImage(str(ball)).GetSize()
    assert sitk.GetArrayFromImage(labelmap).max() == 1
    assert out.read_bytes()[:2] == b"\x1f\x8b"  # gzip, not NRRD text
    capsys.readouterr()
    assert (
        main(["segment", str(ball), "--model", str(sphere_model), "-o", str(tmp_path / "x.txt")])
        == 2
    )
    assert ".seg.nrrd" in one_error_line(capsys)


# ------------------------------------------------------------------ 7. several points
def test_each_point_is_its_own_segment(sphere_model, tmp_path, capsys):
    centres = [(-30.0, 0.0, 0.0), (36.0, 0.0, 0.0)]  # LPS, 66 mm apart
    image = make_sphere_image(
        (72, 32, 32), origin=(-70.0, -31.0, -31.0), center_lps=centres[0], radius_mm=9
    )
    second = make_sphere_image(
        (72, 32, 32), origin=(-70.0, -31.0, -31.0), center_lps=centres[1], radius_mm=9
    )
    image = sitk.Maximum(image, second)
    path = tmp_path / "two.nrrd"
    sitk.WriteImage(sitk.Cast(image, sitk.sitkInt16), str(path))
    out = tmp_path / "two.seg.nrrd"
    points = [v for c in centres for v in ("--point", *map(str, c))]
    code = main(["segment", str(path), "--model", str(sphere_model), "--lps", "--progress-json",
                 "-o", str(out), *points])  # fmt: skip
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["result"]
    assert result["points"] == 2 and set(result["volumes_ml"]) == {"liver 1", "liver 2"}
    ball_ml = 4 / 3 * np.pi * 9**3 / 1000
    assert all(abs(v - ball_ml) < 0.5 * ball_ml for v in result["volumes_ml"].values())
    segmentation = slicerio.read_segmentation(str(out))
    assert [s["name"] for s in segmentation["segments"]] == ["liver 1", "liver 2"]
    voxels = np.asarray(segmentation["voxels"])  # (i, j, k)
    for value, centre in enumerate(centres, start=1):
        i = int(np.argwhere(voxels == value)[:, 0].mean())
        assert abs(-70.0 + 2.0 * i - centre[0]) < 6  # each segment sits on its own ball
    both = ["--labelmap", str(tmp_path / "l.nrrd"), "--probabilities", str(tmp_path / "p.nrrd")]
    assert main(["segment", str(path), "--model", str(sphere_model), *points, *both]) == 2
    assert "--probabilities" in one_error_line(capsys)


def test_an_empty_click_among_several_names_its_point(shared_data, tmp_path, capsys):
    """Tester 6: with several --point, a click on no nodule warned "Nothing (nodule) was found
    at the clicked point ...; the result is empty" without saying which point; it names it now.
    LIDC-IDRI-0141_R_1 (expert nodule about 9.8 ml), a click on it and one 15 mm beside it."""
    image = shared_data / "lung-nodule" / "lidc-vois" / "image" / "LIDC-IDRI-0141_R_1.nii.gz"
    out = tmp_path / "nodules.seg.nrrd"
    clicks = ["--point", "94.35", "177.54", "211.65", "--point", "80", "170", "211.65"]
    assert main(["segment", str(image), "--task", "lung-nodule", "-o", str(out), *clicks]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("warning: ") == 1, captured.err
    assert "at point 2 of 2" in captured.err, captured.err
    assert "its segment (ending in ' 2') is empty" in captured.err, captured.err
    assert "nodule 1 " in captured.out and "nodule 2 0.0 ml" in captured.out, captured.out


# ------------------------------------------------------------------ 8. no torch before checks
@pytest.mark.parametrize(
    "args",
    [
        ["segment", "missing.nii.gz", "--task", "liver", "-o", "x.seg.nrrd"],
        ["segment", "missing.nii.gz", "--task", "liver", "-o", "x.seg.nrrd", "--overlap", "2"],
    ],
)
def test_errors_come_before_torch_is_imported(tmp_path, args):
    code = (
        "import sys; from UNetPlusPlusLib.cli import main; c = main(sys.argv[1:]); "
        "print(c, 'torch' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(LIB_PARENT)}
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.stdout.split() == ["2", "False"], done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1


def test_input_sanity_refuses_before_torch_is_imported(tmp_path):
    """The intensity checks run before the network loads: a CT without air is refused in the
    time of reading it, with torch never imported (issue 14, end to end)."""
    values = np.random.default_rng(0).integers(0, 400, (12, 14, 16)).astype(np.int16)
    sitk.WriteImage(sitk.GetImageFromArray(values), str(tmp_path / "mr.nii.gz"))
    code = (
        "import sys; from UNetPlusPlusLib.cli import main; c = main(sys.argv[1:]); "
        "print(c, 'torch' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(LIB_PARENT)}
    args = ["segment", "mr.nii.gz", "--task", "liver", "-o", "x.seg.nrrd"]
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.stdout.split() == ["2", "False"], done.stderr
    assert "is not a CT in Hounsfield units" in done.stderr and done.stderr.count("\n") == 1
    assert not (tmp_path / "x.seg.nrrd").exists()


def test_a_segment_run_as_a_program_ends_with_every_output_complete(tmp_path, sphere_model):
    """Run as a program, `segment` skips the interpreter's teardown (cli.main): the result
    line, the segmentation and the labelmap are all there and whole."""
    path = tmp_path / "ct.nrrd"
    sitk.WriteImage(make_sphere_image(), str(path))
    env = {**os.environ, "PYTHONPATH": str(LIB_PARENT)}
    outputs = ["-o", "x.seg.nrrd", "--labelmap", "x.nii.gz", "--progress-json", "--threads", "1"]
    done = subprocess.run(
        [sys.executable, "-m", "UNetPlusPlusLib.cli", "segment", str(path), "--model",
         str(sphere_model), *outputs], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])["result"]
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "x.nii.gz")))
    segmentation = slicerio.read_segmentation(str(tmp_path / "x.seg.nrrd"))
    voxels = np.asarray(segmentation["voxels"]).transpose(2, 1, 0)
    assert labels.any() and np.array_equal(voxels, labels)
    assert result["volumes_ml"] and sorted(p.name for p in tmp_path.iterdir()) == [
        "ct.nrrd",
        "x.json",  # the NIfTI labelmap's run record (run_record.py)
        "x.nii.gz",
        "x.seg.nrrd",
    ]


# ------------------------------------------------------------------ 9. closed pipe
def test_a_closed_pipe_ends_quietly(tmp_path):
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `| head` that has already exited
    env = {**os.environ, "PYTHONPATH": str(LIB_PARENT), "UNETPP_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "UNetPlusPlusLib.cli", "models", "info", "liver"],
        stdout=write_end, stderr=subprocess.PIPE, env=env, text=True, timeout=120,
    )  # fmt: skip
    os.close(write_end)
    assert done.stderr == ""
    assert done.returncode == 141  # what a shell reports for a command ended by a closed pipe


# ------------------------------------------------------------------ 10. the umask
def test_outputs_follow_the_umask(ball, sphere_model, tmp_path):
    before = os.umask(0o027)  # group may read, others nothing: neither mkstemp's 0600 nor 0644
    try:
        out, labelmap = tmp_path / "x.seg.nrrd", tmp_path / "x.nii.gz"
        args = ["segment", str(ball), "--model", str(sphere_model), "--quiet"]
        assert main([*args, "-o", str(out), "--labelmap", str(labelmap)]) == 0
    finally:
        os.umask(before)
    for path in (out, labelmap):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640


# ------------------------------------------------------------------ 11. warnings, one line each
def test_dicom_patient_folder_with_a_truncated_slice_gives_one_clean_warning(
    sphere_model, tmp_path, capfd
):
    from test_volume import truncate, write_dicom_series

    patient = tmp_path / "patient"
    patient.mkdir()
    ctype = locale.setlocale(locale.LC_CTYPE)
    try:
        paths = write_dicom_series(patient / "series", count=6)
    finally:  # GDCM's writer sets LC_CTYPE to "C", which later tests would inherit
        locale.setlocale(locale.LC_CTYPE, ctype)
    truncate(paths[-1])
    capfd.readouterr()
    args = ["segment", str(patient), "--model", str(sphere_model), "--quiet"]
    main([*args, "--labelmap", str(tmp_path / "l.nrrd")])
    err = capfd.readouterr().err  # ITK's own messages too: file descriptor 2
    lines = err.strip().splitlines()
    assert "No Series were found" not in err and "warnings.warn" not in err
    skipped = [line for line in lines if "slice05.dcm" in line]
    assert len(skipped) == 1 and skipped[0].startswith("warning: Skipped 1 unreadable")
    assert all(line.startswith(("warning: ", "error: ")) for line in lines), lines


def test_series_with_no_dicom_folder_among_the_inputs_is_refused(sphere_model, ball, capsys):
    """`--series UID` with an image file was ignored in silence: the file was segmented as if
    the series had been found (tester fresh30). It is one error, before any work."""
    out = ball.parent / "l.nrrd"
    args = ["segment", str(ball), "--model", str(sphere_model), "--quiet", "--labelmap", str(out)]
    assert main([*args, "--series", "1.2.3"]) == 2
    error = one_error_line(capsys)
    assert "--series 1.2.3" in error and "ball.nii.gz" in error, error
    assert not out.exists()


def test_an_empty_series_uid_is_refused(tmp_path, sphere_model, capsys):
    """`--series ''` on a DICOM folder picked its series as if the option were left out."""
    from test_volume import write_dicom_series

    ctype = locale.setlocale(locale.LC_CTYPE)
    try:
        write_dicom_series(tmp_path / "series", count=6)
    finally:  # GDCM's writer sets LC_CTYPE to "C"
        locale.setlocale(locale.LC_CTYPE, ctype)
    out = tmp_path / "l.nrrd"
    args = ["segment", str(tmp_path / "series"), "--model", str(sphere_model), "--quiet"]
    assert main([*args, "--labelmap", str(out)]) == 0  # the folder itself segments
    out.unlink()
    for empty in ("", " "):
        assert main([*args, "--labelmap", str(out), "--series", empty]) == 2
        error = capsys.readouterr().err
        assert "argument --series: an empty UID names no series" in error, error
        assert not out.exists()


# ------------------------------------------------------------------ 12. training: skipped files
def test_training_names_images_without_a_segmentation(tmp_path):
    from test_training_dataset import write_slicer_dataset
    from UNetPlusPlusLib.training.dataset import find_cases
    from UNetPlusPlusLib.training.dataset_slicer import describe_slicer_export

    folder = write_slicer_dataset(tmp_path / "cases", cases=2)
    sitk.WriteImage(sitk.Image([8, 8, 8], sitk.sitkInt16), str(folder / "orphan.nrrd"))
    dataset = describe_slicer_export(folder, labels=["tumor"])
    with pytest.warns(UserWarning, match=r"without a segmentation.*orphan\.nrrd"):
        cases = find_cases(dataset)
    assert len(cases) == 2


# ------------------------------------------------------------------ 13. README lists every command
def test_readme_lists_every_command():
    readme = (REPO / "README.md").read_text()
    parser = build_parser()
    commands = []
    for action in parser._subparsers._group_actions:  # the sub-commands, as argparse has them
        for name, sub in action.choices.items():
            inner = [a for a in sub._actions if a.__class__.__name__ == "_SubParsersAction"]
            commands += [f"unetpp {name} {n}" for a in inner for n in a.choices] or [
                f"unetpp {name}"
            ]
    assert "unetpp models info" in commands
    missing = [command for command in commands if command not in readme]
    assert not missing, missing


def test_a_relative_unetpp_home_is_refused(tmp_path, monkeypatch, capsys):
    """UNETPP_HOME=rel made a cache under the current folder, silently (tester 20)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("UNETPP_HOME", "rel/home")
    assert main(["models", "list"]) == 2
    line = one_error_line(capsys)
    assert line.startswith("error: UNETPP_HOME=rel/home is a relative path"), line
    assert f"UNETPP_HOME={tmp_path / 'rel' / 'home'}" in line
    assert list(tmp_path.iterdir()) == []  # no cache made here
