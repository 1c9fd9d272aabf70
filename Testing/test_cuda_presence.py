"""`--device cuda` where CUDA cannot exist is refused without importing torch
(engine/cuda_presence.py): `unetpp segment --device cuda` on a machine without CUDA imported
torch (2.8-3.1 s of CPU, 4.6 s idle, 30 s under load) only to refuse it. The decision is made
from the installed torch's generated version.py and, on Linux, the NVIDIA driver's files; the
refusal keeps resolve_device's wording."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import write_ball_ct
from UNetPlusPlusLib.engine.cuda_presence import cuda_impossible, torch_build_gpus

CPU_BUILD = "__version__ = '2.13.0+cpu'\ncuda: Optional[str] = None\nhip: Optional[str] = None\n"
CUDA_BUILD = "__version__ = '2.5.1'\ncuda: Optional[str] = '12.4'\nhip: Optional[str] = None\n"
ROCM_BUILD = "__version__ = '2.5.1+rocm6.2'\ncuda = None\nhip = '6.2.41133'\n"


def _torch(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "torch"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "version.py").write_text("from typing import Optional\n" + text)
    return folder


def _machine(tmp_path: Path, *paths: str) -> str:
    root = tmp_path / "root"
    for path in paths:
        (root / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (root / path.lstrip("/")).touch()
    root.mkdir(parents=True, exist_ok=True)
    return str(root)


def test_the_torch_build_is_read_without_importing_it(tmp_path):
    assert torch_build_gpus(_torch(tmp_path, CPU_BUILD)) == {"cuda": None, "hip": None}
    assert torch_build_gpus(_torch(tmp_path, CUDA_BUILD)) == {"cuda": "12.4", "hip": None}
    (tmp_path / "torch" / "version.py").write_text("something else\n")
    assert torch_build_gpus(tmp_path / "torch") is None  # not the file we know: no guess
    assert torch_build_gpus(tmp_path / "none") is None


def test_cuda_is_impossible_only_when_certain(tmp_path):
    empty = str(tmp_path)  # no nvidia-modprobe on this search path
    cpu, gpu = _torch(tmp_path / "a", CPU_BUILD), _torch(tmp_path / "b", CUDA_BUILD)
    bare = _machine(tmp_path)
    assert "CPU-only" in cuda_impossible(cpu, bare, "linux", empty)
    assert "CPU-only" in cuda_impossible(cpu, bare, "win32", empty)
    assert cuda_impossible(cpu, bare, "darwin", empty) is None  # MPS is torch's to tell
    assert "NVIDIA driver" in cuda_impossible(gpu, bare, "linux", empty)
    assert cuda_impossible(gpu, bare, "win32", empty) is None
    assert cuda_impossible(_torch(tmp_path / "c", ROCM_BUILD), bare, "linux", empty) is None
    for driver in ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg"):
        machine = _machine(tmp_path / driver.replace("/", "_"), driver)
        assert cuda_impossible(gpu, machine, "linux", empty) is None, driver
    modprobe = tmp_path / "bin" / "nvidia-modprobe"  # may load the driver on first use
    modprobe.parent.mkdir()
    modprobe.write_text("#!/bin/sh\n")
    modprobe.chmod(0o755)
    assert cuda_impossible(gpu, bare, "linux", str(modprobe.parent)) is None


def test_segment_refuses_cuda_without_importing_torch(tmp_path):
    """The same one error line as before, in the run's order, without torch in the process."""
    if cuda_impossible() is None:
        pytest.skip("CUDA may exist here: only torch can tell")
    ball = write_ball_ct(tmp_path / "ball.nii.gz")
    out = tmp_path / "out" / "ball.seg.nrrd"
    argv = ["segment", str(ball), "--task", "liver", "--device", "cuda:1", "-o", str(out)]
    code = (
        "import sys; from UNetPlusPlusLib.cli import main; "
        f"code = main({argv!r}); assert code == 2, code; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr.strip() == (
        "error: Device 'cuda:1' was asked for, but CUDA is not available here (no NVIDIA GPU "
        "or a CPU-only PyTorch); choose one of: auto, cpu."
    )
    assert not out.parent.exists()


@pytest.mark.parametrize("spec", ["cuda", "cuda:3", "mps"])
def test_the_early_refusal_reads_as_resolve_devices(spec):
    from UNetPlusPlusLib.device_check import refusal_without_torch
    from UNetPlusPlusLib.engine.devices import resolve_device
    from UNetPlusPlusLib.errors import UNetPlusPlusError

    if cuda_impossible() is None:
        pytest.skip("CUDA may exist here: only torch can tell")
    with pytest.raises(UNetPlusPlusError) as error:
        resolve_device(spec)
    assert refusal_without_torch(spec.upper()) == str(error.value)


def test_the_device_list_is_the_cpu_alone_without_torch():
    """`unetpp devices --json` (what the Slicer panel asks for its device selector) imported
    torch, 4.4 of its 4.6 CPU-s, to list the CPU alone where CUDA cannot exist."""
    import json

    from UNetPlusPlusLib.engine.devices import describe_devices

    if cuda_impossible() is None:
        pytest.skip("CUDA may exist here: only torch can tell")
    code = (
        "import sys; from UNetPlusPlusLib.cli import main; "
        "assert main(['devices', '--json']) == 0; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == describe_devices()  # what torch says, to the byte
