"""Device choice, out-of-memory detection, threads and autocast (what a CPU machine can check)."""

from __future__ import annotations

import os

import pytest
import torch
from UNetPlusPlusLib.engine import devices
from UNetPlusPlusLib.engine.devices import (
    autocast_context,
    autocast_dtype,
    configure_threads,
    cpu_autocast_supported,
    describe_devices,
    is_out_of_memory,
    physical_core_count,
    resolve_device,
)
from UNetPlusPlusLib.errors import UNetPlusPlusError

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@no_cuda
def test_auto_is_cpu_without_cuda():
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device() == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")


@needs_cuda
def test_auto_is_cuda_with_cuda():
    assert resolve_device("auto").type == "cuda"
    assert resolve_device("cuda:0") == torch.device("cuda", 0)


@pytest.mark.parametrize("spec", ["cpu", " CPU ", torch.device("cpu")])
def test_cpu_spellings(spec):
    assert resolve_device(spec) == torch.device("cpu")


@no_cuda
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_request_without_cuda_is_a_clear_error(spec):
    with pytest.raises(UNetPlusPlusError, match="CUDA is not available") as info:
        resolve_device(spec)
    assert "cpu" in str(info.value) and repr(spec) in str(info.value)


@pytest.mark.parametrize("spec", ["cuda:3", "mps"])
def test_segment_refuses_a_missing_gpu_before_reading_its_inputs(tmp_path, capsys, spec):
    """`unetpp segment ... --device cuda` on a CPU-only torch was refused only after the input
    was read and checked (57 s under load); now first: the input here does not even exist."""
    from UNetPlusPlusLib.cli import main

    if spec == "cuda:3" and torch.cuda.device_count() > 3:
        pytest.skip("this machine has a cuda:3")
    argv = ["segment", str(tmp_path / "missing.nrrd"), "--task", "liver", "--device", spec]
    assert main([*argv, "-o", str(tmp_path / "out.seg.nrrd")]) == 2
    error = capsys.readouterr().err
    assert f"Device {spec!r}" in error and "missing.nrrd" not in error, error
    assert "Traceback" not in error and len(error.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("spec", ["tpu", "cuda:x", "gpu0"])
def test_unknown_device(spec):
    with pytest.raises(UNetPlusPlusError, match="choose one of: auto, cpu"):
        resolve_device(spec)


def test_cuda_index_checked_against_device_count(monkeypatch):
    """Two GPUs reported by the driver: cuda:1 resolves, cuda:2 lists what exists."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("auto") == torch.device("cuda", 0)
    with pytest.raises(UNetPlusPlusError, match=r"has 2 CUDA device.*cpu, cuda:0, cuda:1\."):
        resolve_device("cuda:2")


def test_describe_devices_lists_cpu_first():
    listed = describe_devices()
    assert listed[0]["id"] == "cpu"
    assert isinstance(listed[0]["name"], str) and listed[0]["name"]
    assert listed[0]["memory"] is None or listed[0]["memory"] > 0
    cuda_ids = [d["id"] for d in listed if d["id"].startswith("cuda")]
    assert cuda_ids == [f"cuda:{i}" for i in range(torch.cuda.device_count())]


def test_the_device_list_and_the_grid_check_read_one_memory_figure(monkeypatch):
    """The CPU's memory in the panel's device list is the figure the model-grid check compares
    with (engine/system_memory.py), and a sysconf that answers -1 gives None in both."""
    from UNetPlusPlusLib.engine import grid_memory, system_memory

    assert devices.physical_memory_bytes is system_memory.physical_memory_bytes
    assert grid_memory.physical_memory_bytes is system_memory.physical_memory_bytes
    assert describe_devices()[0]["memory"] == system_memory.physical_memory_bytes()
    monkeypatch.setattr(system_memory.os, "sysconf", lambda name: -1)
    assert describe_devices()[0]["memory"] is None  # was (-1) * (-1) = 1 byte


@pytest.mark.parametrize(
    "exc, expected",
    [
        (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
        (RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB"), True),
        (RuntimeError("CUDA error: out of memory"), True),
        (RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"), True),
        (MemoryError(), True),
        (RuntimeError("Given groups=1, weight of size [8, 1, 3, 3, 3], expected input..."), False),
        (ValueError("out of memory"), False),
        (KeyError("x"), False),
    ],
)
def test_is_out_of_memory(exc, expected):
    assert is_out_of_memory(exc) is expected


def test_real_cpu_allocation_failure_is_out_of_memory():
    with pytest.raises(RuntimeError) as info:
        torch.empty(2**60, dtype=torch.uint8)  # 1 EiB: refused by the allocator at once
    assert is_out_of_memory(info.value)


def test_cpu_autocast_supported_matches_cpu_flags():
    supported = cpu_autocast_supported()
    assert isinstance(supported, bool)
    if not os.path.exists("/proc/cpuinfo"):
        return
    flags = devices.cpu_flags()
    capability = torch.backends.cpu.get_cpu_capability()
    native_bf16 = bool({"avx512_bf16", "amx_bf16", "amx_tile"} & flags)
    if not capability.startswith("AVX512"):
        assert supported is False
    else:
        assert supported is native_bf16


def test_configure_threads(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert configure_threads(1) == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert configure_threads() == 2 and torch.get_num_threads() == 2
        monkeypatch.delenv("OMP_NUM_THREADS")
        cores = configure_threads()
        assert cores == physical_core_count()
        assert 1 <= cores <= (os.cpu_count() or 1)
        with pytest.raises(ValueError):
            configure_threads(0)
    finally:
        torch.set_num_threads(before)


def test_autocast_is_a_no_op_on_cpu():
    assert autocast_dtype("cpu") is None
    conv = torch.nn.Conv3d(1, 2, 3, padding=1)
    x = torch.randn(1, 1, 6, 6, 6)
    with torch.no_grad():
        expected = conv(x)
        with autocast_context(torch.device("cpu")):
            assert not torch.is_autocast_enabled("cpu")
            out = conv(x)
    assert out.dtype == torch.float32
    assert torch.equal(out, expected)


@needs_cuda
def test_autocast_on_cuda_uses_half_precision():
    conv = torch.nn.Conv3d(1, 2, 3, padding=1).cuda()
    with torch.no_grad(), autocast_context("cuda:0"):
        out = conv(torch.randn(1, 1, 6, 6, 6, device="cuda"))
    assert out.dtype in (torch.float16, torch.bfloat16)
    with autocast_context("cuda:0", enabled=False):
        assert not torch.is_autocast_enabled("cuda")
