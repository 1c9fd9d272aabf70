"""Export one training case from MRML nodes in the layout ``unetpp train`` reads.

:func:`export_training_case` writes the volume(s) and the segmentation (``<case>.nrrd`` or
``<case>_<channel>.nrrd``, ``<case>.seg.nrrd``; docs/TRAINING_DATASETS.md), the images with
SimpleITK from a copy of their voxels (volume_file.py: in a thread with
:func:`start_training_export`, so that Slicer does not freeze), the segmentation with Slicer's
own storage node, after refusing, before any file is written, what would give a case the trainer
misreads: a labelmap volume node as an image, no segmentation, an empty or non-labelmap one,
one made for another volume on another grid (another patient), nodes under different
transforms, a case or channel name that is no file name or that training would read otherwise
(``case-label``, ``.x``: :func:`unread_name`), a channel name twice, or a case that exists
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
from typing import Callable, Optional, Sequence, Union

import numpy as np
import slicer

from ..errors import DuplicateCaseError, UNetPlusPlusError
from ..write_failures import plain_reason
from . import replaced_labels
from .case_files import CaseFiles
from .case_identity import case_identity, write_record
from .case_names import (
    NAME_RULE,
    check_channel_names,
    is_file_name,
    refuse_labelmap_images,
    unread_name,
)
from .case_records import SameImage, find_same_image, folder_cases
from .export_job import ExportJob
from .geometry import array_from_volume_node
from .replaced_labels import KeptVersions
from .segmentation_binding import reference_volume, same_grid, volume_grid
from .segmentation_writer import binary_labelmap_name
from .volume_file import VolumeSnapshot, snapshot_volume, write_volume_file
from .written_case import WrittenCase

__all__ = ["WrittenCase", "export_training_case", "start_training_export"]


def export_training_case(
    volume_nodes: Sequence,
    segmentation_node,
    out_dir: Union[str, os.PathLike],
    case_name: str,
    channel_names: Sequence[str] = (),
    overwrite: bool = False,
) -> WrittenCase:
    """Write one case in the layout ``unetpp train`` reads, in this thread; returns the files
    written. :func:`start_training_export` (the panel's) does the same, its writes in a thread."""
    job = _start(volume_nodes, segmentation_node, out_dir, case_name, channel_names, overwrite)
    job.run()
    return job.result()


def start_training_export(
    volume_nodes: Sequence,
    segmentation_node,
    out_dir: Union[str, os.PathLike],
    case_name: str,
    channel_names: Sequence[str] = (),
    overwrite: bool = False,
) -> ExportJob[WrittenCase]:
    """Export one case as :func:`export_training_case` does, its files written in a thread:
    returns the running :class:`.export_job.ExportJob` (its ``result()``: the
    :class:`WrittenCase`, or the error, each as :func:`export_training_case` would give).

    Here, on the calling thread (Slicer's main thread: MRML is not thread-safe), every check
    and all that is read from MRML: the voxels copied with their geometry
    (:mod:`.volume_file`), the case's identity, the folder's cases, and the segmentation,
    written by Slicer's own writer into the hidden staging folder. The thread compresses and
    writes the images (:func:`.volume_file.write_volume_file`: SimpleITK, which releases the
    GIL; the bulk of an export's time), renames the files into place and records the case;
    it touches no MRML, so the nodes may be edited, deleted or the scene closed
    meanwhile. A refusal (``UNetPlusPlusError``, :class:`DuplicateCaseError`) is raised here,
    before the thread starts."""
    job = _start(volume_nodes, segmentation_node, out_dir, case_name, channel_names, overwrite)
    return ExportJob(job.run_work, start=True)


def _start(
    volume_nodes: Sequence,
    segmentation_node,
    out_dir: Union[str, os.PathLike],
    case_name: str,
    channel_names: Sequence[str],
    overwrite: bool,
) -> _Prepared:
    """The checks and the MRML reads of an export (this thread), and its writes prepared.

    Details of :func:`export_training_case`:

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
    names, colours and terminology, by Slicer's own storage node (not added to the scene);
    the images by SimpleITK's NRRD writer (ITK's, as Slicer's volume storage node uses).
    """
    nodes = list(volume_nodes)
    if not nodes or any(node is None for node in nodes):
        raise UNetPlusPlusError("Select the input volume(s) to export.")
    refuse_labelmap_images(nodes, channel_names)
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
    if not is_file_name(case_name):
        raise UNetPlusPlusError(f"Case name {case_name!r} is not a valid file name: {NAME_RULE}")
    unread = unread_name(case_name, "Case name")
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
    check_channel_names(names, len(nodes))
    out = Path(out_dir)
    files = CaseFiles(out)  # all or nothing (case_files.py): aborted on any failure
    try:
        files.make_folder()
        finish = _export(nodes, segmentation_node, out, case_name, names, overwrite, files)
    except BaseException as error:
        files.abort()
        if isinstance(error, OSError):
            raise _system_error(case_name, out, error) from error
        raise
    return _Prepared(files, finish, case_name, out)


class _Prepared:
    """An export whose MRML part is done: :meth:`run_work` does the rest (no MRML)."""

    def __init__(
        self,
        files: CaseFiles,
        finish: Callable[[ExportJob], WrittenCase],
        case_name: str,
        out: Path,
    ) -> None:
        self._files, self._finish, self._case, self._out = files, finish, case_name, out
        self._job: Optional[ExportJob] = None

    def run_work(self, job: ExportJob) -> WrittenCase:
        """Write, commit and record the case, reporting to ``job``; on any failure, or
        cancelled before the commit, everything written is removed."""
        try:
            with self._files:  # leaving it without a commit removes the staged files
                return self._finish(job)
        except OSError as error:  # e.g. a path too long for the system, found while looking
            raise _system_error(self._case, self._out, error) from error

    def run(self) -> None:
        """Do the work in this thread (:func:`export_training_case`)."""
        self._job = ExportJob(self.run_work, start=False)
        self._job.run()

    def result(self) -> WrittenCase:
        return self._job.result()


def _system_error(case_name: str, out: Path, error: OSError) -> UNetPlusPlusError:
    return UNetPlusPlusError(
        f"Could not export case {case_name!r} to {out}: the system reports: "
        f"{plain_reason(error)}; nothing was written."
    )


def _export(
    nodes: list,
    segmentation_node,
    out: Path,
    case_name: str,
    names: list[str],
    overwrite: bool,
    files: CaseFiles,
) -> Callable[[ExportJob], WrittenCase]:
    """The checks that read the folder and the MRML reads of :func:`export_training_case`;
    returns the rest, its writes staged in ``files``, to run in any thread (no MRML)."""
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
    del images  # views of the nodes' voxels: the snapshots below are copies
    snapshots = [snapshot_volume(node) for node in nodes]
    files.write(seg_path, lambda path: _write_segmentation(segmentation_node, path))
    return lambda job: _write_case(
        job, snapshots, targets, seg_path, out, case_name, identity, also, same, overwrite,
        files,
    )  # fmt: skip


def _write_case(
    job: ExportJob,
    snapshots: Sequence[VolumeSnapshot],
    targets: Sequence[Path],
    seg_path: Path,
    out: Path,
    case_name: str,
    identity,
    also: Sequence[str],
    same: Optional[SameImage],
    overwrite: bool,
    files: CaseFiles,
) -> WrittenCase:
    """The writes of a new case (or an overwrite), in any thread: the images compressed and
    written into ``files`` (its labels are there already), then all moved into place; nothing
    of MRML."""
    for index, (snapshot, target) in enumerate(zip(snapshots, targets)):
        _step(job, case_name, f"writing {target.name} ({index + 1} of {len(targets)})")
        files.write(target, lambda path, snapshot=snapshot: write_volume_file(snapshot, path))
    _step(job, case_name, "putting the files in place")
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
) -> Callable[[ExportJob], WrittenCase]:
    """Write ``segmentation_node`` as the labels of ``same.case`` (the same image), its old
    labels moved to ``.replaced/`` once the new ones are written whole, and put back if they
    cannot be renamed into place. Reads MRML here; returns the writes, for any thread."""
    seg_path = out / f"{same.case}.seg.nrrd"  # same.case may be in a sub-folder: sub/case
    files.write(seg_path, lambda path: _write_segmentation(segmentation_node, path))
    return lambda job: _write_labels(job, seg_path, out, same, identity, also, requested, files)


def _write_labels(
    job: ExportJob,
    seg_path: Path,
    out: Path,
    same: SameImage,
    identity,
    also: Sequence[str],
    requested: str,
    files: CaseFiles,
) -> WrittenCase:
    """The rest of :func:`_replace_labels`, in any thread (no MRML): the labels written moved
    into place, the old ones kept, the record."""
    _step(job, same.case, "putting the files in place")
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


def _step(job: ExportJob, case: str, doing: str) -> None:
    """Stop here if ``job`` was cancelled; else say what it does next."""
    job.check_cancelled(f"The export of case {case!r}")
    job.say(f"Exporting {case}: {doing}...")


def _write_segmentation(segmentation_node, seg_path: Path) -> bool:
    """Write ``segmentation_node`` to ``seg_path`` (a .seg.nrrd, not cropped); whether Slicer's
    writer succeeded (it can report success for a truncated file: case_files.py checks).
    Main thread: it reads MRML. Slicer's own writer, because its header holds every tag of
    every segment, which Python cannot list (``vtkSegment::GetTags`` is not wrapped); its
    gzip is a small part of its time (a label map compresses fast: scripts/
    measure_export_write.py)."""
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
