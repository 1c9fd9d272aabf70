"""`unetpp segment` imports torch on a background thread while it reads and checks the inputs
(torch_preload.py): the import's failure, an input error during the import, the OpenMP wait
policy, and no thread for in-process callers."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import make_sphere_image
from UNetPlusPlusLib import torch_preload
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.engine import runtime_env

REPO = Path(__file__).resolve().parents[1]
LIB_PARENT = REPO / "UNetPlusPlus"


def _fake_torch(folder: Path, body: str) -> Path:
    """A package named ``torch`` under ``folder`` whose import runs ``body``."""
    package = folder / "torch"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(body)
    return folder


def _program(args: list, cwd: Path, pythonpath: list, timeout: int = 300):
    """``python -m UNetPlusPlusLib.cli ARGS``, a program as a user runs it (not in-process),
    without the OpenMP wait settings of the test session (so the policy is ``auto``)."""
    names = (*runtime_env._OPENMP_NAMES, "KMP_BLOCKTIME", runtime_env.MARK, runtime_env.KNOB)
    env = {k: v for k, v in os.environ.items() if k not in names}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    return subprocess.run(
        [sys.executable, "-m", "UNetPlusPlusLib.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def fresh_preload(monkeypatch):
    """This process's preload state, reset (the module keeps one preload per process)."""
    monkeypatch.setattr(torch_preload, "_started", None)
    yield
    if torch_preload._started is not None:
        torch_preload._started[0].join()


def test_wait_hands_the_import_error_to_the_caller(tmp_path, monkeypatch, fresh_preload):
    (tmp_path / "unetpp_broken_module.py").write_text("raise ImportError('broken on purpose')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert torch_preload.start("unetpp_broken_module")
    assert not torch_preload.start("unetpp_broken_module")  # once per process
    with pytest.raises(ImportError, match="broken on purpose"):
        torch_preload.wait()
    assert torch_preload.started() and not torch_preload.running()
    assert "unetpp_broken_module" not in sys.modules


def test_wait_returns_once_the_module_is_imported(tmp_path, monkeypatch, fresh_preload):
    (tmp_path / "unetpp_fine_module.py").write_text(
        "import threading\nTHREAD = threading.current_thread().name\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "unetpp_fine_module", raising=False)
    assert torch_preload.start("unetpp_fine_module")
    torch_preload.wait()
    assert sys.modules["unetpp_fine_module"].THREAD == "unetpp-import-unetpp_fine_module"
    assert not torch_preload.running()
    del sys.modules["unetpp_fine_module"]


def test_the_switch_interval_is_short_while_the_import_runs(tmp_path, monkeypatch, fresh_preload):
    # the main thread reads in GIL-releasing calls while the import runs: a 1 ms switch
    # interval lets it win the GIL back sooner; the process's own value returns afterwards
    (tmp_path / "unetpp_slow_module.py").write_text(
        "import sys, threading\nDURING = sys.getswitchinterval()\n"
        "GO = threading.Event()\nassert GO.wait(60)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "unetpp_slow_module", raising=False)
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.004)  # the process's own value, to be restored
    try:
        assert torch_preload.start("unetpp_slow_module")
        while not hasattr(sys.modules.get("unetpp_slow_module"), "GO"):
            threading.Event().wait(0.01)
        assert sys.getswitchinterval() == pytest.approx(torch_preload.SWITCH_INTERVAL_S)
        sys.modules["unetpp_slow_module"].GO.set()
        torch_preload.wait()
        assert sys.modules["unetpp_slow_module"].DURING == pytest.approx(0.001)
        assert sys.getswitchinterval() == pytest.approx(0.004)  # restored as the import ended
    finally:
        sys.setswitchinterval(before)
        sys.modules.pop("unetpp_slow_module", None)


def test_a_failed_background_import_is_one_line_and_writes_nothing(tmp_path, sphere_model):
    """A broken torch: imported on the preload thread (not the main one), its error reported
    once as an internal error, no traceback, no output."""
    fake = _fake_torch(
        tmp_path / "fake",
        "import pathlib, threading\n"
        "pathlib.Path('imported_on.txt').write_text(threading.current_thread().name)\n"
        "raise ImportError('torch is broken here')\n",
    )
    sitk.WriteImage(make_sphere_image(), str(tmp_path / "ct.nrrd"))
    args = ["segment", "ct.nrrd", "--model", str(sphere_model), "-o", "x.seg.nrrd"]
    done = _program([*args, "--labelmap", "x.nii.gz"], tmp_path, [fake, LIB_PARENT])
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if not line.startswith("warning: ")]
    assert errors == [
        "error: internal error (ImportError: torch is broken here); please report it, with "
        "the output of --debug"
    ], done.stderr
    assert (tmp_path / "imported_on.txt").read_text() == "unetpp-import-torch"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct.nrrd", "fake", "imported_on.txt"]


def test_an_input_error_does_not_wait_for_the_import(tmp_path):
    """A CT without air is refused with one line while torch is still importing (here, an
    import that never ends): the process ends instead of waiting for the thread."""
    fake = _fake_torch(tmp_path / "fake", "import time\ntime.sleep(3600)\n")
    values = np.random.default_rng(0).integers(0, 400, (12, 14, 16)).astype(np.int16)
    sitk.WriteImage(sitk.GetImageFromArray(values), str(tmp_path / "mr.nii.gz"))
    args = ["segment", "mr.nii.gz", "--task", "liver", "-o", "x.seg.nrrd", "--progress-json"]
    done = _program(args, tmp_path, [fake, LIB_PARENT], timeout=120)  # a hang: timeout
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "is not a CT in Hounsfield units" in done.stderr
    assert "Traceback" not in done.stderr
    assert "is not a CT" in json.loads(done.stdout.splitlines()[-1])["error"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake", "mr.nii.gz"]


def test_the_wait_policy_is_still_chosen_at_the_import(tmp_path, sphere_model):
    """``auto``: the policy is decided when the background thread imports torch (spin or
    passive, not ``unmanaged``, which would mean OpenMP loaded before the choice)."""
    sitk.WriteImage(make_sphere_image(), str(tmp_path / "ct.nrrd"))
    args = ["segment", "ct.nrrd", "--model", str(sphere_model), "-o", "x.seg.nrrd"]
    done = _program([*args, "--progress-json", "--threads", "1"], tmp_path, [LIB_PARENT])
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])["result"]
    assert result["openmp"]["wait_policy"] in ("spin", "passive"), result["openmp"]


def test_in_process_callers_start_no_thread(tmp_path, capsys, fresh_preload):
    values = np.random.default_rng(0).integers(0, 400, (12, 14, 16)).astype(np.int16)
    sitk.WriteImage(sitk.GetImageFromArray(values), str(tmp_path / "mr.nii.gz"))
    code = main(["segment", str(tmp_path / "mr.nii.gz"), "--task", "liver", "-o",
                 str(tmp_path / "x.seg.nrrd")])  # fmt: skip
    assert code == 2 and "is not a CT" in capsys.readouterr().err
    assert not torch_preload.started()
    assert not [t for t in threading.enumerate() if t.name.startswith("unetpp-import")]


def test_serve_imports_torch_on_the_thread_from_its_start(tmp_path):
    """`unetpp serve` run as a program begins importing torch before its first request."""
    fake = _fake_torch(
        tmp_path / "fake",
        "import pathlib, threading\n"
        "pathlib.Path('imported_on.txt').write_text(threading.current_thread().name)\n",
    )
    names = (*runtime_env._OPENMP_NAMES, "KMP_BLOCKTIME", runtime_env.MARK, runtime_env.KNOB)
    env = {k: v for k, v in os.environ.items() if k not in names}
    env["PYTHONPATH"] = os.pathsep.join([str(fake), str(LIB_PARENT)])
    done = subprocess.run(
        [sys.executable, "-m", "UNetPlusPlusLib.cli", "serve"],
        input='{"quit": true}\n',
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[0])["ready"] is True
    assert (tmp_path / "imported_on.txt").read_text() == "unetpp-import-torch"


def test_serve_outlives_a_request_that_fails_while_torch_is_still_importing(
    tmp_path, monkeypatch, fresh_preload
):
    """`unetpp serve` imports torch on a thread from its start; a first request that failed
    before that import ended (a missing input) ended the server: its memory bound
    (``WarmCache.after_request``) asked the half-imported torch for ``torch.cuda``, an
    internal error and exit status 1 (tester 20). The request's error is replied, the server
    answers the next request and exits 0."""
    from UNetPlusPlusLib.cli import build_parser
    from UNetPlusPlusLib.cli_serve import serve

    release = tmp_path / "release"
    fake = _fake_torch(
        tmp_path / "fake",
        "import os, time\n"  # a torch import still under way: no torch.cuda yet
        f"while not os.path.exists({str(release)!r}):\n    time.sleep(0.005)\n",
    )
    monkeypatch.syspath_prepend(str(fake))
    real_torch = sys.modules.pop("torch", None)
    try:
        assert torch_preload.start() and torch_preload.running()
        request = ["missing.nrrd", "--task", "liver", "-o", str(tmp_path / "x.seg.nrrd")]
        lines = [{"id": 1, "argv": request}, {"id": 2, "argv": request}]
        replies = io.StringIO()
        status = serve(
            io.StringIO("".join(json.dumps(x) + "\n" for x in lines)), replies, build_parser
        )
        assert torch_preload.running()  # the import was under way the whole time
    finally:
        release.touch()
        torch_preload.wait()
        sys.modules.pop("torch")  # the stand-in, never seen by the later tests
        if real_torch is not None:
            sys.modules["torch"] = real_torch
    first, second = [json.loads(line) for line in replies.getvalue().splitlines()][1:]
    assert status == 0
    assert first["id"] == 1 and first["status"] == 2 and "missing.nrrd" in first["error"]
    assert second["id"] == 2 and second["status"] == 2
    assert not (tmp_path / "x.seg.nrrd").exists()
