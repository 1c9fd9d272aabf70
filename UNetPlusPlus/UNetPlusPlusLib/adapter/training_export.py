"""Export one training case from MRML nodes in the layout ``unetpp train`` reads.

:func:`export_training_case` writes the volume(s) and the segmentation (``<case>.nrrd`` or
``<case>_<channel>.nrrd``, ``<case>.seg.nrrd``; docs/TRAINING_DATASETS.md) with Slicer's own
storage nodes, after refusing, before any file is written, what would give a case the trainer
misreads: no segmentation, an empty or non-labelmap one, nodes under different transforms, a
case or channel name that is no file name, a channel name twice, or a case that exists already.
A case already in the folder under another name is not written twice (case_identity.py): the
same image and labels are refused (:class:`DuplicateCaseError`), the same image with other
labels (the mask corrected since) replaces that case's labels, the old ones kept in
``.replaced/``. :meth:`.logic.SegmentationLogic.
export_training_case` (the panel's "Export training case" and "Add current case") calls it;
``training_cases.py`` checks the exported folder.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional, Sequence, Union

import slicer

from ..errors import DuplicateCaseError, UNetPlusPlusError
from .case_identity import case_identity, find_same_image, write_record
from .segmentation_writer import binary_labelmap_name

#: The sub-folder of the export folder where replaced labels are kept (hidden: the trainer's
#: case discovery skips folders whose name starts with '.').
REPLACED_FOLDER = ".replaced"


class WrittenCase(list):
    """The files written (a list of Paths), with ``case``: the case they belong to,
    ``replaced``: True when they replaced the labels of ``case``, an earlier export of the same
    image (then only ``<case>.seg.nrrd`` was written), and ``kept``: where the labels they
    replaced were moved (``<folder>/.replaced/<case>-<UTC time>.seg.nrrd``), or None."""

    def __init__(
        self,
        files: Sequence[Path],
        case: str,
        replaced: bool = False,
        kept: Optional[Path] = None,
    ) -> None:
        super().__init__(files)
        self.case = case
        self.replaced = replaced
        self.kept = kept


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
    :class:`DuplicateCaseError` if another case of the folder was exported from the same image
    and labels. If one was exported from the same image with other labels, its labels are
    replaced instead (``WrittenCase.replaced``; a same-image pair would train on both masks
    and could be split between training and validation); the labels replaced are moved to
    ``<out_dir>/.replaced/<case>-<UTC time>.seg.nrrd`` first (``WrittenCase.kept``), a folder
    the trainer does not read.

    One volume: ``<case>.nrrd``; several: ``<case>_<channel>.nrrd`` (``channel_names``,
    default the node names). The segmentation goes to ``<case>.seg.nrrd`` with its segment
    names, colours and terminology. Files are written with Slicer's own storage nodes, which
    are not added to the scene.
    """
    nodes = list(volume_nodes)
    if not nodes or any(node is None for node in nodes):
        raise UNetPlusPlusError("Select the input volume(s) to export.")
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
        raise UNetPlusPlusError(
            f"Case name {case_name!r} is not a valid file name; use letters, digits, - or _."
        )
    transforms = {id(n.GetParentTransformNode()) for n in [*nodes, segmentation_node]}
    if len(transforms) > 1:
        raise UNetPlusPlusError(
            "The volumes and the segmentation are under different transforms; harden the "
            "transforms before exporting."
        )
    names = list(channel_names) or [node.GetName() for node in nodes]
    _check_channel_names(names, len(nodes))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
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
    same = find_same_image(out, identity, skip=case_name)
    if same is not None and same.same_labels:
        raise DuplicateCaseError(same.case, out)
    if same is not None:  # the same image, its mask corrected since: a new version of it
        seg_path = out / f"{same.case}.seg.nrrd"
        kept = _keep_replaced(seg_path)  # never lose the user's earlier labels
        try:
            _write_segmentation(segmentation_node, seg_path)
        except BaseException:
            if kept is not None:  # put the old labels back: nothing changed
                seg_path.unlink(missing_ok=True)
                kept.replace(seg_path)
            raise
        record = json.loads(same.record.read_text(encoding="utf-8"))
        files = [out / name for name in record["files"]]
        write_record(out, same.case, identity, files)
        return WrittenCase([seg_path], same.case, replaced=True, kept=kept)
    written = []
    for node, target in zip(nodes, targets):
        storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
        storage.SetFileName(str(target))
        storage.SetUseCompression(True)
        if not storage.WriteData(node):
            raise UNetPlusPlusError(f"Could not write {target}; check the folder is writable.")
        written.append(target)
    _write_segmentation(segmentation_node, seg_path)
    written.append(seg_path)
    write_record(out, case_name, identity, written)
    return WrittenCase(written, case_name)


def _keep_replaced(seg_path: Path) -> Optional[Path]:
    """Move ``seg_path`` (labels about to be replaced) to
    ``<folder>/.replaced/<case>-<UTC time>.seg.nrrd`` (a number added if that exists); returns
    where, or None when there was no such file. Raises UNetPlusPlusError if it cannot be moved."""
    if not seg_path.is_file():
        return None
    folder = seg_path.parent / REPLACED_FOLDER
    case = seg_path.name[: -len(".seg.nrrd")]
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    try:
        folder.mkdir(exist_ok=True)
        kept = folder / f"{case}-{stamp}.seg.nrrd"
        number = 1
        while kept.exists():
            number += 1
            kept = folder / f"{case}-{stamp}-{number}.seg.nrrd"
        seg_path.replace(kept)
    except OSError as error:
        raise UNetPlusPlusError(
            f"Could not keep the labels {seg_path.name} before replacing them ({error}); "
            "nothing was written."
        ) from error
    return kept


def _write_segmentation(segmentation_node, seg_path: Path) -> None:
    """Write ``segmentation_node`` to ``seg_path`` (a .seg.nrrd, not cropped)."""
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(seg_path))
    storage.SetUseCompression(True)
    storage.SetCropToMinimumExtent(False)
    if not storage.WriteData(segmentation_node):
        raise UNetPlusPlusError(f"Could not write {seg_path}; check the folder is writable.")


def _is_file_name(name: str) -> bool:
    """Whether ``name`` can be part of a file name in the export folder (no folder, no
    character Windows refuses, not empty)."""
    return bool(name.strip()) and not any(c in name for c in '/\\:*?"<>|')


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
        raise UNetPlusPlusError(
            f"Channel name {bad[0]!r} is not a valid file name; use letters, digits, - or _."
        )
