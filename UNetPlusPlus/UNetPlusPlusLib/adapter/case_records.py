"""Find the cases of an export folder that hold a given image, recorded or not.

Before an export, :func:`find_same_image` compares the case to export (its
:class:`.case_identity.CaseIdentity`) with every case of the folder that training reads: the
trainer's own case discovery (training/dataset_slicer.py: sub-folders too, hidden ones not;
``<case>.seg.nrrd`` or a labelmap, beside ``<case>.<ext>`` or ``<case>_<channel>.<ext>``), so
that a copy in a sub-folder is found as training would find it. A case whose record
(``<case>.export.json``) is trusted (of this method, its files unchanged since) costs nothing
more. A case without one (exported before records existed, copied in by hand, its files edited
since, or recorded by an older method) cannot hold the image if its channel names or NRRD
headers differ, or if its voxels differ (:func:`.nrrd_voxels.same_voxels`: streamed and compared
until the first difference, a few per cent of another image's file); nothing more is read of
it. Only a case that may hold the very image (or whose files that check cannot tell) is read
back with Slicer's storage nodes in a private scene, and its record is written, so that the next
export reads it no more. A case that cannot be read is left out (training reports it).

Before, every unrecorded case was read back whole in Slicer's main thread (about 0.6 s of CPU
per BraTS case: a folder of 100 froze Slicer for a minute); bench/export_records_cost.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import slicer

from ..errors import UNetPlusPlusError
from .case_identity import (
    CaseIdentity,
    image_identity,
    labels_identity,
    trusted_identity,
    write_record,
)
from .nrrd_voxels import same_voxels


@dataclass(frozen=True)
class FolderCase:
    """A case of an export folder: its name (its path from the folder, without suffix:
    ``case001`` or ``sub/case001``), its image files by channel name ("" for a lone
    ``<case>.nrrd``), and its label file (``.seg.nrrd`` or a labelmap)."""

    name: str
    images: dict[str, Path]
    seg: Path

    @property
    def files(self) -> list[Path]:
        return [*self.images.values(), self.seg]


@dataclass(frozen=True)
class SameImage:
    """A case of the folder with the same image: ``case`` (its name), whether its labels are the
    same too, and its files (images, then ``.seg.nrrd``)."""

    case: str
    same_labels: bool
    files: tuple[Path, ...]


def folder_cases(folder: Path) -> list[FolderCase]:
    """The cases of ``folder`` that ``unetpp train`` reads (its own discovery: sub-folders too,
    not hidden ones such as ``.replaced/``), sorted by name. A case's images are ``<case>.<ext>``
    when there is one (one channel, as training takes it), else its ``<case>_<channel>.<ext>``:
    those of ``training.dataset_slicer.case_images`` (one listing of each folder)."""
    from ..training.dataset_slicer import case_images, case_label_files  # SimpleITK: when needed

    folder = Path(folder)
    if not folder.is_dir():
        return []
    labels = case_label_files(folder)
    cases = []
    for name, images in sorted(case_images(folder, labels).items()):
        if "" in images:
            images = {"": images[""]}
        if images:
            cases.append(FolderCase(name, images, labels[name]))
    return cases


def find_same_image(
    folder: Path, identity: CaseIdentity, images: dict[str, np.ndarray]
) -> list[SameImage]:
    """Every case of ``folder`` whose image is that of ``identity``, by name. ``images``: the
    voxels (z, y, x) of each channel of that image, by channel name ("" for one volume), which
    tell an unrecorded case of another image without reading it back. Writes the records of the
    cases it reads back (silently not, in a read-only folder)."""
    found = []
    for case in folder_cases(folder):
        known = trusted_identity(folder, case.name, case.files)
        if known is None and _may_hold(case, images):
            known = identity_from_files(case)
            if known is not None:
                try:
                    write_record(folder, case.name, known, case.files)
                except OSError:
                    pass  # a read-only folder: read again next time
        if known is not None and known.image == identity.image:
            found.append(SameImage(case.name, known.labels == identity.labels, tuple(case.files)))
    return found


def identity_from_files(case: FolderCase) -> Optional[CaseIdentity]:
    """The identity of ``case`` read from its files (as the export computes it from the nodes),
    or None when a file cannot be read."""
    scene = slicer.vtkMRMLScene()
    try:
        volumes = []
        for path in case.images.values():
            node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
            storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
            storage.SetFileName(str(path))
            if not storage.ReadData(node):
                return None
            volumes.append(node)
        segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        storage = slicer.vtkMRMLSegmentationStorageNode()
        storage.SetFileName(str(case.seg))
        if not storage.ReadData(segmentation):
            return None
        return CaseIdentity(
            image_identity(volumes, list(case.images)), labels_identity(segmentation)
        )
    except (UNetPlusPlusError, ValueError):  # e.g. a colour volume: training reports it
        return None
    finally:
        scene.Clear(1)


def _may_hold(case: FolderCase, images: dict[str, np.ndarray]) -> bool:
    """False when ``case``'s channel names, or the type, shape or voxels of an NRRD image of
    it, show that it does not hold ``images``; True otherwise (also when a file cannot be told
    this way: the safe side, it is then read back)."""
    if set(case.images) != set(images):
        return False
    return all(same_voxels(path, images[name]) is not False for name, path in case.images.items())
