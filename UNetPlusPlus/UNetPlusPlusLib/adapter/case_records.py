"""Find the cases of an export folder that hold a given image, recorded or not.

Before an export, :func:`find_same_image` compares the case to export (its
:class:`.case_identity.CaseIdentity`) with every case of the folder: ``<case>.seg.nrrd`` beside
``<case>.nrrd``, or ``<case>_<channel>.nrrd`` per channel (the layout the export writes). A case
whose record (``<case>.export.json``) is trusted (of this method, its files unchanged since)
costs nothing more. A case without one (exported before records existed, its files edited by
hand since, or recorded by an older method) is read back once with Slicer's storage nodes in a
private scene, unless its NRRD headers show another shape or its file names other channels (then
it cannot hold the image: nothing is read), and its record is written, so that the next export
reads it no more. A case that cannot be read is left out (training reports it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import slicer

from ..errors import UNetPlusPlusError
from .case_identity import (
    CaseIdentity,
    image_identity,
    labels_identity,
    trusted_identity,
    write_record,
)

SEG_SUFFIX = ".seg.nrrd"
_HEADER_LIMIT = 1 << 16  # an exported volume's NRRD header is well under 1 kB


@dataclass(frozen=True)
class FolderCase:
    """A case of an export folder: its name, its image files by channel name ("" for a lone
    ``<case>.nrrd``), and its ``.seg.nrrd``."""

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
    """The cases of ``folder`` (not its sub-folders), sorted by name, in the export's layout."""
    folder = Path(folder)
    segs = sorted(folder.glob(f"*{SEG_SUFFIX}")) if folder.is_dir() else []
    names = {seg.name[: -len(SEG_SUFFIX)] for seg in segs}
    cases = []
    for seg in segs:
        name = seg.name[: -len(SEG_SUFFIX)]
        single = folder / f"{name}.nrrd"
        if single.is_file():
            images = {"": single}
        else:
            images = {
                p.name[len(name) + 1 : -len(".nrrd")]: p
                for p in sorted(folder.glob(f"{name}_*.nrrd"))
                if not p.name.endswith(SEG_SUFFIX) and p.name[: -len(".nrrd")] not in names
            }
        if images:
            cases.append(FolderCase(name, images, seg))
    return cases


def find_same_image(
    folder: Path, identity: CaseIdentity, shapes: dict[str, tuple[int, ...]]
) -> list[SameImage]:
    """Every case of ``folder`` whose image is that of ``identity``, by name. ``shapes``: the
    array shape (z, y, x) of each channel of that image, by channel name ("" for one volume),
    which spares reading an unrecorded case of another shape. Writes the missing records of the
    cases it reads (silently not, in a read-only folder)."""
    found = []
    for case in folder_cases(folder):
        known = trusted_identity(folder, case.name, case.files)
        if known is None and _may_hold(case, shapes):
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


def _may_hold(case: FolderCase, shapes: dict[str, tuple[int, ...]]) -> bool:
    """False when ``case``'s channel names or NRRD header sizes show it cannot hold an image of
    ``shapes``; True otherwise (and when a header cannot be parsed: the safe side)."""
    if set(case.images) != set(shapes):
        return False
    for name, path in case.images.items():
        sizes = _nrrd_sizes(path)
        if sizes is not None and tuple(reversed(sizes)) != tuple(shapes[name]):
            return False
    return True


def _nrrd_sizes(path: Path) -> Optional[Sequence[int]]:
    """The ``sizes:`` field of an NRRD header (x, y, z), or None when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(_HEADER_LIMIT).split(b"\n\n", 1)[0].decode("latin-1")
        if not header.startswith("NRRD"):
            return None
        for line in header.splitlines():
            if line.startswith("sizes:"):
                return [int(size) for size in line[len("sizes:") :].split()]
    except (OSError, ValueError):
        return None
    return None
