"""Cancel, close and shutdown of one-shot background jobs (``persistent=False``: a process per
run) started through a launcher like PythonSlicer; the persistent engine's counterparts are in
test_adapter_engine_server*.py.

Each test runs the job's ``python`` through a wrapper that starts the real interpreter as its
child and waits for it (Testing/launcher.py), as Slicer's launcher does, and checks with /proc
that no process of the job outlives the cancel.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
pytestmark = pytest.mark.skipif(
    sys.platform == "win32" or not Path("/proc/self/stat").exists(), reason="needs /proc"
)

from blocking_calls import BlockingCalls  # noqa: E402
from helpers import make_sphere_image  # noqa: E402
from launcher import STUBBORN_CHILD, living, make_launcher, wait_for_descendant  # noqa: E402
from UNetPlusPlusLib.adapter import geometry, job  # noqa: E402
from UNetPlusPlusLib.adapter.logic import SegmentationLogic  # noqa: E402
from UNetPlusPlusLib.engine.image_read import volume_from_sitk  # noqa: E402
from UNetPlusPlusLib.errors import UNetPlusPlusError  # noqa: E402
from UNetPlusPlusLib.exit_codes import EXIT_CANCELLED  # noqa: E402

TIMEOUT_S = 180
# Polls and shutdowns are checked for blocking calls and busy-waits (blocking_calls.py), not
# against a wall-clock bound: 0.5 s failed once at load 9, 50 ms at two suites on 2 cores,
# from scheduling alone.
GONE_WITHIN_S = 2.0  # every process of a cancelled job is gone this long after cancel()


@pytest.fixture()
def scene_and_volume():
    image = make_sphere_image((24, 24, 24), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0), np.eye(3), 9.0)
    scene = slicer.vtkMRMLScene()
    node = geometry.volume_node_from_volume(scene, volume_from_sitk([image]), "CT")
    return scene, node


def poll_until_finished(running, timeout=TIMEOUT_S, each=None, blocking=None):
    """Poll like the Widget's timer; returns (events, the longest single poll in s). With
    ``blocking`` (a :class:`BlockingCalls`), each poll's blocking calls and busy-waits are
    recorded there."""
    events, longest = [], 0.0
    deadline = time.monotonic() + timeout
    if blocking is not None:
        blocking.watch(running)
    while not running.finished:
        started = time.perf_counter()
        if blocking is None:
            events += running.poll()
        else:
            with blocking.inside():
                events += running.poll()
        longest = max(longest, time.perf_counter() - started)
        if each is not None:
            each()
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.01)
    return events, longest


def wait_gone(pids, within=GONE_WITHIN_S) -> set[int]:
    deadline = time.monotonic() + within
    while living(pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    return living(pids)


def test_cancel_kills_the_engine_behind_the_launcher(
    tmp_path, sphere_model, scene_and_volume, monkeypatch
):
    scene, node = scene_and_volume
    blocking = BlockingCalls(monkeypatch)
    nodes_before = scene.GetNumberOfNodes()
    logic = SegmentationLogic(python=make_launcher(tmp_path))
    running = logic.start_job([node], sphere_model, device="cpu", persistent=False)
    workdir = running.workdir
    pids = wait_for_descendant(running.pid)  # the launcher and the real CLI under it
    assert len(pids) >= 2
    written = []

    def watch_outputs():
        if workdir.exists():
            # input_*: the job's own inputs; .unetpp-probe-*: the CLI's writability probe of the
            # output folder (cli_outputs._probe_folder), created and removed at once, which a
            # poll can catch in between (it failed CI once); neither is an output
            written.extend(
                p.name
                for p in workdir.iterdir()
                if not p.name.startswith(("input_", ".unetpp-probe-"))
            )

    running.cancel()
    cancelled_at = time.monotonic()
    events, _ = poll_until_finished(running, each=watch_outputs, blocking=blocking)

    assert wait_gone(pids, GONE_WITHIN_S - (time.monotonic() - cancelled_at)) == set()
    assert blocking.calls == []  # no poll waited for the process (its exit, the kill grace)
    assert running.state == job.CANCELLED and events[-1].state == job.CANCELLED
    assert set(written) <= {job.CANCEL_FILE_NAME}  # no labelmap, not even a temporary one
    assert running.output is None and running.labels is None
    assert scene.GetNumberOfNodes() == nodes_before
    assert not workdir.exists()


def test_cli_stops_by_itself_on_the_cancel_file(tmp_path, sphere_model, scene_and_volume):
    _, node = scene_and_volume
    logic = SegmentationLogic(python=make_launcher(tmp_path))
    running = logic.start_job([node], sphere_model, device="cpu", persistent=False)
    running.kill_grace = TIMEOUT_S  # prove the cooperative route: no kill
    deadline = time.monotonic() + TIMEOUT_S
    while not any(e.kind == job.PROGRESS for e in running.poll()):  # the CLI is working
        assert not running.finished, running.error
        assert time.monotonic() < deadline
        time.sleep(0.02)
    pids = wait_for_descendant(running.pid)

    running.cancel()
    poll_until_finished(running)

    assert running._process.returncode == EXIT_CANCELLED  # the CLI's own exit status
    assert running.state == job.CANCELLED
    assert wait_gone(pids) == set()


def test_a_child_that_ignores_cancel_is_killed(
    tmp_path, sphere_model, scene_and_volume, monkeypatch
):
    _, node = scene_and_volume
    blocking = BlockingCalls(monkeypatch)
    logic = SegmentationLogic(python=make_launcher(tmp_path, child_code=STUBBORN_CHILD))
    running = logic.start_job([node], sphere_model, device="cpu", persistent=False)
    pids = wait_for_descendant(running.pid)

    running.cancel()
    cancelled_at = time.monotonic()
    poll_until_finished(running, blocking=blocking)  # it is killed after the kill grace

    assert wait_gone(pids, GONE_WITHIN_S - (time.monotonic() - cancelled_at)) == set()
    assert blocking.calls == []
    assert running.state == job.CANCELLED


def test_close_and_shutdown_stop_everything_at_once(
    tmp_path, sphere_model, scene_and_volume, monkeypatch
):
    scene, node = scene_and_volume
    blocking = BlockingCalls(monkeypatch)
    nodes_before = scene.GetNumberOfNodes()
    logic = SegmentationLogic(python=make_launcher(tmp_path, child_code=STUBBORN_CHILD))
    first = logic.start_job([node], sphere_model, device="cpu", persistent=False)
    second = logic.start_job([node], sphere_model, device="cpu", persistent=False)
    pids = wait_for_descendant(first.pid) | wait_for_descendant(second.pid)
    folders = [first.workdir, second.workdir]

    blocking.watch(first)
    blocking.watch(second)
    with blocking.inside():
        logic.shutdown()
        logic.shutdown()  # twice is harmless
    assert blocking.calls == []  # never blocks the GUI thread

    assert not any(folder.exists() for folder in folders)  # patient images removed at once
    assert wait_gone(pids) == set()
    for running in (first, second):
        assert [e.state for e in running.poll()] == [job.CANCELLED]
        assert running.poll() == []
    assert scene.GetNumberOfNodes() == nodes_before


def test_an_error_removes_the_working_folder_and_reads_as_utf8_whatever_the_console_encoding(
    tmp_path, sphere_model, scene_and_volume, monkeypatch
):
    """A failing one-shot job through the launcher: its working folder goes, and its error,
    which echoes a non-ASCII path, decodes alike from stdout's JSON and stderr's line although
    the console encodes stdio as cp1252 (a Windows console): the child writes UTF-8."""
    monkeypatch.setenv("PYTHONIOENCODING", "cp1252")
    broken = tmp_path / "modèle-肝臓"  # a non-ASCII path, echoed in the CLI's error line
    shutil.copytree(sphere_model.parent, broken)
    data = json.loads((broken / "model.json").read_text())
    data["sha256"] = "0" * 64
    (broken / "model.json").write_text(json.dumps(data))
    _, node = scene_and_volume
    running = SegmentationLogic(python=make_launcher(tmp_path)).start_job(
        [node], broken / "model.json", device="cpu", persistent=False
    )
    workdir = running.workdir
    events, _ = poll_until_finished(running)

    assert running.state == job.FAILED
    assert not workdir.exists()
    assert "modèle-肝臓" in running.error
    # the JSON {"error"} on stdout and the line the child printed on stderr (kept in the job's
    # log) decode alike: one log event (an error is logged once)
    lines = [e.message for e in events if e.message.startswith("error: Model weights")]
    assert len(lines) == 1 and "modèle-肝臓" in lines[0], lines
    assert lines[0] in running.log  # stderr's, the same text
    assert all("\ufffd" not in e.message for e in events)


def test_an_engine_that_cannot_start_is_a_clear_error(
    tmp_path, sphere_model, scene_and_volume, monkeypatch
):
    _, node = scene_and_volume
    folders = []
    mkdtemp = tempfile.mkdtemp
    monkeypatch.setattr(
        job.tempfile, "mkdtemp", lambda **kw: folders.append(mkdtemp(**kw)) or folders[-1]
    )
    logic = SegmentationLogic(python=str(tmp_path / "no-such-python"))
    with pytest.raises(UNetPlusPlusError, match="Cannot start the segmentation engine"):
        logic.start_job([node], sphere_model, device="cpu", persistent=False)
    with pytest.raises(UNetPlusPlusError, match="Cannot start the segmentation engine"):
        logic.start_job([node], sphere_model, device="cpu", persistent=True)
    job_folders = [f for f in folders if Path(f).name.startswith("unetpp-job-")]
    assert len(job_folders) == 2 and not any(Path(f).exists() for f in job_folders)
    logic.shutdown()  # the persistent engine's shared inputs go with it
    assert not any(Path(f).exists() for f in folders)
