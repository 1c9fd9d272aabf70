"""Shared pytest fixtures.

`shared_data` points at `../shared/data` beside the checkout; tests that need it skip cleanly
when it is absent (for example on a contributor's laptop). The suite runs serially
(`python -m pytest`) or on pytest-xdist workers (`make test`: `-n auto`, see parallel.py): a
session fixture is made once per worker, so one that prepares shared data keeps it in the run's
shared folder (parallel.session_dir) under a file lock.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import parallel
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("UNETPP_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

# The suite must stay fast on 2 cores; keep torch from oversubscribing them.
os.environ.setdefault("OMP_NUM_THREADS", "2")
# ... and from busy-waiting when the cores are shared (engine/runtime_env.py); before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("KMP_BLOCKTIME", "0")
# The CPU default executor, `fastest`, picks ours or OpenVINO by a timed probe that depends on
# the machine's load (engine/executors.py), so two runs may take different paths. The suite
# runs our path unless a test asks for another; test_executors.py tests `fastest` and the
# default choice explicitly.
os.environ.setdefault("UNETPP_EXECUTOR", "ours")


_SESSION_DIR = pytest.StashKey[Optional[str]]()


def pytest_configure(config: pytest.Config) -> None:
    """The run's shared folder, made by the serial process or xdist's controller (a config
    without ``workerinput``) before any worker starts; the workers inherit its name."""
    if not hasattr(config, "workerinput"):
        config.stash[_SESSION_DIR] = parallel.make_session_dir()


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the shared folder once every worker has ended."""
    parallel.remove_session_dir(config.stash.get(_SESSION_DIR, None))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker per usable CPU, capped (parallel.auto_workers)."""
    return parallel.auto_workers(parallel.usable_cpus(), parallel.physical_memory_bytes())


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"public data folder not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def brats_store(shared_data):
    """The shared BraTS cases, each decoded once per run, by whichever worker needs it first
    (brats_store.BratsStore: read-only memory-mapped volumes); its folder of uncompressed
    copies is the run's shared folder, removed at the end."""
    from brats_store import BratsStore

    folder = parallel.session_dir() / "brats"
    folder.mkdir(exist_ok=True)
    return BratsStore(shared_data, folder)


@pytest.fixture(scope="session")
def sphere_model() -> Path:
    """model.json of the tiny sphere-segmenting test model (Testing/fixtures/make_sphere_model.py).

    One CT channel (window -200..400 HU), 2 mm spacing, a 32^3 tile, one label named "liver"
    with its SNOMED CT codes; it segments 300 HU balls on a 0 HU background.
    """
    path = REPO_ROOT / "Testing" / "fixtures" / "sphere_model" / "model.json"
    assert path.is_file(), "run Testing/fixtures/make_sphere_model.py to regenerate the fixture"
    return path


@pytest.fixture(scope="session")
def sphere_predictor(sphere_model):
    from UNetPlusPlusLib.engine.predictor import Predictor

    return Predictor.from_manifest_path(sphere_model, device="cpu", threads=2)


@pytest.fixture(scope="session")
def engine_server():
    """One persistent engine process (`unetpp serve`) per worker, started at the first request:
    the panel's test modules share it, as Slicer shares one between runs, instead of one start
    (a torch import and a model load, 2-4 CPU-s) per module. A test that kills it gets a new
    one at its next request; killed at the end of the session."""
    pytest.importorskip("slicer")
    from UNetPlusPlusLib.adapter.engine_server import EngineServer
    from UNetPlusPlusLib.adapter.job import python_executable

    server = EngineServer(python_executable())
    yield server
    server.shutdown()


def shared_engine_logic(server):
    """A new SegmentationLogic (its own warnings, checks and jobs) whose persistent runs go to
    ``server``; its ``shutdown()`` stops its jobs and leaves the shared process running."""
    from UNetPlusPlusLib.adapter.logic import SegmentationLogic

    class SharedEngineLogic(SegmentationLogic):
        def __init__(self) -> None:
            super().__init__(persistent=True)
            self._server = server

        def shutdown(self) -> None:
            self._server = None  # the session's engine_server fixture stops the process
            try:
                super().shutdown()
            finally:
                self._server = server

    return SharedEngineLogic()


@pytest.fixture(scope="session")
def background_logic(engine_server):
    """One Slicer Logic (slicer-core) on the worker's persistent engine (engine_server), shared
    by the tests that need *a* background run, not a fresh engine (those of
    helpers.logic_warnings_both_ways)."""
    logic = shared_engine_logic(engine_server)
    yield logic
    logic.shutdown()


@pytest.fixture()
def one_torch_thread():
    """One torch thread: two threads on two busy shared cores spin and crawl."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def no_work(monkeypatch):
    """Fail the test if `unetpp segment` loaded the model: every check must come before any
    work (test_cli_checks, test_cli_paths_hostile)."""
    from UNetPlusPlusLib import cli_segment

    def refuse(args):
        raise AssertionError("work started before the checks")

    monkeypatch.setattr(cli_segment, "_load_manifest", refuse)


# The Slicer panel's tests (test_point_batch.py, test_point_segment_record.py,
# test_run_control_queue.py, test_run_control_output_owner.py): the panel's code on real MRML
# with real background runs; they skip without slicer-core before asking for these.
@pytest.fixture
def run_control(monkeypatch):
    """widget/run_control.py with the stand-ins of test_run_control_warnings.py."""
    from test_run_control_warnings import import_run_control

    return import_run_control(monkeypatch)


@pytest.fixture(scope="module")
def logic(engine_server):
    """The panel's SegmentationLogic, one per test module, its persistent runs on the worker's
    engine process (engine_server); its jobs are stopped after the module."""
    segmentation = shared_engine_logic(engine_server)
    yield segmentation
    segmentation.shutdown()


@pytest.fixture()
def chest_scene():
    """(scene, the test chest's volume node, an empty point list) in a real MRML scene."""
    import slicer
    from test_adapter_logic import add_volume
    from test_click_check import chest
    from UNetPlusPlusLib.engine.volume import volume_to_sitk

    scene = slicer.vtkMRMLScene()
    node = add_volume(scene, volume_to_sitk(chest()), "chest")
    seeds = slicer.vtkMRMLMarkupsFiducialNode()
    scene.AddNode(seeds)  # in a scene, Slicer labels the points F-1, F-2, ...
    return scene, node, seeds
