"""One check, before any input is read, that the ``--device`` asked for exists here.

Used by ``unetpp segment`` (and so ``unetpp serve``'s requests) and ``unetpp train``. No torch
at import time: ``auto`` and ``cpu`` (the usual runs) and a name that is no device at all
(``gpu0``) are answered without it; so is a GPU name (``cuda``, ``cuda:N``, ``mps``) where
CUDA cannot exist (a CPU-only torch build, or Linux without an NVIDIA driver:
``engine/cuda_presence.py``), with the error the model load would give, word for word. Other
GPU names import torch to ask whether that GPU exists (``engine/devices.resolve_device``).
"""

from __future__ import annotations

import re
from typing import Optional

from . import torch_preload
from .engine.cuda_presence import CUDA_UNAVAILABLE, cuda_impossible
from .errors import UNetPlusPlusError

#: the device names the engine knows (lower case, no spaces)
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
DEVICE_NAMES = "auto, cpu, cuda, cuda:N (N = 0, 1, ...) or mps"


def check_device_exists(device: object) -> None:
    """Return at once for ``auto`` and ``cpu`` (any case, spaces around allowed); raise
    :class:`UNetPlusPlusError` for an unknown name without importing torch, and for a GPU
    name where CUDA cannot exist (``cuda_presence.cuda_impossible``: then no MPS either); for
    other GPU names, wait for the CLI's background torch import (``torch_preload``), if one
    was started, and raise the error ``resolve_device`` gives when this machine lacks that
    GPU. The refusals without torch read as ``resolve_device``'s."""
    text = str(device if device is not None else "auto").strip().lower()
    if text in ("auto", "cpu"):
        return
    refusal = refusal_without_torch(device)
    if refusal is not None:
        raise UNetPlusPlusError(refusal)
    torch_preload.wait()
    from .engine.devices import resolve_device

    resolve_device(text)


def refusal_without_torch(device: object) -> Optional[str]:
    """The error :func:`check_device_exists` gives ``device`` without importing torch: an
    unknown name, or a GPU name where CUDA cannot exist (``cuda_presence.cuda_impossible``;
    not on macOS, so no MPS either), worded as ``resolve_device`` words it; None when the
    device is ``auto``, ``cpu`` or a GPU only torch can rule out. ``cli.main`` does not start
    its background torch import for a device refused here."""
    text = str(device if device is not None else "auto").strip().lower()
    if text in ("auto", "cpu"):
        return None
    if not DEVICE_PATTERN.match(text):
        return f"Unknown device {device!r}; choose {DEVICE_NAMES}."
    if cuda_impossible() is None:
        return None
    if text == "mps":
        return "Device 'mps' is not available here; choose one of: auto, cpu."
    return CUDA_UNAVAILABLE.format(spec=text, available="auto, cpu")
