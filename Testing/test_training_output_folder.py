"""`unetpp train -o`: a file is refused, and an earlier run in the folder is kept unless
--resume or --overwrite (training/output_guard.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import one_error_line
from test_training_dataset import write_slicer_dataset
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.training.cli import main
from UNetPlusPlusLib.training.output_guard import check_outside_dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = [
    "--labels", "tumor", "--features", "4", "8", "16", "32", "64", "4",
    "--no-progress", "--threads", "1", "--precision", "fp32", "--time-budget", "1h",
]  # fmt: skip


def test_an_output_that_is_a_file_isone_error_line(tmp_path, capsys):
    data = write_slicer_dataset(tmp_path / "data", cases=4)
    existing = tmp_path / "notes.txt"
    existing.write_text("mine")
    assert main([str(data), "-o", str(existing), *TINY, "--plan-only"]) == 2
    assert "is a file" in one_error_line(capsys)
    assert existing.read_text() == "mine"
    assert main([str(data), "-o", str(existing / "sub"), *TINY, "--plan-only"]) == 2
    assert "is a file" in one_error_line(capsys)


def test_an_earlier_run_is_kept_unless_overwrite(tmp_path, capsys):
    data = write_slicer_dataset(tmp_path / "data", cases=4)
    out = tmp_path / "out"
    assert main([str(data), "-o", str(out), *TINY, "--plan-only"]) == 0
    plan = (out / "plan.json").read_text()
    (out / "plan.json").write_text(plan.replace('"budget_s": 3600', '"budget_s": 3601'))
    edited = (out / "plan.json").read_text()
    assert edited != plan
    capsys.readouterr()
    assert main([str(data), "-o", str(out), *TINY, "--plan-only"]) == 2
    line = one_error_line(capsys)
    assert "plan.json" in line and "--resume" in line and "--overwrite" in line
    assert (out / "plan.json").read_text() == edited  # not rewritten
    assert main([str(data), "-o", str(out), *TINY, "--plan-only", "--overwrite"]) == 0
    assert "3601" not in (out / "plan.json").read_text()  # rewritten

    (out / "plan.json").unlink()
    (out / "model.json").write_text("{}")  # a trained model package
    capsys.readouterr()
    assert main([str(data), "-o", str(out), *TINY, "--plan-only"]) == 2
    assert "model.json" in one_error_line(capsys)
    assert main([str(data), "-o", str(out), *TINY, "--resume", "--overwrite"]) == 2
    assert "give one of them" in one_error_line(capsys)
    assert (out / "model.json").read_text() == "{}"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_an_output_in_a_place_that_takes_no_folder_is_one_error_before_any_work(tmp_path, capsys):
    """`-o /proc/x` read the whole dataset, then ended with 'internal error
    (FileNotFoundError ...); please report it' (tester 12). /proc stands for any place that
    takes no new folder (read-only, no permission) that a test running as root can reach."""
    data = write_slicer_dataset(tmp_path / "data", cases=4)
    out = Path("/proc") / f"unetpp-test-{tmp_path.name}" / "model"
    assert main([str(data), "-o", str(out), *TINY, "--epochs", "1"]) == 2
    error = one_error_line(capsys)
    assert error.startswith(f"error: Cannot create the training output {out}: ")
    assert "internal error" not in error
    assert "dataset fingerprint" not in capsys.readouterr().out  # refused before reading it


@pytest.mark.parametrize("empty", ["", "   "])
def test_an_empty_output_name_isone_error_line(tmp_path, capsys, monkeypatch, empty):
    """Tester 13: `-o ""` (a script's unset $OUT) trained into the current folder, among the
    user's files; now one error before any work, and the current folder is left as it was."""
    data = write_slicer_dataset(tmp_path / "data", cases=4)
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    assert main([str(data), "-o", empty, *TINY, "--plan-only"]) == 2
    assert "-o" in one_error_line(capsys)
    assert list(here.iterdir()) == []


def _files(folder: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def test_an_output_in_the_dataset_is_refused_before_anything_is_written(tmp_path, capsys):
    """`unetpp train DATA -o DATA` (or -o inside DATA) wrote plan.json, train.log and cache/
    among the cases (tester 20). Refused before the dataset is read (a folder of one file
    here), nothing written, not even the output folder's writability probe."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "case1.nrrd").write_bytes(b"")
    before = _files(tmp_path)
    assert main([str(data), "-o", str(data / "case1" / "model"), *TINY, "--plan-only"]) == 2
    line = one_error_line(capsys)
    assert f"(-o) {data.resolve() / 'case1' / 'model'} lies inside the dataset {data}:" in line
    assert _files(tmp_path) == before


@pytest.mark.parametrize(
    "out, cache, said",
    [
        ("data", None, "training output (-o) {d} is the dataset folder {d}:"),
        ("link", None, "training output (-o) {d} is the dataset folder {d}:"),
        ("link/sub/model", None, "(-o) {d}/sub/model lies inside the dataset {d}:"),
        ("out", "data/cache", "cache folder (--cache-dir) {d}/cache lies inside the dataset"),
        ("out", "link", "cache folder (--cache-dir) {d} is the dataset folder {d}:"),
        ("data/..", "data", "cache folder (--cache-dir) {d} is the dataset folder"),
    ],
)
def test_outputs_in_the_dataset_are_refused_links_resolved(tmp_path, out, cache, said):
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "link").symlink_to(data)
    cache_dir = tmp_path / cache if cache else None
    with pytest.raises(UNetPlusPlusError) as info:
        check_outside_dataset(data, tmp_path / out, cache_dir)
    assert said.format(d=data.resolve()) in str(info.value), str(info.value)


def test_a_dataset_in_the_output_folder_is_allowed_but_not_in_its_cache(tmp_path):
    """The reverse, `unetpp train proj/data -o proj`, writes only the run's own names beside
    the dataset; a dataset inside the cache or checkpoint/, which training replaces, is not."""
    proj = tmp_path / "proj"
    check_outside_dataset(proj / "data", proj, None)
    check_outside_dataset(proj / "data", proj, tmp_path / "cache")
    for data, folder, cache in [
        (proj / "cache" / "data", proj / "cache", None),  # the default cache
        (proj / "checkpoint", proj / "checkpoint", None),
        (tmp_path / "c" / "data", tmp_path / "c", tmp_path / "c"),
    ]:
        with pytest.raises(UNetPlusPlusError, match="lies inside") as info:
            check_outside_dataset(data, proj, cache)
        assert f"The dataset {data} lies inside {folder}, which training" in str(info.value)


@pytest.mark.parametrize("spec", ["cuda:7", "gpu0"])
def test_a_missing_gpu_is_refused_before_the_dataset_is_read(tmp_path, capsys, spec):
    """`unetpp train --device cuda:7` was refused only when the trainer started, after the
    dataset was read, checked and planned; now first (here the dataset folder is empty)."""
    import torch

    if torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    (tmp_path / "data").mkdir()
    argv = [str(tmp_path / "data"), "-o", str(tmp_path / "out"), *TINY, "--device", spec]
    assert main(argv) == 2
    assert f"evice {spec!r}" in one_error_line(capsys)  # Device 'cuda:7', Unknown device
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "limit_kb, says",
    [
        (16, "the file is larger than this process may write (ulimit -f)"),  # an errno
        (48, "the system wrote only part of a file: "),  # numpy's np.save: no errno
        (100, "the file is larger than this process may write (ulimit -f)"),  # safetensors
    ],
)
def test_a_write_that_fails_for_want_of_space_is_one_error(tmp_path, limit_kb, says):
    """A full disk under -o (a 200 kB tmpfs) ended the run as "error: internal error (OSError:
    259840 requested and 38880 written); please report it": numpy's np.save of the
    preprocessing cache raises an OSError without errno, safetensors' checkpoint writer a
    SafetensorError (tester fresh30). Reproduced without a mount by a real file-size limit
    (ulimit -f), which stops a different write at each size: one error saying why, no
    traceback, and no half-made output folder (or only a checkpoint, said so)."""
    import os
    import resource
    import signal
    import subprocess
    import sys

    data = write_slicer_dataset(tmp_path / "data", cases=4)
    out = tmp_path / "out"

    def limit():  # SIGXFSZ ignored: the write fails with EFBIG instead of killing the process
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_kb * 1024, limit_kb * 1024))

    command = [sys.executable, "-m", "UNetPlusPlusLib.cli", "train", str(data), "-o", str(out),
               *TINY, "--epochs", "1", "--iterations-per-epoch", "1"]  # fmt: skip
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")  # a .pyc cut at the limit breaks imports
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=300, preexec_fn=limit, env=env
    )
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert run.returncode == 2, run.stderr[-3000:]
    assert len(errors) == 1 and "internal error" not in errors[0], run.stderr[-3000:]
    assert errors[0].startswith("error: Training stopped: a file of the run could not be written")
    assert says in errors[0] and "Traceback" not in run.stderr, errors
    assert not out.exists() or (
        [p.name for p in out.iterdir()] == ["checkpoint"] and "is kept" in run.stderr
    ), run.stderr[-2000:]


@pytest.mark.parametrize("where, says", [("file", "is a file"), ("proc", "does not accept")])
def test_a_cache_dir_that_cannot_be_a_folder_is_one_error_before_any_work(
    tmp_path, capsys, where, says
):
    """`--cache-dir` naming a file (or a place under /proc) read the dataset, planned, and
    ended with "internal error (FileExistsError: ...)" (tester fresh30)."""
    data = write_slicer_dataset(tmp_path / "data", cases=4)
    existing = tmp_path / "notes.txt"
    existing.write_text("mine")
    cache = existing if where == "file" else Path("/proc/unetpp-cache")
    out = tmp_path / "out"
    assert main([str(data), "-o", str(out), *TINY, "--plan-only", "--cache-dir", str(cache)]) == 2
    line = one_error_line(capsys)
    assert line.startswith("error: ") and "--cache-dir" in line and says in line, line
    assert not out.exists() and existing.read_text() == "mine"
