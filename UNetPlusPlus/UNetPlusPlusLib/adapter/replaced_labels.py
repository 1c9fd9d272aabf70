"""The labels an export replaces, kept in ``<folder>/.replaced/`` (docs/SLICER.md).

Policy: every distinct version is kept; the module never deletes a version that exists nowhere
else. Before a case's labels are replaced, ``<case>.seg.nrrd`` is moved to
``.replaced/<case>-<UTC time>.seg.nrrd`` (:func:`keep`). After the new labels are written,
:func:`tidy` removes the backups of that case that are byte-for-byte the same as its current
labels or as a newer backup (going back and forth between two masks kept a copy per export), and
counts what is left, which the export's message says (how many versions, how much space), so the
folder cannot grow unseen. Deleting ``.replaced/`` or files in it by hand loses nothing training
uses: the trainer skips folders whose name starts with '.'.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from ..errors import UNetPlusPlusError

#: The sub-folder of the export folder where replaced labels are kept (hidden: the trainer's
#: case discovery skips folders whose name starts with '.').
REPLACED_FOLDER = ".replaced"
SEG_SUFFIX = ".seg.nrrd"


@dataclass(frozen=True)
class KeptVersions:
    """The earlier labels of a case in ``.replaced/`` after :func:`tidy`: how many files, their
    bytes, and how many identical copies were removed."""

    count: int
    bytes: int
    removed: int = 0


def keep(seg_path: Path) -> Optional[Path]:
    """Move ``seg_path`` (labels about to be replaced) to
    ``<folder>/.replaced/<case>-<UTC time>.seg.nrrd`` (a number added if that exists); returns
    where, or None when there was no such file. Raises UNetPlusPlusError if it cannot be moved."""
    if not seg_path.is_file():
        return None
    folder = seg_path.parent / REPLACED_FOLDER
    case = seg_path.name[: -len(SEG_SUFFIX)]
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    try:
        folder.mkdir(exist_ok=True)
        # numbered after every backup of this second, also one tidy() removed: newest last
        number = 1 + max((n for t, n, _ in _dated(folder.parent, case) if t == stamp), default=0)
        kept = folder / f"{case}-{stamp}{f'-{number}' if number > 1 else ''}{SEG_SUFFIX}"
        while kept.exists():
            number += 1
            kept = folder / f"{case}-{stamp}-{number}{SEG_SUFFIX}"
        seg_path.replace(kept)
    except OSError as error:
        raise UNetPlusPlusError(
            f"Could not keep the labels {seg_path.name} before replacing them ({error}); "
            "nothing was written."
        ) from error
    return kept


def versions(folder: Path, case: str) -> list[Path]:
    """The backups of ``case`` in ``folder/.replaced/``, oldest first."""
    return [path for *_, path in sorted(_dated(folder, case))]


def _dated(folder: Path, case: str) -> list[tuple[str, int, Path]]:
    """(UTC time, number, path) of each backup of ``case`` in ``folder/.replaced/``."""
    pattern = re.compile(rf"{re.escape(case)}-(\d{{8}}T\d{{6}}Z)(?:-(\d+))?{re.escape(SEG_SUFFIX)}")
    found = []
    for path in (Path(folder) / REPLACED_FOLDER).glob(f"*{SEG_SUFFIX}"):
        match = pattern.fullmatch(path.name)
        if match:
            found.append((match.group(1), int(match.group(2) or 1), path))
    return found


def tidy(folder: Path, case: str) -> KeptVersions:
    """Remove the backups of ``case`` that are the same bytes as ``<case>.seg.nrrd`` or as a
    newer backup (nothing is lost); count the rest. A file that cannot be read or removed is
    kept and counted."""
    seen = set()
    try:
        seen.add((Path(folder) / f"{case}{SEG_SUFFIX}").read_bytes())
    except OSError:
        pass
    count = size = removed = 0
    for path in reversed(versions(folder, case)):  # newest first: the newest copy stays
        try:
            data = path.read_bytes()
            if data in seen:
                path.unlink()
                removed += 1
                continue
        except OSError:
            data = b""
        seen.add(data)
        count += 1
        size += len(data)
    return KeptVersions(count, size, removed)


def size_text(size: int) -> str:
    """``size`` bytes for a message: "850 kB", "3.4 MB"."""
    if size >= 10**6:
        return f"{size / 10**6:.1f} MB"
    return f"{max(1, round(size / 10**3))} kB"
