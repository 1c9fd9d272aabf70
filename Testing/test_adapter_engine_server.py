"""The persistent engine process (`unetpp serve`, the module's default for every run), through a
PythonSlicer-like launcher: requests share one process, a killed process is restarted, shutdown
leaves nothing behind. Whole-volume runs: test_adapter_engine_server_runs.py."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
pytestmark = pytest.mark.skipif(
    sys.platform == "win32" or not Path("/proc/self/stat").exists(), reason="needs /proc"
)

from blocking_calls import BlockingCalls  # noqa: E402
from helpers import make_sphere_image, serve_over_pipe  # noqa: E402
from launcher import living, make_launcher, wait_for_descendant  # noqa: E402
from test_adapter_job_cancel import poll_until_finished, wait_gone  # noqa: E402
from UNetPlusPlusLib.adapter import geometry, install, job  # noqa: E402
from UNetPlusPlusLib.adapter.logic import SegmentationLogic  # noqa: E402
from UNetPlusPlusLib.engine.image_read import volume_from_sitk  # noqa: E402

TIMEOUT_S = 180


@pytest.fixture()
def volume_node():
    image = make_sphere_image((24, 24, 24), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0), np.eye(3), 9.0)
    scene = slicer.vtkMRMLScene()
    node = geometry.volume_node_from_volume(scene, volume_from_sitk([image]), "CT")
    yield node
    del scene  # the scene lives as long as the test


def run(logic, node, model, **kwargs):
    running = logic.start_job([node], model, device="cpu", **kwargs)  # the default: persistent
    events, _ = poll_until_finished(running, TIMEOUT_S)  # the last poll imports the result
    return running, events


def watch_server(blocking: BlockingCalls, server, monkeypatch) -> None:
    """Record the blocking waits on the server's process (``wait``, ``communicate``), on its
    end-of-output event and any ``Thread.join`` (its output routers) on the calling thread,
    and busy-waits on its ``poll`` and that event's ``is_set``."""
    connection = server._connection
    blocking.watch(types.SimpleNamespace(_process=connection.process, _readers=[]))
    connection.closed.wait = blocking._recorded(connection.closed.wait, "Event.wait")
    connection.closed.is_set = blocking.probed(connection.closed.is_set, "Event.is_set")
    monkeypatch.setattr(
        threading.Thread, "join", blocking._recorded(threading.Thread.join, "Thread.join")
    )


def test_requests_share_one_process_which_restarts_after_a_crash(
    tmp_path, sphere_model, volume_node, monkeypatch
):
    logic = SegmentationLogic(python=make_launcher(tmp_path))
    first, _ = run(logic, volume_node, sphere_model)
    server = logic._server
    pid = server.pid
    second, events = run(logic, volume_node, sphere_model, point_ras=(0.0, 0.0, 0.0))

    assert first.state == second.state == job.SUCCEEDED, (first.error, second.error)
    assert server.starts == 1 and server.pid == pid and server.alive()  # one process, twice
    assert [e.stage for e in events if e.kind == job.PROGRESS][-1] == "write"
    assert first.output is not None and second.output is not None
    assert first.workdir is None and second.workdir is None  # job folders removed
    written = Path(first.command[first.command.index("segment") + 1])
    assert first.inputs_written and not written.exists()  # deleted when the run ended
    assert not second.inputs_written  # the click ran on the volume the engine holds

    engine = wait_for_descendant(pid)
    os.killpg(pid, signal.SIGKILL)  # a crash (the whole tree, as an OOM kill would)
    assert wait_gone(engine) == set()
    third, _ = run(logic, volume_node, sphere_model)

    assert third.state == job.SUCCEEDED, third.error
    assert server.starts == 2 and server.pid != pid
    assert third.inputs_written  # a new process holds nothing: the CT is written again

    pids = wait_for_descendant(server.pid)
    blocking = BlockingCalls(monkeypatch)
    watch_server(blocking, server, monkeypatch)
    with blocking.inside():
        logic.shutdown()
        logic.shutdown()
    assert blocking.calls == []  # never waits for the process on the GUI thread (load-proof)
    assert wait_gone(pids) == set()


def maps_torch(pids: set[int]) -> bool:
    """Whether one of ``pids`` has torch's C++ library mapped (torch is imported there)."""
    for pid in pids:
        try:
            if "libtorch" in Path(f"/proc/{pid}/maps").read_text():
                return True
        except OSError:
            continue
    return False


def wait_until(condition, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def volume_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.suffix in (".nrrd", ".nii", ".gz"))


def test_no_input_or_output_file_outlives_its_run(tmp_path, sphere_model, volume_node, monkeypatch):
    """The copies of the patient's images written for the engine are deleted as soon as the run
    ends (result read back, failed or cancelled), while the engine keeps the volume in memory
    for the next run (no file written again for a second run on the same voxels). The engine
    is warmed up first, as the module does when entered: it imports torch with no request and
    takes the first run."""
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # where jobs and the engine write
    logic = SegmentationLogic(python=make_launcher(tmp_path))
    try:
        # as when the module is entered: the engine starts, and imports torch, before any run
        assert logic.warm_up() is True and logic.warm_up() is False  # once
        server = logic._server
        wait_until(lambda: maps_torch(wait_for_descendant(server.pid)), TIMEOUT_S)
        done, _ = run(logic, volume_node, sphere_model)
        assert done.state == job.SUCCEEDED and done.inputs_written, done.error
        assert volume_files(temp) == []
        assert server.starts == 1 and logic._server is server  # the warmed engine ran it

        failed, _ = run(logic, volume_node, sphere_model, depth=7)  # the engine refuses it
        assert failed.state == job.FAILED and "depth" in failed.error.lower()
        assert not failed.inputs_written and volume_files(temp) == []

        geometry.array_from_volume_node(volume_node, copy=False)[0, 0, 0] += 100  # an edit
        volume_node.GetImageData().GetPointData().GetScalars().Modified()  # as the editors do
        cancelled = logic.start_job([volume_node], sphere_model, device="cpu")
        assert cancelled.inputs_written  # edited voxels are written again
        assert volume_files(temp) != []  # (the written files are where the test looks)
        cancelled.cancel()
        poll_until_finished(cancelled, TIMEOUT_S)
        assert cancelled.state == job.CANCELLED and cancelled.output is None
        assert volume_files(temp) == []

        click, _ = run(logic, volume_node, sphere_model, point_ras=(0.0, 0.0, 0.0))
        assert click.state == job.SUCCEEDED, click.error
        assert volume_files(temp) == []
    finally:
        logic.shutdown()
    assert volume_files(temp) == []


def test_a_crash_during_a_request_fails_it_and_cancel_stops_it(tmp_path, sphere_model, volume_node):
    logic = SegmentationLogic(python=make_launcher(tmp_path))
    running = logic.start_job([volume_node], sphere_model, device="cpu")  # default: persistent
    pids = wait_for_descendant(logic._server.pid)
    os.killpg(logic._server.pid, signal.SIGKILL)
    poll_until_finished(running, TIMEOUT_S)
    assert running.state == job.FAILED
    assert "engine process stopped unexpectedly" in running.error
    assert living(pids) == set() or wait_gone(pids) == set()

    cancelled = logic.start_job([volume_node], sphere_model, device="cpu", persistent=True)
    cancelled.cancel()
    poll_until_finished(cancelled, TIMEOUT_S)
    assert cancelled.state == job.CANCELLED and cancelled.output is None
    logic.shutdown()


def test_serve_answers_requests_until_its_input_ends(tmp_path, sphere_model):
    import SimpleITK as sitk

    image = make_sphere_image((24, 24, 24), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0), np.eye(3), 9.0)
    sitk.WriteImage(image, str(tmp_path / "ct.nrrd"))
    request = [str(tmp_path / "ct.nrrd"), "--model", str(sphere_model), "--device", "cpu"]
    lines = [
        {"id": 1, "argv": [*request, "--labelmap", str(tmp_path / "a.nrrd")]},
        {"id": 2, "argv": ["missing.nrrd", "--model", str(sphere_model), "--labelmap", "x.nrrd"]},
        {"id": 3, "argv": [*request, "--labelmap", str(tmp_path / "b.nrrd")]},
    ]
    replies, _ = serve_over_pipe(lines, cwd=tmp_path, timeout_s=TIMEOUT_S)
    ends = {r["id"]: r for r in replies if "result" in r or "error" in r}
    assert ends[1]["result"]["volumes_ml"]["liver"] > 0
    assert ends[2]["status"] == 2 and "missing.nrrd" in ends[2]["error"]
    assert ends[3]["result"]["volumes_ml"] == ends[1]["result"]["volumes_ml"]
    assert (tmp_path / "a.nrrd").is_file() and (tmp_path / "b.nrrd").is_file()


def test_no_engine_is_warmed_up_without_persistence_dependencies_or_python(tmp_path, monkeypatch):
    """``warm_up`` (the module entered) starts nothing for one-shot runs, without the
    dependencies (it never asks to install) and never raises for a Python that cannot start."""
    one_shot = SegmentationLogic(python=make_launcher(tmp_path), persistent=False)
    assert one_shot.warm_up() is False and one_shot._server is None  # a process per run

    broken = SegmentationLogic(python=str(tmp_path / "no-such-python"))
    assert broken.warm_up() is False  # never raises: the first run reports it
    assert not broken._server.alive()

    monkeypatch.setattr(install, "dependencies_ready", lambda: False)
    missing = SegmentationLogic(python=make_launcher(tmp_path))
    assert missing.warm_up() is False and missing._server is None  # never asks to install
