"""One check, before any input is read, that the ``--device`` asked for exists here.

Used by ``unetpp segment`` (and so ``unetpp serve``'s requests) and ``unetpp train``. No torch
at import time: ``auto`` and ``cpu`` (the usual runs) and a name that is no device at all
(``gpu0``) are answered without it; only a GPU name (``cuda``, ``cuda:N``, ``mps``) imports
torch to ask whether that GPU exists, with the error the model load would give
(``engine/devices.resolve_device``).
"""

from __future__ import annotations

import re

from . import torch_preload
from .errors import UNetPlusPlusError

#: the device names the engine knows (lower case, no spaces)
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
DEVICE_NAMES = "auto, cpu, cuda, cuda:N (N = 0, 1, ...) or mps"


def check_device_exists(device: object) -> None:
    """Return at once for ``auto`` and ``cpu`` (any case, spaces around allowed); raise
    :class:`UNetPlusPlusError` for an unknown name without importing torch; for a GPU name,
    wait for the CLI's background torch import (``torch_preload``), if one was started, and
    raise the error ``resolve_device`` gives when this machine lacks that GPU."""
    text = str(device if device is not None else "auto").strip().lower()
    if text in ("auto", "cpu"):
        return
    if not DEVICE_PATTERN.match(text):
        raise UNetPlusPlusError(f"Unknown device {device!r}; choose {DEVICE_NAMES}.")
    torch_preload.wait()
    from .engine.devices import resolve_device

    resolve_device(text)
