"""runtime_env: no OpenMP busy-waiting in the CLI, the Slicer job's child and (warned) elsewhere."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
from UNetPlusPlusLib.engine import runtime_env


def test_child_env_adds_passive_waiting_and_keeps_the_users_choice():
    env = runtime_env.child_env({"PATH": "/bin", "KMP_BLOCKTIME": "200"})
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"
    assert env["KMP_BLOCKTIME"] == "200"  # set by the user: kept
    assert env["PATH"] == "/bin"


def test_cli_sets_the_policy_before_torch_is_imported(repo_root):
    code = (
        "import os, sys\n"
        "from UNetPlusPlusLib import cli\n"
        "try:\n"
        "    cli.main(['--version'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('KMP_BLOCKTIME'),"
        " 'torch' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in runtime_env.CPU_RUNTIME_ENV}
    env["PYTHONPATH"] = str(repo_root / "UNetPlusPlus")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split()[-3:] == ["PASSIVE", "0", "False"]


def test_applying_again_in_a_process_started_passive_stays_quiet(monkeypatch):
    monkeypatch.setitem(runtime_env._state, "applied_before_torch", None)
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    import torch  # noqa: F401 - already loaded, with the policy inherited from the parent

    assert runtime_env.apply() is True
    assert runtime_env.busy_wait_warning() is None


def test_slicer_job_child_gets_the_policy(sphere_model, monkeypatch):
    from helpers import make_sphere_image
    from UNetPlusPlusLib.adapter import job
    from UNetPlusPlusLib.engine.image_read import volume_from_sitk
    from UNetPlusPlusLib.engine.manifest import ModelManifest

    for name in runtime_env.CPU_RUNTIME_ENV:
        monkeypatch.delenv(name, raising=False)
    seen = {}

    class Stop(Exception):
        pass

    def fake_popen(command, **kwargs):
        seen.update(kwargs["env"])
        raise Stop

    monkeypatch.setattr(job.subprocess, "Popen", fake_popen)
    volume = volume_from_sitk([make_sphere_image((8, 8, 8))], channel_names=["CT"])
    with pytest.raises(Stop):
        job.SegmentationJob(volume, ModelManifest.load(sphere_model), python="python3").start()
    assert seen["OMP_WAIT_POLICY"] == "PASSIVE"
    assert seen["KMP_BLOCKTIME"] == "0"
    assert seen["PYTHONUNBUFFERED"] == "1"


def test_predictor_warns_when_openmp_may_busy_wait(sphere_model, monkeypatch, caplog):
    from UNetPlusPlusLib.engine.predictor import Predictor

    monkeypatch.setitem(runtime_env._state, "applied_before_torch", None)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    with caplog.at_level(logging.WARNING):
        Predictor.from_manifest_path(sphere_model, device="cpu", threads=1)
    assert "OMP_WAIT_POLICY=PASSIVE" in caplog.text
    caplog.clear()
    monkeypatch.setenv("OMP_WAIT_POLICY", "passive")
    with caplog.at_level(logging.WARNING):
        Predictor.from_manifest_path(sphere_model, device="cpu", threads=1)
    assert "OMP_WAIT_POLICY" not in caplog.text
