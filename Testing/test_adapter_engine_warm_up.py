"""The persistent engine started ahead of the first run (``SegmentationLogic.warm_up``, called
when the module is entered or its dependencies were installed): the process imports torch with
no request, the first run then goes to it, and nothing starts where it should not."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
pytestmark = pytest.mark.skipif(
    sys.platform == "win32" or not Path("/proc/self/stat").exists(), reason="needs /proc"
)

from helpers import make_sphere_image  # noqa: E402
from launcher import make_launcher, wait_for_descendant  # noqa: E402
from test_adapter_job_cancel import poll_until_finished, wait_gone  # noqa: E402
from UNetPlusPlusLib.adapter import geometry, install, job  # noqa: E402
from UNetPlusPlusLib.adapter.logic import SegmentationLogic  # noqa: E402
from UNetPlusPlusLib.engine.image_read import volume_from_sitk  # noqa: E402

TIMEOUT_S = 180


def _maps_torch(pids: set[int]) -> bool:
    """Whether one of ``pids`` has torch's C++ library mapped (torch is imported there)."""
    for pid in pids:
        try:
            if "libtorch" in Path(f"/proc/{pid}/maps").read_text():
                return True
        except OSError:
            continue
    return False


def test_the_warmed_engine_imports_torch_unasked_and_takes_the_first_run(tmp_path, sphere_model):
    logic = SegmentationLogic(python=make_launcher(tmp_path))
    try:
        assert logic.warm_up() is True
        server = logic._server
        assert server.alive() and server.starts == 1
        assert logic.warm_up() is False  # running already: nothing more
        pids = wait_for_descendant(server.pid)
        deadline = time.monotonic() + TIMEOUT_S
        while not _maps_torch(pids) and time.monotonic() < deadline:
            time.sleep(0.05)  # torch loads with no request at all
            pids = wait_for_descendant(server.pid)
        assert _maps_torch(pids)

        image = make_sphere_image((24, 24, 24), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0), np.eye(3), 9.0)
        scene = slicer.vtkMRMLScene()
        node = geometry.volume_node_from_volume(scene, volume_from_sitk([image]), "CT")
        running = logic.start_job([node], sphere_model, device="cpu")
        poll_until_finished(running, TIMEOUT_S)
        assert running.state == job.SUCCEEDED, running.error
        assert server.starts == 1 and logic._server is server  # the warmed process ran it
    finally:
        logic.shutdown()
    assert wait_gone(pids) == set()


def test_no_engine_is_started_without_persistence_dependencies_or_python(tmp_path, monkeypatch):
    one_shot = SegmentationLogic(python=make_launcher(tmp_path), persistent=False)
    assert one_shot.warm_up() is False and one_shot._server is None  # a process per run

    broken = SegmentationLogic(python=str(tmp_path / "no-such-python"))
    assert broken.warm_up() is False  # never raises: the first run reports it
    assert not broken._server.alive()

    monkeypatch.setattr(install, "dependencies_ready", lambda: False)
    missing = SegmentationLogic(python=make_launcher(tmp_path))
    assert missing.warm_up() is False and missing._server is None  # never asks to install
