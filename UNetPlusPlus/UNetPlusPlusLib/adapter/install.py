"""Python dependencies inside 3D Slicer, installed at first use after the user agrees.

- torch comes from SlicerPyTorch's ``PyTorchUtils`` (``installTorch(askConfirmation=True)``),
  which asks the user and picks the CUDA or CPU build that fits the machine.
- The other packages, required and optional, are listed in one ``confirm(message)`` and, once
  the user agrees, installed through ``slicer.packaging.pip_ensure(..., prompt_install=False)``
  (Slicer 5.12 and later, where Base/Python/slicer/packaging.py first ships) or, in older
  Slicer, ``slicer.util.pip_install`` (5.8, 5.10: ``python -m pip install`` of the shlex-split
  string). Both raise ``subprocess.CalledProcessError`` when pip fails (checked against Slicer's
  Base/Python/slicer/util.py at v5.8.1 and packaging.py at v5.12.0 and main, 2026-08).
- The optional packages (:data:`OPTIONAL_REQUIREMENTS`: OpenVINO and onnx, the CPU executor
  ``fastest`` of engine/fastest.py; zlib-ng, the faster inflate of engine/inflate_stream.py)
  are installed after the required ones, in their own pip call; if that fails, one warning
  line goes to ``log`` and the module runs on the built-in executor ``ours`` and zlib. They
  are asked for only with the required ones (the first install).

numpy, SimpleITK and vtk ship with Slicer. No Qt here: the Widget passes its dialog as
``confirm``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import subprocess
from typing import Callable, Optional, Sequence

from ..errors import UNetPlusPlusError

REQUESTER = "UNet++"
#: What `unetpp segment` imports beyond Slicer's bundled numpy, SimpleITK and vtk.
RUNTIME_REQUIREMENTS: tuple[str, ...] = ("safetensors>=0.4", "slicerio>=1.1", "tqdm>=4.60")
#: Core dependencies of pyproject.toml the engine runs without: the CPU default ``fastest``
#: needs OpenVINO (without it the default is ``ours``) and onnx for the graph export; zlib-ng
#: reads compressed images faster (without it, zlib).
OPTIONAL_REQUIREMENTS: tuple[str, ...] = ("openvino>=2024.0", "onnx>=1.15", "zlib-ng>=0.5")
TORCH_REQUIREMENT = "torch>=2.1"
#: What Slicer's pip raises when an install fails (RuntimeError: no PythonSlicer, in 5.8).
PIP_ERRORS = (subprocess.CalledProcessError, RuntimeError, OSError)


def _satisfied(requirement: str) -> bool:
    """Whether an installed distribution meets ``requirement`` (name and version bound)."""
    try:
        from packaging.requirements import Requirement
    except ImportError:  # no packaging: presence is all we can check
        name, spec = requirement.split(">=")[0].split("==")[0].strip(), None
    else:
        parsed = Requirement(requirement)
        name, spec = parsed.name, parsed.specifier
    try:
        installed = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return spec is None or spec.contains(installed, prereleases=True)


def missing_requirements(requirements: Sequence[str] = RUNTIME_REQUIREMENTS) -> list[str]:
    """The requirements that are not installed (or too old)."""
    return [r for r in requirements if not _satisfied(r)]


def torch_installed() -> bool:
    return importlib.util.find_spec("torch") is not None


def dependencies_ready() -> bool:
    """Everything `unetpp segment` needs is importable."""
    return torch_installed() and not missing_requirements()


def ensure_torch(log: Callable[[str], None] = print) -> None:
    """Install torch through SlicerPyTorch if it is missing; raise if that is not possible."""
    if torch_installed():
        return
    try:
        import PyTorchUtils  # SlicerPyTorch extension, a dependency of this extension
    except ImportError as error:
        raise UNetPlusPlusError(
            "UNet++ needs the PyTorch extension: install 'PyTorch' from the Extensions Manager, "
            "restart 3D Slicer and click Segment again."
        ) from error
    log("Installing PyTorch through the PyTorch extension (this can take several minutes)...")
    torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(
        askConfirmation=True, torchVersionRequirement=TORCH_REQUIREMENT.removeprefix("torch")
    )
    if torch is None:
        raise UNetPlusPlusError(
            "PyTorch was not installed (cancelled or failed); UNet++ cannot run without it. "
            "See Troubleshooting in the README to install it by hand."
        )


def slicer_pip(requirements: Sequence[str], optional: bool = False) -> None:
    """Install ``requirements`` with Slicer's pip, without a second question (the user agreed in
    ``ensure_packages``). Raises one of :data:`PIP_ERRORS` when pip fails. ``optional``: no
    progress dialog in Slicer 5.12+, whose failure dialog ("Package installation failed") would
    present a failure the module recovers from as an error; a busy cursor instead."""
    import slicer

    try:
        import slicer.packaging as packaging
    except ImportError:
        packaging = None
    if packaging is not None and hasattr(packaging, "pip_ensure"):
        packaging.pip_ensure(
            list(requirements),
            prompt_install=False,
            requester=REQUESTER,
            show_progress=not optional,
        )
    else:
        slicer.util.pip_install(" ".join(requirements))


def ensure_packages(
    confirm: Callable[[str], bool],
    log: Callable[[str], None] = print,
    requirements: Sequence[str] = RUNTIME_REQUIREMENTS,
    optional: Sequence[str] = OPTIONAL_REQUIREMENTS,
    pip: Callable[..., None] = slicer_pip,
) -> None:
    """pip-install the missing ``requirements``, then the missing ``optional`` ones, once the
    user agrees to both in one ``confirm(message)``. Nothing is asked or installed when no
    requirement is missing. Raises UNetPlusPlusError if the user declines or a required package
    is still missing afterwards; an optional one that fails is one ``warning:`` line in ``log``.
    ``pip(requirements, optional=bool)``: the installer (Slicer's, :func:`slicer_pip`)."""
    missing = missing_requirements(requirements)
    if not missing:
        return
    extra = missing_requirements(optional)
    message = "UNet++ needs these Python packages: " + ", ".join(missing)
    if extra:
        message += "; and, optionally, " + ", ".join(extra) + " (about 210 MB: a faster CPU engine)"
    if not confirm(message + ". Install them now from PyPI?"):
        raise UNetPlusPlusError(
            "Python packages were not installed; UNet++ cannot run without "
            + ", ".join(missing)
            + "."
        )
    log(f"Installing Python packages: {', '.join(missing)}")
    try:
        pip(missing)
    except PIP_ERRORS as error:
        log(f"pip failed: {error}")
    importlib.invalidate_caches()
    still = missing_requirements(requirements)
    if still:
        raise UNetPlusPlusError(
            f"Installing {', '.join(still)} failed; see the Python console, then restart Slicer."
        )
    if extra:
        _install_optional(extra, log, pip)


def _install_optional(extra: Sequence[str], log: Callable[[str], None], pip) -> None:
    """Try ``extra``; a failure is one warning line, never an error."""
    log(f"Installing optional Python packages: {', '.join(extra)}")
    reason = ""
    try:
        pip(extra, optional=True)
    except PIP_ERRORS as error:
        reason = f" ({error})"
    importlib.invalidate_caches()
    failed = missing_requirements(extra)
    if failed:
        log(
            f"warning: {', '.join(failed)} could not be installed{reason}; UNet++ runs on its "
            "built-in CPU engine ('ours'), which can be slower. See the Python console."
        )


def ensure_dependencies(
    confirm: Callable[[str], bool], log: Optional[Callable[[str], None]] = None
) -> None:
    """torch (through SlicerPyTorch) and the other runtime packages, asking before installing."""
    log = log or print
    ensure_torch(log)
    ensure_packages(confirm, log)
