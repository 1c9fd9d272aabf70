"""Folders in the output paths of `unetpp segment`: one wording for a folder given as a file, and
one warning for the folders a run creates.

A folder given where a file is needed had two wordings: ``-o somefolder/`` was refused when the
options were parsed ("'somefolder/' is a folder; give a file name for -o"), ``-o
existing.seg.nrrd`` (a folder whose name looks like a file) when the outputs were checked
("-o existing.seg.nrrd is a folder; give a file name."), neither saying which name to give.
Both now get :func:`folder_error`, which suggests a file in that folder named after the input.

A missing folder is created for its output (``-o results/ct.seg.nrrd``, as ``make demo`` and
docs/TRAINING.md do), and :func:`created_folder_warnings` says so once the inputs passed their
checks and before the model runs (a run refused for its input creates nothing, and says only
why), naming the first folder that does not exist: a typo there (``-o reslts/ct.seg.nrrd``)
would otherwise leave the result where nobody looks, in silence. A run that fails or is
cancelled removes the folders it created (``cli_outputs.OutputSet``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

#: A file name to suggest inside a folder given as an output, by option (``{stem}``: the
#: input's name without its image extension).
EXAMPLE_NAMES = {
    "-o": "{stem}.seg.nrrd",
    "--labelmap": "{stem}_labels.nii.gz",
    "--probabilities": "{stem}_probabilities.nii.gz",
    "--disagreement": "{stem}_disagreement.nii.gz",
    "--preview": "{stem}_preview.png",
}

#: Image extensions left out of the suggested name (longest first).
_IMAGE_SUFFIXES = (".seg.nrrd", ".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")

_SEPARATORS = ("/", os.sep)


def names_folder(output: str) -> bool:
    """Whether the output path ``output`` names a folder: it ends with a path separator, or is
    an existing folder (``~`` expanded)."""
    return output.endswith(_SEPARATORS) or os.path.isdir(os.path.expanduser(output))


def image_stem(path: str) -> str:
    """The name of the image file (or DICOM folder) ``path`` without its image extension:
    ``/data/ct.nii.gz`` -> ``ct``."""
    name = os.path.basename(path.rstrip("/" + os.sep)) or "segmentation"
    lower = name.lower()
    suffix = next((s for s in _IMAGE_SUFFIXES if lower.endswith(s) and lower != s), "")
    return name[: len(name) - len(suffix)]


def folder_error(option: str, output: str, inputs: Sequence[str]) -> str:
    """The one message for ``option output`` naming a folder where a file is needed, with a
    file in that folder to give instead (named after the first input)."""
    stem = image_stem(inputs[0]) if inputs else "segmentation"
    name = EXAMPLE_NAMES.get(option, "{stem}.nii.gz").format(stem=stem)
    inside = output + name if output.endswith(_SEPARATORS) else os.path.join(output, name)
    return (
        f"{option} {output} names a folder, not a file; give a file name in it, for example "
        f"{option} {inside}"
    )


def first_missing(folder: Path) -> Path:
    """The outermost folder of ``folder``'s path that does not exist (``folder`` itself when
    only it is missing); ``folder`` when it exists."""
    missing = folder
    while not folder.exists() and folder != folder.parent:
        missing, folder = folder, folder.parent
    return missing


def created_folder_warnings(outputs: dict[str, Optional[str]]) -> list[str]:
    """One warning per folder the outputs need that does not exist, naming the first missing
    folder and the outputs (``"-o results/ct.seg.nrrd"``) that need it. ``outputs`` maps an
    option to its path or None."""
    created: dict[Path, list[str]] = {}
    for option, output in outputs.items():
        folder = Path(output).expanduser().parent if output else None
        if folder is not None and not folder.exists():
            created.setdefault(first_missing(folder), []).append(f"{option} {output}")
    warnings = []
    for folder, outputs in created.items():
        these = "this output" if len(outputs) == 1 else "these outputs"
        warnings.append(
            f"{', '.join(outputs)}: the folder {folder} does not exist, so it is created for "
            f"{these}; check the path if you expected that folder to exist."
        )
    return warnings


class CreatedFolders:
    """The folders made for a run's outputs (``cli_outputs.OutputSet``, the Slicer case export
    ``adapter/case_files.CaseFiles``), so that a failed or cancelled write removes them again."""

    def __init__(self) -> None:
        self.paths: list[Path] = []  #: made by :meth:`make`, parents first

    def make(self, folder: Path) -> None:
        """Create ``folder`` and its missing parents, recording each. Raises OSError as
        ``Path.mkdir`` does (the folders made before the error stay recorded)."""
        missing = []
        while not folder.exists() and folder != folder.parent:
            missing.append(folder)
            folder = folder.parent
        for path in reversed(missing):
            path.mkdir()
            self.paths.append(path)

    def remove(self) -> None:
        """Remove the recorded folders, deepest first, each only if empty; forget them."""
        for folder in reversed(self.paths):
            try:
                folder.rmdir()
            except OSError:
                pass
        self.paths.clear()

    def keep(self) -> None:
        """Forget the recorded folders: the outputs in them were written."""
        self.paths.clear()
