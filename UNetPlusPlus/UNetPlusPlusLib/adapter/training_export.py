"""Export one training case from MRML nodes in the layout ``unetpp train`` reads.

:func:`export_training_case` writes the volume(s) and the segmentation (``<case>.nrrd`` or
``<case>_<channel>.nrrd``, ``<case>.seg.nrrd``; docs/TRAINING_DATASETS.md) with Slicer's own
storage nodes, after refusing, before any file is written, what would give a case the trainer
misreads: a labelmap volume node as an image, no segmentation, an empty or non-labelmap one,
one made for another volume on another grid (another patient), nodes under different
transforms, a case or channel name that is no file name or that training would read otherwise
(``case-label``, ``.x``: :func:`_unread_name`), a channel name twice, or a case that exists
already.
A case already in the folder is not written twice (case_identity.py, case_records.py): the
same image and labels are refused (:class:`DuplicateCaseError`), the same image with other
labels (the mask corrected since) replaces that case's labels, the old ones kept in
``.replaced/`` (replaced_labels.py), as is the old image an overwrite with another image
replaces. :meth:`.logic.SegmentationLogic.export_training_case` (the panel's "Export training
case" and "Add current case") calls it; ``training_cases.py`` checks the exported folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import slicer

from ..errors import DuplicateCaseError, UNetPlusPlusError
from ..write_failures import plain_reason
from . import replaced_labels
from .case_files import CaseFiles
from .case_identity import case_identity, write_record
from .case_records import SameImage, find_same_image, folder_cases
from .geometry import array_from_volume_node
from .panel import labelmap_input_problem
from .replaced_labels import KeptVersions
from .segmentation_binding import reference_volume, same_grid, volume_grid
from .segmentation_writer import binary_labelmap_name
from .written_case import WrittenCase

__all__ = ["WrittenCase", "export_training_case"]


def export_training_case(
    volume_nodes: Sequence,
    segmentation_node,
    out_dir: Union[str, os.PathLike],
    case_name: str,
    channel_names: Sequence[str] = (),
    overwrite: bool = False,
) -> WrittenCase:
    """Write one case in the layout ``unetpp train`` reads; returns the files written.

    Raises ``UNetPlusPlusError`` before writing anything if a file of the case exists
    already (an earlier export, perhaps corrected by hand) and ``overwrite`` is false, and
    :class:`DuplicateCaseError` if another case of the folder holds the same image and labels
    (a case without a record, exported before records existed, is read back once:
    case_records.py). If a case holds the same image with other labels (``case_name`` itself
    with ``overwrite``, else the first by name), its labels are replaced instead
    (``WrittenCase.replaced``, ``WrittenCase.case``; nothing is written as ``case_name``: a
    same-image pair would train on both masks and could be split between training and
    validation). Labels replaced, by a correction or by ``overwrite`` with another image, are
    moved to ``<out_dir>/.replaced/<case>-<UTC time>.seg.nrrd`` first (``WrittenCase.kept``),
    a folder the trainer does not read (policy: replaced_labels.py), and so are the image files
    that ``overwrite`` with another image replaces (``WrittenCase.images``). Cases in
    sub-folders count as training finds them (``sub/case``). Other cases with the
    same image are named (``WrittenCase.also``, :attr:`WrittenCase.message`).

    One volume: ``<case>.nrrd``; several: ``<case>_<channel>.nrrd`` (``channel_names``,
    default the node names). The segmentation goes to ``<case>.seg.nrrd`` with its segment
    names, colours and terminology. Files are written with Slicer's own storage nodes, which
    are not added to the scene.
    """
    nodes = list(volume_nodes)
    if not nodes or any(node is None for node in nodes):
        raise UNetPlusPlusError("Select the input volume(s) to export.")
    _refuse_labelmap_images(nodes, channel_names)
    if segmentation_node is None:
        raise UNetPlusPlusError("Select the segmentation to export.")
    segmentation = segmentation_node.GetSegmentation()
    if segmentation.GetNumberOfSegments() == 0:
        raise UNetPlusPlusError(f"Segmentation '{segmentation_node.GetName()}' is empty.")
    if hasattr(segmentation, "GetSourceRepresentationName"):
        source = segmentation.GetSourceRepresentationName()
    else:  # Slicer before 5.4
        source = segmentation.GetMasterRepresentationName()
    if source != binary_labelmap_name():
        raise UNetPlusPlusError(
            f"Segmentation '{segmentation_node.GetName()}' is stored as {source}; convert "
            "it to a binary labelmap (Segmentations module) before exporting."
        )
    if not _is_file_name(case_name):
        raise UNetPlusPlusError(f"Case name {case_name!r} is not a valid file name: {_NAME_RULE}")
    unread = _unread_name(case_name, "Case name")
    if unread:
        raise UNetPlusPlusError(unread)
    transforms = {id(n.GetParentTransformNode()) for n in [*nodes, segmentation_node]}
    if len(transforms) > 1:
        raise UNetPlusPlusError(
            "The volumes and the segmentation are under different transforms; harden the "
            "transforms before exporting."
        )
    other = _other_patient(segmentation_node, nodes[0])
    if other is not None:
        raise UNetPlusPlusError(
            f"Segmentation '{segmentation_node.GetName()}' was made for volume "
            f"'{other.GetName()}', on another grid than volume '{nodes[0].GetName()}' (another "
            "patient, or another scan): its labels are not this image's. Export each volume "
            "with its own segmentation."
        )
    names = list(channel_names) or [node.GetName() for node in nodes]
    _check_channel_names(names, len(nodes))
    out = Path(out_dir)
    try:
        with CaseFiles(out) as files:  # all or nothing (case_files.py)
            files.make_folder()
            return _export(nodes, segmentation_node, out, case_name, names, overwrite, files)
    except OSError as error:  # e.g. a path too long for the system, found while looking
        raise UNetPlusPlusError(
            f"Could not export case {case_name!r} to {out}: the system reports: "
            f"{plain_reason(error)}; nothing was written."
        ) from error


def _export(
    nodes: list,
    segmentation_node,
    out: Path,
    case_name: str,
    names: list[str],
    overwrite: bool,
    files: CaseFiles,
) -> WrittenCase:
    """The checks that read the folder, then the writes of :func:`export_training_case`,
    staged in ``files``."""
    if len(nodes) == 1:
        targets = [out / f"{case_name}.nrrd"]
    else:
        targets = [out / f"{case_name}_{name}.nrrd" for name in names]
    seg_path = out / f"{case_name}.seg.nrrd"
    existing = [p.name for p in [*targets, seg_path] if p.exists() or p.is_symlink()]
    if existing and not overwrite:
        raise UNetPlusPlusError(
            f"Case '{case_name}' already exists in {out} ({', '.join(existing)}); choose "
            "another case name, or pass overwrite=True to replace it."
        )
    identity = case_identity(nodes, segmentation_node, names)
    images = {
        ("" if len(nodes) == 1 else name): np.ascontiguousarray(
            array_from_volume_node(node, copy=False)
        )
        for name, node in zip(names, nodes)
    }
    found = find_same_image(out, identity, images)
    same = _chosen(found, case_name)
    also = [other.case for other in found if other is not same]
    if same is not None and same.same_labels and same.case != case_name:
        raise DuplicateCaseError(same.case, out, also)
    if same is not None and not same.same_labels:  # its mask corrected since: a new version
        return _replace_labels(segmentation_node, out, same, identity, also, case_name, files)
    # a new case, the case itself again (overwrite: the same files), or another image over it
    for node, target in zip(nodes, targets):
        files.write(target, lambda path, node=node: _write_volume(node, path))
    files.write(seg_path, lambda path: _write_segmentation(segmentation_node, path))
    appeared = [p.name for p in [*targets, seg_path] if p.exists() or p.is_symlink()]
    if appeared and not overwrite:  # another export (another Slicer) took the name meanwhile
        raise UNetPlusPlusError(
            f"Case '{case_name}' was written to {out} by another export while this one ran "
            f"({', '.join(appeared)}); it is left as it is and nothing was written. Export "
            "again under another case name (Add current case picks the next number)."
        )
    moved = []
    stale = replaced_labels.labelmaps(seg_path)  # one label file per case: the .seg.nrrd
    if overwrite and same is None:  # another image over the case: keep all of the old one
        moved = replaced_labels.keep_case(seg_path, _old_images(out, case_name, targets) + stale)
    elif stale:
        moved = replaced_labels.keep_case(seg_path, stale, labels=False)
    _commit(files, moved)
    written = [*targets, seg_path]
    _record(out, case_name, identity, written)
    kept = dict(moved).get(seg_path)
    versions = replaced_labels.tidy(out, case_name) if kept is not None else None
    kept, identical = _still_kept(kept, versions, seg_path)
    images = [backup for original, backup in moved if original not in (seg_path, *stale)]
    labelmaps = [(original, backup) for original, backup in moved if original in stale]
    return WrittenCase(
        written, case_name, kept=kept, versions=versions, also=also, images=images,
        labelmaps=labelmaps, identical=identical,
    )  # fmt: skip


def _old_images(out: Path, case_name: str, targets: Sequence[Path]) -> list[Path]:
    """The image files of the case ``case_name`` in ``out`` that an overwrite replaces or would
    leave beside the new ones (a one-volume case over channels, or the reverse): the case's
    images as training finds them, and the files the export writes over."""
    old = [case.images.values() for case in folder_cases(out) if case.name == case_name]
    found = [*(old[0] if old else ()), *(t for t in targets if t.is_file())]
    return list(dict.fromkeys(found))


def _chosen(found: Sequence[SameImage], case_name: str) -> Optional[SameImage]:
    """The case an export of ``case_name`` concerns among ``found`` (cases with its image):
    ``case_name`` itself (an overwrite), else one with the same labels, else the first."""
    ranked = sorted(found, key=lambda same: (same.case != case_name, not same.same_labels))
    return ranked[0] if ranked else None


def _replace_labels(
    segmentation_node,
    out: Path,
    same: SameImage,
    identity,
    also,
    requested: str,
    files: CaseFiles,
) -> WrittenCase:
    """Write ``segmentation_node`` as the labels of ``same.case`` (the same image), its old
    labels moved to ``.replaced/`` once the new ones are written whole, and put back if they
    cannot be renamed into place."""
    seg_path = out / f"{same.case}.seg.nrrd"  # same.case may be in a sub-folder: sub/case
    files.write(seg_path, lambda path: _write_segmentation(segmentation_node, path))
    stale = replaced_labels.labelmaps(seg_path)  # a labelmap case: it becomes a .seg.nrrd one
    moved = replaced_labels.keep_case(seg_path, stale)  # never lose the user's earlier labels
    _commit(files, moved)
    kept = dict(moved).get(seg_path)
    _record(out, same.case, identity, [seg_path if p in stale else p for p in same.files])
    versions = replaced_labels.tidy(seg_path.parent, Path(same.case).name)
    kept, identical = _still_kept(kept, versions, seg_path)
    labelmaps = [(original, backup) for original, backup in moved if original in stale]
    return WrittenCase(
        [seg_path], same.case, True, kept, versions, also=also, requested=requested,
        labelmaps=labelmaps, identical=identical,
    )  # fmt: skip


def _still_kept(
    kept: Optional[Path], versions: Optional[KeptVersions], seg_path: Path
) -> tuple[Optional[Path], bool]:
    """Where the replaced labels are after :func:`.replaced_labels.tidy`, and whether they
    were the labels written, byte for byte: ``kept`` itself; or, when tidy removed it as a
    copy, the newer backup with its bytes (None, True: the labels written, ``seg_path``)."""
    if kept is None or kept.exists() or versions is None:
        return kept, False
    other = versions.same_as.get(kept)
    if other is None or other == seg_path or not other.exists():
        return None, True
    return other, False


def _record(out: Path, case: str, identity, files: Sequence[Path]) -> None:
    """Write the record of ``case``; without it (a folder that takes files but not this one)
    the case is read back at the next export instead."""
    try:
        write_record(out, case, identity, files)
    except OSError:
        pass


def _commit(files: CaseFiles, moved: Sequence[tuple[Path, Path]]) -> None:
    """Rename the staged files into place; if that fails, the files ``moved`` to ``.replaced/``
    (``(original, kept)`` pairs) go back: nothing changed."""
    try:
        files.commit()
    except BaseException:
        replaced_labels.put_back(moved)
        raise


def _write_volume(volume_node, path: Path) -> bool:
    """Write ``volume_node`` to ``path`` (compressed NRRD); whether Slicer's writer succeeded."""
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    storage.SetUseCompression(True)
    return bool(storage.WriteData(volume_node))


def _write_segmentation(segmentation_node, seg_path: Path) -> bool:
    """Write ``segmentation_node`` to ``seg_path`` (a .seg.nrrd, not cropped); whether Slicer's
    writer succeeded (it can report success for a truncated file: case_files.py checks)."""
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(seg_path))
    storage.SetUseCompression(True)
    storage.SetCropToMinimumExtent(False)
    return bool(storage.WriteData(segmentation_node))


def _other_patient(segmentation_node, volume_node):
    """The volume node ``segmentation_node`` was made for (its reference volume) when that is
    another node on another world grid than ``volume_node``, else None. A filtered copy on the
    same grid is not another image's; the volume itself cropped, resampled or moved since is
    left to training, which aligns labels on the same voxel lattice and refuses other grids."""
    bound = reference_volume(segmentation_node)
    if bound is None or bound.GetID() == volume_node.GetID():
        return None
    if bound.GetImageData() is None or volume_node.GetImageData() is None:
        return None  # the exported volume's own error comes later; no grid to compare
    try:
        return None if same_grid(volume_grid(bound), volume_grid(volume_node)) else bound
    except UNetPlusPlusError:  # under a non-linear transform: no world grid to compare
        return None


#: What a case or channel name may hold, as the refusal says it (:func:`_is_file_name`): spaces
#: and accented letters are accepted ("lé foie 1" is written and read back by training).
_NAME_RULE = 'leave out / \\ : * ? " < > |, tabs and line breaks, and do not leave it blank.'


def _is_file_name(name: str) -> bool:
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


def _unread_name(name: str, what: str) -> Optional[str]:
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


def _refuse_labelmap_images(nodes: Sequence, channel_names: Sequence[str]) -> None:
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


def _check_channel_names(names: Sequence[str], volumes: int) -> None:
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
    bad = [n for n in names if not _is_file_name(n)]
    if bad:
        raise UNetPlusPlusError(f"Channel name {bad[0]!r} is not a valid file name: {_NAME_RULE}")
    unread = next(filter(None, (_unread_name(n, "Channel name") for n in names)), None)
    if unread:
        raise UNetPlusPlusError(unread)
