"""The labels (and images) an export replaces, kept in ``<folder>/.replaced/`` (docs/SLICER.md).

Policy: every distinct version is kept; the module never deletes a version that exists nowhere
else. Before a case's labels are replaced, ``<case>.seg.nrrd`` is moved to
``.replaced/<case>-<UTC time>.seg.nrrd`` (:func:`keep_case`); when an overwrite replaces the case's
image too (another image under the same name), its image files go with them, named the same way
(``.replaced/<case>-<UTC time>.nrrd`` or ``..._<channel>.nrrd``: a case of the export's layout
again; before, the old image was deleted). After the new labels are written,
:func:`tidy` removes the backups of that case that are byte-for-byte the same as its current
labels or as a newer backup (going back and forth between two masks kept a copy per export), and
counts what is left, which the export's message says (how many versions, how much space), so the
folder cannot grow unseen. A labelmap of the case beside the ``.seg.nrrd`` the export writes
(``<case>-label.nrrd`` and the other names training reads, with its colour table:
:func:`labelmaps`), left by an older export or saved by hand, goes there too
(``.replaced/<case>-<UTC time>-label.nrrd``): one label file per case, and nothing deleted.
Deleting ``.replaced/`` or files in it by hand loses nothing training
uses: the trainer skips folders whose name starts with '.'.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from ..errors import UNetPlusPlusError

#: The sub-folder of the export folder where replaced labels are kept (hidden: the trainer's
#: case discovery skips folders whose name starts with '.').
REPLACED_FOLDER = ".replaced"
SEG_SUFFIX = ".seg.nrrd"


@dataclass(frozen=True)
class KeptVersions:
    """The earlier labels of a case in ``.replaced/`` after :func:`tidy`: how many files, their
    bytes, how many identical copies were removed, and for each removed one the file with the
    same bytes that stays (the case's ``.seg.nrrd`` or a newer backup): ``same_as``."""

    count: int
    bytes: int
    removed: int = 0
    same_as: dict[Path, Path] = field(default_factory=dict)


def keep_case(
    seg_path: Path, images: Sequence[Path] = (), labels: bool = True
) -> list[tuple[Path, Path]]:
    """Move the files of the case ``<case>.seg.nrrd`` (``seg_path``) about to be replaced:
    ``images`` (``<case>.nrrd`` or ``<case>_<channel>.nrrd``, or its :func:`labelmaps`; those
    that exist), then the labels (unless ``labels`` is false),
    to ``<folder>/.replaced/<case>-<UTC time>[-<n>]<the rest of each name>``, one time and number
    for them all; returns (original, kept) pairs, labels last. Raises UNetPlusPlusError if a file
    cannot be moved (those moved already are put back: nothing changed)."""
    case = seg_path.name[: -len(SEG_SUFFIX)]
    files = [Path(p) for p in images if Path(p).is_file() and Path(p).name.startswith(case)]
    files += [seg_path] if labels and seg_path.is_file() else []
    if not files:
        return []
    folder = seg_path.parent / REPLACED_FOLDER
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    moved: list[tuple[Path, Path]] = []
    try:
        folder.mkdir(exist_ok=True)
        # numbered after every backup of this second, also one tidy() removed: newest last
        number = 1 + max((n for t, n, _ in _dated(folder.parent, case) if t == stamp), default=0)
        while True:
            tail = f"-{number}" if number > 1 else ""
            kept = [folder / f"{case}-{stamp}{tail}{path.name[len(case) :]}" for path in files]
            if not any(path.exists() for path in kept):
                break
            number += 1
        for path, target in zip(files, kept):
            path.replace(target)
            moved.append((path, target))
    except OSError as error:
        put_back(moved)
        raise UNetPlusPlusError(
            f"Could not keep {seg_path.name if not images else 'the case ' + case} before "
            f"replacing it ({error}); nothing was written."
        ) from error
    return moved


def labelmaps(seg_path: Path) -> list[Path]:
    """The labelmaps of the case ``<case>.seg.nrrd`` (``seg_path``) in its folder, as training's
    discovery finds them (``<case>-label``, ``_label`` or ``.label`` with an image suffix, any
    letter case), each followed by its colour table(s) (``<labelmap>.ctbl``, ``.txt``, ``.csv``,
    or ``<labelmap>_ColorTable.*``); [] when there are none. Training reads one label file per
    case and takes the ``.seg.nrrd``, silently: the labelmap is stale once the export writes it."""
    from ..training.dataset_types import COLOR_TABLE_SUFFIXES, IMAGE_SUFFIXES, LABELMAP_MARKERS

    case, folder = seg_path.name[: -len(SEG_SUFFIX)], seg_path.parent
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(p for p in folder.iterdir() if p.name.startswith(case) and p.is_file()):
        lower = path.name.lower()
        suffix = next((s for s in IMAGE_SUFFIXES if lower.endswith(s)), None)
        if suffix is None or lower.endswith(SEG_SUFFIX):
            continue
        base = path.name[: -len(suffix)]
        marker = next((m for m in LABELMAP_MARKERS if base.lower().endswith(m)), None)
        if marker is None or base[: -len(marker)] != case:
            continue
        tables = [
            folder / f"{base}{tail}{s}"
            for tail in ("", "_ColorTable")
            for s in COLOR_TABLE_SUFFIXES
        ]
        found += [path, *(table for table in tables if table.is_file())]
    return found


def put_back(moved: Sequence[tuple[Path, Path]]) -> None:
    """Move kept files back to where :func:`keep_case` took them (``(original, kept)``), and
    remove ``.replaced/`` if that leaves it empty."""
    for original, kept in reversed(moved):
        original.unlink(missing_ok=True)
        kept.replace(original)
    if moved:
        try:
            moved[0][1].parent.rmdir()
        except OSError:
            pass  # other versions are kept there


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
    newer backup (nothing is lost), and ``.replaced/`` if that leaves it empty; count the rest.
    A file that cannot be read or removed is kept and counted."""
    current = Path(folder) / f"{case}{SEG_SUFFIX}"
    seen: dict[bytes, Path] = {}  # bytes -> the file holding them that stays
    try:
        seen[current.read_bytes()] = current
    except OSError:
        pass
    count = size = removed = 0
    same_as: dict[Path, Path] = {}
    for path in reversed(versions(folder, case)):  # newest first: the newest copy stays
        try:
            data = path.read_bytes()
            if data in seen and not _has_image(path):  # with its image: a case, kept whole
                path.unlink()
                same_as[path] = seen[data]
                removed += 1
                continue
        except OSError:
            data = b""
        seen.setdefault(data, path)
        count += 1
        size += len(data)
    if removed:
        try:
            (Path(folder) / REPLACED_FOLDER).rmdir()
        except OSError:
            pass  # other files are kept there
    return KeptVersions(count, size, removed, same_as)


def _has_image(seg_backup: Path) -> bool:
    """Whether an image backup (:func:`keep_case`) lies beside the labels backup ``seg_backup``:
    ``<stem>.<image suffix>`` or ``<stem>_<channel>.<image suffix>``, any of the suffixes
    training reads (a case added by hand may hold a ``.nii.gz``); not a labelmap's backup."""
    from ..training.dataset_types import IMAGE_SUFFIXES, LABELMAP_MARKERS

    stem = seg_backup.name[: -len(SEG_SUFFIX)]
    for path in seg_backup.parent.glob(f"{glob.escape(stem)}*"):
        lower, name = path.name.lower(), path.name
        suffix = next((s for s in IMAGE_SUFFIXES if lower.endswith(s)), None)
        if suffix is None or lower.endswith(SEG_SUFFIX):
            continue
        rest = name[len(stem) : -len(suffix)]
        if rest == "" or (rest.startswith("_") and rest.lower() not in LABELMAP_MARKERS):
            return True
    return False


def size_text(size: int) -> str:
    """``size`` bytes for a message: "850 kB", "3.4 MB"."""
    if size >= 10**6:
        return f"{size / 10**6:.1f} MB"
    return f"{max(1, round(size / 10**3))} kB"
