"""Never lose a user's edits: `unetpp segment` and `unetpp serve` replace an existing output only
when it is an unchanged output of theirs (cli_outputs.py, output_stamp.py); a file corrected by
hand is refused before any work, left byte-identical, and replaced only with --overwrite."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import write_ball_ct
from UNetPlusPlusLib.cli import build_parser, main
from UNetPlusPlusLib.cli_outputs import REPLACED_WARNING, OutputSet
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.output_stamp import stamp_state


@pytest.fixture()
def ball(tmp_path) -> Path:
    """A 300 HU ball of radius 10 mm in a 48 x 40 x 40 mm CT-like volume (2 mm voxels)."""
    return write_ball_ct(tmp_path / "ball.nii.gz", origin=(-24.0, -20.0, -20.0))


def _argv(ball: Path, model: Path, *outputs: str) -> list[str]:
    return ["segment", str(ball), "--model", str(model), "--threads", "1", "--quiet", *outputs]


def _edit_labelmap(path: Path) -> None:
    """Load, paint one voxel, save with SimpleITK: what a user's editor does."""
    image = sitk.ReadImage(str(path))
    array = sitk.GetArrayFromImage(image)
    array[0, 0, 0] = 1 - array[0, 0, 0]
    edited = sitk.GetImageFromArray(array)
    edited.CopyInformation(image)
    sitk.WriteImage(edited, str(path), True)


def _edit_segmentation(path: Path) -> None:
    """Load, paint one voxel, save with slicerio (no stamp): a corrected .seg.nrrd."""
    import slicerio

    segmentation = slicerio.read_segmentation(str(path))
    segmentation["voxels"][0, 0, 0] = 1 - segmentation["voxels"][0, 0, 0]
    slicerio.write_segmentation(str(path), segmentation)


def test_a_rerun_replaces_its_own_outputs_silently(ball, sphere_model, tmp_path, capsys):
    """make demo, scripts and bench rerun into the same paths: every output is stamped, so the
    second run replaces them (a new file, atomically renamed) without a warning."""
    names = ["x.seg.nrrd", "x.nii.gz", "p.nrrd", "d.mha", "v.png"]
    out, labels, prob, dis, png = (tmp_path / n for n in names)
    argv = _argv(ball, sphere_model, "-o", str(out), "--labelmap", str(labels))
    argv += ["--probabilities", str(prob), "--disagreement", str(dis), "--preview", str(png)]
    assert main(argv) == 0
    capsys.readouterr()
    paths = [out, labels, prob, dis, png]
    assert [stamp_state(p) for p in paths] == ["valid"] * 5
    inodes = [p.stat().st_ino for p in paths]
    assert main(argv) == 0
    assert "warning" not in capsys.readouterr().err
    assert all(p.stat().st_ino != i for p, i in zip(paths, inodes))  # each one replaced
    assert [stamp_state(p) for p in paths] == ["valid"] * 5


@pytest.mark.parametrize(
    "name, option, edit",
    [
        ("x.seg.nrrd", "-o", _edit_segmentation),
        ("x.nii.gz", "--labelmap", _edit_labelmap),
        ("x.nii", "-o", _edit_labelmap),
        ("x.nrrd", "--labelmap", _edit_labelmap),
    ],
)
def test_a_hand_edited_output_is_refused_before_any_work_and_kept(
    ball, sphere_model, tmp_path, capsys, monkeypatch, name, option, edit
):
    path = tmp_path / name
    argv = _argv(ball, sphere_model, option, str(path))
    assert main(argv) == 0
    edit(path)
    edited = path.read_bytes()
    capsys.readouterr()

    from UNetPlusPlusLib import cli_segment

    def refuse(args):
        raise AssertionError("work started before the output check")

    with monkeypatch.context() as patch:
        patch.setattr(cli_segment, "_load_manifest", refuse)
        assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert f"{option} {path} already exists" in err[0] and "--overwrite" in err[0], err
    assert path.read_bytes() == edited
    record = ["x.json"] if name.startswith("x.nii") else []  # a NIfTI file's run record
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["ball.nii.gz", name, *record])

    assert main([*argv, "--overwrite"]) == 0
    notice = "warning: " + REPLACED_WARNING.format(option=option, output=str(path))
    assert notice in capsys.readouterr().err.splitlines()
    assert path.read_bytes() != edited and stamp_state(path) == "valid"


def test_a_file_of_another_program_is_refused_with_its_reason(
    ball, sphere_model, tmp_path, capsys, no_work
):
    path = tmp_path / "mine.seg.nrrd"
    path.write_bytes(b"NRRD0004\ntype: uchar\n\n")
    assert main(_argv(ball, sphere_model, "-o", str(path))) == 2
    assert "was not written by unetpp" in capsys.readouterr().err
    assert path.read_bytes() == b"NRRD0004\ntype: uchar\n\n"


def test_a_file_saved_there_during_the_run_is_not_replaced(ball, sphere_model, tmp_path):
    """The check is repeated just before the renames: Slicer saving the user's corrections to
    that path while the engine works must not lose them; nothing of the run is written."""
    from UNetPlusPlusLib.cli_segment import run_segment

    out, labels = tmp_path / "x.seg.nrrd", tmp_path / "x.nii.gz"
    args = build_parser().parse_args(_argv(ball, sphere_model, "-o", str(out)))
    args.labelmap = str(labels)

    def progress(stage, done, total):
        if stage == "write" and done == 0:
            out.write_bytes(b"the user's corrections")

    with pytest.raises(UNetPlusPlusError, match="while this run was working"):
        run_segment(args, progress)
    assert out.read_bytes() == b"the user's corrections"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ball.nii.gz", "x.seg.nrrd"]


def test_two_runs_onto_one_path_leave_one_whole_file(tmp_path):
    """Two writers staged at once: each rename is atomic; the later commit wins and its file
    is whole and stamped (the earlier run's output is ours, so it is replaced)."""
    target = tmp_path / "x.nrrd"
    images = [sitk.GetImageFromArray(np.full((4, 4, 4), v, np.uint8)) for v in (1, 2)]
    first, second = OutputSet(), OutputSet()
    with first, second:
        first.stage(str(target), lambda p: sitk.WriteImage(images[0], str(p), True))
        second.stage(str(target), lambda p: sitk.WriteImage(images[1], str(p), True))
        second.commit()
        assert sitk.GetArrayFromImage(sitk.ReadImage(str(target))).max() == 2
        first.commit()
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(target))).max() == 1
    assert stamp_state(target) == "valid"
    assert [p.name for p in tmp_path.iterdir()] == ["x.nrrd"]  # no temporary file left


def test_serve_refuses_an_edited_output_and_overwrite_replaces_it(ball, sphere_model, tmp_path):
    from UNetPlusPlusLib.cli_serve import serve
    from UNetPlusPlusLib.warm_cache import WarmCache

    path = tmp_path / "labels.nrrd"
    base = [str(ball), "--model", str(sphere_model), "--threads", "1", "--labelmap", str(path)]

    def ask(*argvs):
        replies = io.StringIO()
        lines = "".join(json.dumps({"id": i, "argv": a}) + "\n" for i, a in enumerate(argvs))
        serve(io.StringIO(lines), replies, build_parser, cache=WarmCache())
        ends = [json.loads(line) for line in replies.getvalue().splitlines()]
        return [end for end in ends if "result" in end or "error" in end]

    assert "result" in ask(base)[0] and stamp_state(path) == "valid"
    _edit_labelmap(path)
    edited = path.read_bytes()
    refused, again, replaced = ask(base, base, [*base, "--overwrite"])
    assert refused["status"] == 2 and "--overwrite" in refused["error"], refused
    assert str(path) in refused["error"]
    assert again["status"] == 2  # still refused: nothing changed it
    assert "result" in replaced, replaced
    assert any("--overwrite" in w for w in replaced["result"]["warnings"])
    assert path.read_bytes() != edited and stamp_state(path) == "valid"
