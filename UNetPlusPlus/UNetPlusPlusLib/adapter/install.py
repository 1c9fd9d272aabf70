"""Python dependencies inside 3D Slicer, installed at first use after the user agrees.

- torch comes from SlicerPyTorch's ``PyTorchUtils`` (``installTorch(askConfirmation=True)``),
  which asks the user and picks the CUDA or CPU build that fits the machine.
- The other packages go through ``slicer.packaging.pip_ensure`` (Slicer 5.12 and later, where
  Base/Python/slicer/packaging.py first ships; it asks the user itself) or, in older Slicer,
  ``slicer.util.pip_install`` after ``confirm(message)``.

numpy, SimpleITK and vtk ship with Slicer. No Qt here: the Widget passes its dialog as
``confirm``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from typing import Callable, Optional, Sequence

from ..errors import UNetPlusPlusError

REQUESTER = "UNet++"
#: What `unetpp segment` imports beyond Slicer's bundled numpy, SimpleITK and vtk.
RUNTIME_REQUIREMENTS: tuple[str, ...] = ("safetensors>=0.4", "slicerio>=1.1", "tqdm>=4.60")
TORCH_REQUIREMENT = "torch>=2.1"


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


def ensure_packages(
    confirm: Callable[[str], bool],
    log: Callable[[str], None] = print,
    requirements: Sequence[str] = RUNTIME_REQUIREMENTS,
) -> None:
    """pip-install the missing ``requirements`` once the user agrees."""
    missing = missing_requirements(requirements)
    if not missing:
        return
    try:
        import slicer.packaging as packaging
    except ImportError:
        packaging = None
    log(f"Installing Python packages: {', '.join(missing)}")
    if packaging is not None and hasattr(packaging, "pip_ensure"):
        try:
            packaging.pip_ensure(missing, requester=REQUESTER)
        except RuntimeError as error:  # the user declined
            raise UNetPlusPlusError(f"Python packages were not installed: {error}") from error
    else:
        message = (
            "UNet++ needs these Python packages: "
            + ", ".join(missing)
            + ". Install them now (a few MB from PyPI)?"
        )
        if not confirm(message):
            raise UNetPlusPlusError(
                "Python packages were not installed; UNet++ cannot run without "
                + ", ".join(missing)
                + "."
            )
        import slicer

        slicer.util.pip_install(" ".join(missing))
    importlib.invalidate_caches()
    still = missing_requirements(requirements)
    if still:
        raise UNetPlusPlusError(
            f"Installing {', '.join(still)} failed; see the Python console, then restart Slicer."
        )


def ensure_dependencies(
    confirm: Callable[[str], bool], log: Optional[Callable[[str], None]] = None
) -> None:
    """torch (through SlicerPyTorch) and the other runtime packages, asking before installing."""
    log = log or print
    ensure_torch(log)
    ensure_packages(confirm, log)
