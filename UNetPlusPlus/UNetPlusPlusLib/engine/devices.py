"""Device choice, thread count, mixed precision and out-of-memory detection.

``"auto"`` picks CUDA when it is available, else the CPU (docs/ARCHITECTURE.md, "Predictor").
The predictor uses :func:`is_out_of_memory` to retry with a smaller tile batch, then on the CPU.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import ContextManager, Iterator, Optional, Union

import torch

from UNetPlusPlusLib.errors import UNetPlusPlusError

from .cpu_cores import default_thread_count, physical_core_count  # noqa: F401 (re-exported)
from .cuda_presence import CUDA_UNAVAILABLE
from .system_memory import cpu_name, physical_memory_bytes

_CUDA_SPEC = re.compile(r"^cuda(?::(\d+))?$")
_OOM_MESSAGES = ("out of memory", "can't allocate memory")


def _cuda_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def _available_ids() -> list[str]:
    ids = ["cpu"] + [f"cuda:{i}" for i in range(_cuda_count())]
    return ids + (["mps"] if _mps_available() else [])


def resolve_device(spec: Union[str, torch.device, None] = "auto") -> torch.device:
    """``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.

    Asking for a device that does not exist raises :class:`UNetPlusPlusError` listing those that do.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = (spec or "auto").strip().lower()
    if text == "auto":
        return (
            torch.device("cuda", torch.cuda.current_device())
            if _cuda_count()
            else torch.device("cpu")
        )
    if text == "cpu":
        return torch.device("cpu")
    available = ", ".join(["auto"] + _available_ids())
    match = _CUDA_SPEC.match(text)
    if match:
        count = _cuda_count()
        if count == 0:
            raise UNetPlusPlusError(CUDA_UNAVAILABLE.format(spec=spec, available=available))
        index = int(match.group(1)) if match.group(1) is not None else torch.cuda.current_device()
        if index >= count:
            raise UNetPlusPlusError(
                f"Device {spec!r} does not exist: this machine has {count} CUDA device(s);"
                f" choose one of: {available}."
            )
        return torch.device("cuda", index)
    if text == "mps":
        if not _mps_available():
            raise UNetPlusPlusError(
                f"Device 'mps' is not available here; choose one of: {available}."
            )
        return torch.device("mps")
    raise UNetPlusPlusError(f"Unknown device {spec!r}; choose one of: {available}.")


def describe_devices() -> list[dict]:
    """One entry per usable device for the Slicer panel: ``{"id", "name", "memory"}``.

    ``memory`` is in bytes (GPU memory, or the machine's RAM for the CPU), or None if unknown.
    """
    devices = [{"id": "cpu", "name": cpu_name(), "memory": physical_memory_bytes()}]
    for index in range(_cuda_count()):
        props = torch.cuda.get_device_properties(index)
        devices.append({"id": f"cuda:{index}", "name": props.name, "memory": props.total_memory})
    if _mps_available():
        devices.append({"id": "mps", "name": "Apple GPU (MPS)", "memory": None})
    return devices


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA/MPS/CPU allocation failures, which a smaller batch or the CPU may avoid."""
    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    if isinstance(exc, MemoryError):
        return True
    if isinstance(exc, RuntimeError):
        message = str(exc).lower()
        return any(text in message for text in _OOM_MESSAGES)
    return False


def release_memory(device: Union[torch.device, str]) -> None:
    """Give cached GPU memory back after an out-of-memory error (no-op on the CPU)."""
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()


def cpu_flags() -> set[str]:
    """The CPU feature flags from /proc/cpuinfo (empty where it cannot be read)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_autocast_supported() -> bool:
    """True when the CPU has native bfloat16 (AVX512_BF16 or AMX): only then is CPU autocast
    worth it; emulated bfloat16 convolutions were hundreds of times slower than float32."""
    capability = torch.backends.cpu.get_cpu_capability().upper()
    if not (capability.startswith("AVX512") or "AMX" in capability):
        return False
    names = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    probes = [getattr(torch.cpu, name) for name in names if hasattr(torch.cpu, name)]
    if probes:
        return any(bool(p()) for p in probes)
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def configure_threads(n: Optional[int] = None) -> int:
    """Set torch's intra-op threads to ``n``; by default ``OMP_NUM_THREADS`` if set, else the
    physical core count (hyper-threads slow convolutions down). Returns the count used."""
    if n is None:
        n = default_thread_count()
    if n < 1:
        raise ValueError(f"thread count must be at least 1, not {n}")
    torch.set_num_threads(n)
    return n


def autocast_dtype(device: Union[torch.device, str]) -> Optional[torch.dtype]:
    """The mixed-precision type used on ``device``: bfloat16 on CUDA where supported, else
    float16; None on the CPU and other devices (full float32)."""
    if torch.device(device).type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast_context(device: Union[torch.device, str], enabled: bool = True) -> ContextManager:
    """Autocast for inference on CUDA; a no-op context on the CPU (float32 stays exact)."""
    dtype = autocast_dtype(device)
    if not enabled or dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=dtype)


@contextlib.contextmanager
def inference_backends(device: Union[torch.device, str]) -> Iterator[None]:
    """Backend settings for a sliding window on ``device``, restored afterwards.

    On CUDA, ``cudnn.benchmark`` is switched on: every tile has the same shape, so the one-off
    search for the fastest convolution algorithms pays for itself after the first tile. (The
    CUDA path is written for, but untested on, GPU hardware in this project's CI.) On the CPU
    nothing changes: threads are set once by :func:`configure_threads`.
    """
    if torch.device(device).type != "cuda":
        yield
        return
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous
