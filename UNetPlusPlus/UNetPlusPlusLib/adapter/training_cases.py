"""The panel's "Cases" check: which exported cases a fine-tune can use (no Slicer, no torch).

The folder has the layout "Export training case" writes (``<case>.seg.nrrd`` beside
``<case>.nrrd``, or ``<case>_<channel>.nrrd`` per channel; docs/TRAINING_DATASETS.md). Each case is
checked against the model it will fine-tune: as many image files as the model has channels, and
a segment for every label of the model (by name, case-insensitive). Only the NRRD headers are
read, so the check is instant on any folder size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

SEG_SUFFIX = ".seg.nrrd"
_HEADER_LIMIT = 1 << 20  # a .seg.nrrd header is a few kB; the data follows a blank line


@dataclass
class CaseCheck:
    """One case: its name, image files, segment names, and what is wrong (empty: usable)."""

    name: str
    images: list[Path] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return not self.problems


def segment_names(path: Path) -> list[str]:
    """Segment names from a ``.seg.nrrd`` header (``SegmentN_Name`` fields), in order."""
    with open(path, "rb") as handle:
        header = handle.read(_HEADER_LIMIT).split(b"\n\n", 1)[0].decode("latin-1")
    found = {}
    for line in header.splitlines():
        match = re.match(r"Segment(\d+)_Name:=(.*)$", line.strip())
        if match:
            found[int(match.group(1))] = match.group(2).strip()
    return [found[k] for k in sorted(found)]


def check_cases(
    folder: Path, channels: Optional[int] = None, labels: Sequence[str] = ()
) -> list[CaseCheck]:
    """Every case in ``folder``, sorted by name, each with its problems for a model taking
    ``channels`` images and ``labels`` (names). A missing folder gives an empty list."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    cases = []
    for seg in sorted(folder.glob(f"*{SEG_SUFFIX}")):
        name = seg.name[: -len(SEG_SUFFIX)]
        single = folder / f"{name}.nrrd"
        images = [single] if single.is_file() else sorted(folder.glob(f"{name}_*.nrrd"))
        images = [p for p in images if not p.name.endswith(SEG_SUFFIX)]
        case = CaseCheck(name, images)
        try:
            case.segments = segment_names(seg)
        except OSError as error:
            case.problems.append(f"cannot read {seg.name}: {error}")
        if not images:
            case.problems.append("no image file (<case>.nrrd or <case>_<channel>.nrrd)")
        elif channels is not None and len(images) != channels:
            case.problems.append(f"{len(images)} image(s), the model takes {channels}")
        have = {s.lower() for s in case.segments}
        missing = [label for label in labels if label.lower() not in have]
        if missing and not case.problems:
            case.problems.append("no segment named " + ", ".join(repr(m) for m in missing))
        cases.append(case)
    return cases


def cases_summary(cases: Sequence[CaseCheck]) -> str:
    """One line for the panel: the count, and each unusable case with its first problem."""
    if not cases:
        return "No exported case in this folder yet: segment, correct, then 'Add current case'."
    usable = sum(c.usable for c in cases)
    text = f"{len(cases)} case(s), {usable} usable"
    bad = [f"{c.name}: {c.problems[0]}" for c in cases if not c.usable]
    return text + ("; " + "; ".join(bad) if bad else "")


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
