"""The package's data: built-in model packages and dataset descriptions.

They live inside the package, ``UNetPlusPlusLib/Resources/Models/<task>/`` (``model.json``,
``weights.safetensors``, card, plots) and ``UNetPlusPlusLib/Resources/Datasets/*.json``, and
are found through :mod:`importlib.resources`, so the same code finds them in a checkout, in an
editable or a normal (wheel) ``pip install`` and in an installed Slicer extension (the module's
CMakeLists.txt installs them beside the package). Importing this module is cheap (no torch).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Optional

PACKAGE = "UNetPlusPlusLib"


def resource_dir(*parts: str) -> Optional[Path]:
    """The folder ``UNetPlusPlusLib/Resources/<parts...>`` on disk, or None when absent.

    A package imported from a zip file has no folder on disk; None then too (the registry then
    says where it looked).
    """
    root = resources.files(PACKAGE)
    if not isinstance(root, Path):  # e.g. a zipimport Traversable: no real folder to list
        return None
    folder = root.joinpath("Resources", *parts)
    return folder if folder.is_dir() else None


def expected_dir(*parts: str) -> Path:
    """Where ``Resources/<parts...>`` should be, whether or not it exists (for messages)."""
    return Path(str(resources.files(PACKAGE))).joinpath("Resources", *parts)


def builtin_models_dir() -> Optional[Path]:
    """``UNetPlusPlusLib/Resources/Models`` (one folder per built-in model), or None."""
    return resource_dir("Models")


def builtin_datasets_dir() -> Optional[Path]:
    """``UNetPlusPlusLib/Resources/Datasets`` (dataset descriptions, JSON), or None."""
    return resource_dir("Datasets")
