"""Whether CUDA can exist here, known without importing torch (1.5-3 s of CPU, 5-30 s of wall
time on a loaded machine): `unetpp segment --device cuda` on a machine without CUDA waited for
that import only to refuse (4.6 s idle, 30 s under load).

:func:`cuda_impossible` answers from two facts that do not need torch:

- the installed torch build: its generated ``torch/version.py`` (read as text, not imported)
  says ``cuda = None`` and ``hip = None`` in a CPU-only build (the ``+cpu`` wheels, macOS);
  such a torch never sees a GPU, whatever the machine holds;
- on Linux, for a CUDA build, the NVIDIA driver: CUDA needs the kernel module
  (``/proc/driver/nvidia``, which is not namespaced, so a container sees it too) or its device
  files (``/dev/nvidia0``, ``/dev/nvidiactl``); WSL 2 reaches the GPU through ``/dev/dxg``
  instead, and ``nvidia-modprobe`` can load the module on first use, so any of these leaves
  it open.

It returns None (unknown: ask torch) whenever neither fact is certain (a ROCm build, whose
``torch.cuda`` drives AMD GPUs, or a torch whose version.py cannot be read), and always on macOS,
where the choices include MPS, which only torch can tell. Never raises. Standard library only.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import shutil
import sys
from pathlib import Path
from typing import Optional

#: What ``devices.resolve_device`` says of a CUDA device where CUDA is not available; the CLI's
#: early refusal (``device_check``) says the same, word for word.
CUDA_UNAVAILABLE = (
    "Device {spec!r} was asked for, but CUDA is not available here"
    " (no NVIDIA GPU or a CPU-only PyTorch); choose one of: {available}."
)
#: Paths whose presence means an NVIDIA driver (or WSL 2's GPU bridge) may serve CUDA.
DRIVER_PATHS = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg")


def torch_build_gpus(torch_dir: Optional[Path] = None) -> Optional[dict]:
    """``{"cuda": str or None, "hip": str or None}`` from the installed torch's generated
    ``version.py`` (``torch_dir``: its package folder; default: found without importing it),
    or None when torch or that file cannot be found or read."""
    if torch_dir is None:
        try:
            spec = importlib.util.find_spec("torch")  # a top-level package: not imported
        except (ImportError, ValueError):
            return None
        locations = list(spec.submodule_search_locations or []) if spec else []
        if not locations:
            return None
        torch_dir = Path(locations[0])
    try:
        tree = ast.parse((Path(torch_dir) / "version.py").read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
        return None
    found: dict = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            target, value = node.target.id, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = getattr(node.targets[0], "id", None)
            value = node.value
        else:
            continue
        if target in ("cuda", "hip") and isinstance(value, ast.Constant):
            found[target] = value.value
    if "cuda" not in found:  # not the file we know: do not guess
        return None
    return {"cuda": found["cuda"], "hip": found.get("hip")}


def no_nvidia_driver(
    root: str = "/", platform: str = sys.platform, search_path: Optional[str] = None
) -> bool:
    """True only on Linux when none of :data:`DRIVER_PATHS` (under ``root``) exists and no
    ``nvidia-modprobe`` is on ``search_path`` (default: PATH) to load the driver on first use."""
    if not platform.startswith("linux"):
        return False
    if any(os.path.exists(os.path.join(root, p.lstrip("/"))) for p in DRIVER_PATHS):
        return False
    return shutil.which("nvidia-modprobe", path=search_path) is None


def cuda_impossible(
    torch_dir: Optional[Path] = None,
    root: str = "/",
    platform: str = sys.platform,
    search_path: Optional[str] = None,
) -> Optional[str]:
    """Why CUDA cannot be available here, or None when it may be (then ask torch). macOS:
    always None (MPS is torch's to tell). ``torch_dir``, ``root``, ``platform`` and
    ``search_path`` (:func:`no_nvidia_driver`) default to this machine's; tests set them."""
    if platform == "darwin":
        return None
    build = torch_build_gpus(torch_dir)
    if build is None or build["hip"] is not None:  # unknown, or ROCm: AMD GPUs, no NVIDIA
        return None
    if build["cuda"] is None:
        return "the installed PyTorch is a CPU-only build"
    if no_nvidia_driver(root, platform, search_path):
        return "no NVIDIA driver is loaded"
    return None
