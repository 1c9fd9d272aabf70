"""The names of an exported training case and its channels, checked before anything is
written (adapter/training_export.py): a file name training reads back as that case's image, and
one image per channel."""

from __future__ import annotations

from typing import Optional, Sequence

from ..errors import UNetPlusPlusError
from .panel import labelmap_input_problem

#: What a case or channel name may hold, as the refusal says it (:func:`is_file_name`): spaces
#: and accented letters are accepted ("lé foie 1" is written and read back by training).
NAME_RULE = 'leave out / \\ : * ? " < > |, tabs and line breaks, and do not leave it blank.'


def is_file_name(name: str) -> bool:
    """Whether ``name`` can be part of a file name in the export folder (no folder, no
    character Windows refuses, no control character such as a tab or a line break, not
    empty)."""
    return (
        bool(name.strip())
        and not any(c in name for c in '/\\:*?"<>|')
        and not any(ord(c) < 32 or ord(c) == 127 for c in name)
    )


#: The longest case name, in UTF-8 bytes: its files' endings ("_<channel>.nrrd",
#: ".export.json", "-<UTC time>.seg.nrrd" in .replaced/) must fit in a 255-byte file name.
MAX_CASE_NAME_BYTES = 200


def unread_name(name: str, what: str) -> Optional[str]:
    """Why training would not read a file named after ``name`` (a case or a channel name) as
    that case's image, or None: a name beginning with '.' is a hidden file training skips; one
    ending in a labelmap marker (``-label``, ``_label``, ``.label``) or in ``.seg`` makes
    ``<name>.nrrd`` a label file of another case (training then finds case 'x' without its
    image, and refuses the folder); a name too long for the file system. ``what``: how the
    message names it ("Case name", "Channel name")."""
    from ..training.dataset_types import LABELMAP_MARKERS

    if name.startswith(".") and what == "Case name":  # "<case>_.x.nrrd" is not hidden
        return (
            f"{what} {name!r} begins with '.': training skips hidden files, so it would never "
            "read this case; choose a name that begins with a letter or a digit."
        )
    stem = name if what == "Case name" else f"_{name}"  # <case>.nrrd, <case>_<channel>.nrrd
    ending = next((m for m in (*LABELMAP_MARKERS, ".seg") if stem.lower().endswith(m)), None)
    if ending:
        return (
            f"{what} {name!r} gives an image file whose name ends in '{ending}.nrrd', which "
            "training takes for labels, not for an image; choose another name."
        )
    size = len(name.encode("utf-8"))
    if size > MAX_CASE_NAME_BYTES:
        return (
            f"{what} is too long for a file name ({size} bytes in UTF-8; at most "
            f"{MAX_CASE_NAME_BYTES}, to leave room for the files' endings)."
        )
    return None


def refuse_labelmap_images(nodes: Sequence, channel_names: Sequence[str]) -> None:
    """Refuse a labelmap volume node given as a channel's image, naming it and its channel
    (``channel_names``, else "channel <n>"), as segmentation runs do (panel.py
    ``labelmap_input_problem``): its label values were written as the case's image, and
    trained on as if they were one. Raises :class:`UNetPlusPlusError`."""
    names = list(channel_names)
    if len(names) != len(nodes):
        names = [f"channel {i + 1}" for i in range(len(nodes))]
    problem = labelmap_input_problem(names, nodes)
    if problem:
        raise UNetPlusPlusError(problem)


def check_channel_names(names: Sequence[str], volumes: int) -> None:
    """Refuse channel names that would not give one file per volume, ``<case>_<name>.nrrd``:
    another count than the volumes, a name twice (the later volume replaced the earlier in one
    file; tester 13) or a name that is no file name. Raises :class:`UNetPlusPlusError`."""
    if volumes > 1 and len(names) != volumes:
        raise UNetPlusPlusError(f"{len(names)} channel names for {volumes} volumes; give one each.")
    if volumes == 1:
        return  # one volume is written as <case>.nrrd: its name is not used
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UNetPlusPlusError(
            f"Channel name {twice[0]!r} is given twice (the volumes' names are used when no "
            "channel names are given); each channel needs its own name and file."
        )
    bad = [n for n in names if not is_file_name(n)]
    if bad:
        raise UNetPlusPlusError(f"Channel name {bad[0]!r} is not a valid file name: {NAME_RULE}")
    unread = next(filter(None, (unread_name(n, "Channel name") for n in names)), None)
    if unread:
        raise UNetPlusPlusError(unread)
