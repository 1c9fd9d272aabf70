"""The panel's "Cases" check: the cases that ``unetpp train`` will use from a folder (no Slicer,
no torch).

The cases are found by the trainer's own discovery, not by rules of the panel's own
(training/dataset_slicer.py: ``describe_slicer_export`` and ``dataset.find_cases``): cases in
sub-folders too (not hidden ones such as ``.replaced/``), ``<case>.seg.nrrd`` or a labelmap
(``<case>-label.nrrd``, NIfTI, ...) beside ``<case>.<ext>`` or ``<case>_<channel>.<ext>``, with
the channels and labels of the model the panel fine-tunes (as its training job passes them:
``--init``, ``--labels``). What the trainer refuses or warns about while finding the cases (a
case without its image or a channel, an image without a label file, a folder without exports)
comes back with the trainer's own message, one line each; so do the label names a case's
header lacks (``training.cases.check_label_names``, the rule of the trainer's case reading).

Only names, NRRD headers and colour tables are read, never voxels, so the check stays cheap
for the Qt main thread on a big folder. The trainer's checks of the voxels (empty labels,
intensities, grids, modality) run when training starts. Training from scratch, the trainer
guesses the modality from the voxels of up to 5 images; it does not change which files a case
uses, so the panel does not guess it.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from ..errors import UNetPlusPlusError

if TYPE_CHECKING:  # the Slicer module imports this file: no engine at file scope (test_ui)
    from ..engine.manifest import ChannelSpec

SEG_SUFFIX = ".seg.nrrd"
#: The modality the panel's check passes from scratch: any fixed one skips the voxel guess.
_NO_GUESS = "MR"
#: At most this many refusals and warnings are shown, one line each.
_SHOWN_LINES = 8


@dataclass
class CaseCheck:
    """A case that training will use: its name (``case001``, ``sub/case001``), image files in
    channel order, label file and segment names (colour-table names for a labelmap)."""

    name: str
    images: list[Path] = field(default_factory=list)
    label: Optional[Path] = None
    segments: list[str] = field(default_factory=list)


@dataclass
class FolderCheck:
    """The cases of a folder as ``unetpp train`` finds them: ``cases`` it will use, ``refused``
    (the trainer's message for each case or folder it refuses) and ``warnings`` (e.g. images
    it skips without a label file)."""

    cases: list[CaseCheck] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def usable(self) -> int:
        return len(self.cases)


#: The last check: (folder, channels, labels) -> (the folder's files, the check).
_KNOWN: dict[tuple, tuple[tuple, FolderCheck]] = {}


def check_cases(
    folder: Path,
    channels: Optional[Sequence[ChannelSpec]] = None,
    labels: Optional[Sequence[str]] = None,
) -> FolderCheck:
    """The cases of ``folder`` that ``unetpp train folder`` uses, sorted by name, found as it
    finds them with ``channels`` (the ``--init`` model's; None: the first case's suffixes) and
    ``labels`` (``--labels``; None: the first case's segments). A missing folder gives an empty
    check. Never raises for the folder's content: the trainer's errors are in ``refused``.
    The panel calls it on every change of its parameters: the last check is returned again
    while no file of the folder has changed (names, sizes and modification times)."""
    folder = Path(folder)
    if not folder.is_dir():
        return FolderCheck()
    key = (str(folder.resolve()), tuple(c.name for c in channels or ()), tuple(labels or ()))
    signature = _signature(folder)
    known = _KNOWN.get(key)
    if known is not None and known[0] == signature:
        return known[1]
    out = _check(folder, channels, labels)
    _KNOWN.clear()  # one folder and model at a time: the panel's
    _KNOWN[key] = (signature, out)
    return out


def _signature(folder: Path) -> tuple:
    """Every file below ``folder`` but hidden ones, with its size and modification time: the
    check is done again when one of them changes, or a file comes or goes (a walk, no reads)."""
    out = []
    for top, folders, files in os.walk(folder, followlinks=True):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        for name in sorted(files):
            try:
                stat = os.stat(os.path.join(top, name))
            except OSError:
                continue
            out.append((top, name, stat.st_size, stat.st_mtime_ns))
    return tuple(out)


def _check(
    folder: Path, channels: Optional[Sequence[ChannelSpec]], labels: Optional[Sequence[str]]
) -> FolderCheck:
    """:func:`check_cases` itself, without its memory."""
    from ..training.cases import check_label_names  # SimpleITK, slicerio: when needed
    from ..training.dataset import find_cases
    from ..training.dataset_slicer import describe_slicer_export

    out = FolderCheck()
    try:
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            dataset = describe_slicer_export(
                folder, labels=list(labels) if labels else None,
                channels=list(channels) if channels else None, modality=_NO_GUESS,
            )  # fmt: skip
            found = find_cases(dataset, out.refused)
    except UNetPlusPlusError as error:
        if any(not p.name.startswith(".") for p in folder.iterdir()):
            out.refused.append(str(error))  # an empty folder: nothing exported yet
        return out
    except OSError as error:  # e.g. a sub-folder that cannot be listed
        out.refused.append(f"Cannot read the cases folder {folder}: {error}.")
        return out
    out.warnings += [str(w.message) for w in said]
    for case in found:
        try:
            segments = check_label_names(case, dataset)
        except UNetPlusPlusError as error:
            out.refused.append(str(error))
            continue
        out.cases.append(CaseCheck(case.case_id, list(case.images), case.label, segments))
    return out


def cases_summary(check: FolderCheck) -> str:
    """The panel's text: ``N case(s) to train on``, then each refusal and warning of the
    trainer on a line of its own."""
    if not check.cases and not check.refused:
        return "No exported case in this folder yet: segment, correct, then 'Add current case'."
    text = f"{check.usable} case(s) to train on"
    if check.refused:
        text += f", {len(check.refused)} refused"
    lines = [*check.refused, *check.warnings]
    if len(lines) > _SHOWN_LINES:  # a big folder: the label stays readable
        more = len(lines) - _SHOWN_LINES + 1
        lines = lines[: _SHOWN_LINES - 1] + [f"... and {more} more (unetpp train lists them all)"]
    return "\n".join([text, *lines])


def next_case_name(folder: Path, prefix: str = "case") -> str:
    """``case001``, ``case002``, ...: the first number after the highest one of any case file
    in ``folder`` (``<case>.seg.nrrd``, but also an image or a labelmap without one, e.g.
    ``case002.nrrd`` with ``case002-label.nrrd``, ``case002_FLAIR.nrrd``: a name taken by
    those made "Add current case" refuse every click, "Case 'case002' already exists")."""
    folder = Path(folder)
    names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
    numbers = [
        int(m.group(1))
        for name in names
        if (m := re.fullmatch(rf"{re.escape(prefix)}(\d+)(?:[._-].*)?", name, re.DOTALL))
    ]
    return f"{prefix}{max(numbers, default=0) + 1:03d}"
