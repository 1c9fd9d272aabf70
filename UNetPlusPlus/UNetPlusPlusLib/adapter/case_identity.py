"""Recognise a training case already in the export folder: the same image, the same labels.

A double-click on "Add current case" (or "Export training case"), or a second add of a case
that has not changed, wrote the same case again as ``case002``: a duplicate biases the dataset,
and a copy split between training and validation leaks. Each export now records, beside its
files, ``<case>.export.json`` (:data:`RECORD_SUFFIX`; no image suffix, so the trainer's case
discovery ignores it) holding:

- ``image``: sha256 of the channel names and, per volume, its voxels (their type, shape and
  bytes) and its IJK-to-RAS matrix rounded to 1e-4 mm: what the image file holds;
- ``labels``: sha256 of each segment's name and voxel fingerprint
  (:func:`.segment_fingerprint.labelmap_fingerprint`: extent-independent), in order;
- ``files``: the size and modification time (ns) of each file written.

Before a new export the records in the folder are compared with the case to export (no image
file is read: the check costs one hash of the voxels). A record whose files are gone or have
changed since (edited by hand) is not trusted. Cases exported before this record existed are not
recognised.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import vtk

from .geometry import _numpy_from_vtk_matrix, array_from_volume_node
from .segment_fingerprint import segment_fingerprint
from .segmentation_writer import binary_labelmap_name

RECORD_SUFFIX = ".export.json"
METHOD = "voxels-ijk2ras1e-4-segments-sha256/v1"


@dataclass(frozen=True)
class CaseIdentity:
    """sha256 (hex) of a case's image (all channels, with geometry) and of its labels."""

    image: str
    labels: str


@dataclass(frozen=True)
class SameImage:
    """An earlier case in the folder with the same image: ``case`` (its name), whether its
    labels are the same too, and its record's path."""

    case: str
    same_labels: bool
    record: Path


def case_identity(
    volume_nodes: Sequence, segmentation_node, channel_names: Sequence[str]
) -> CaseIdentity:
    """The identity of the case ``volume_nodes`` (one per channel, named ``channel_names``) and
    ``segmentation_node`` would be exported as. Raises ``UNetPlusPlusError`` for a volume
    without scalar image data."""
    image = hashlib.sha256(f"{METHOD};{len(volume_nodes)};".encode())
    for name, node in zip(channel_names, volume_nodes):
        voxels = array_from_volume_node(node, copy=False)
        image.update(f"{name};{voxels.dtype.str};{'x'.join(map(str, voxels.shape))};".encode())
        matrix = vtk.vtkMatrix4x4()
        node.GetIJKToRASMatrix(matrix)
        image.update(np.round(_numpy_from_vtk_matrix(matrix), 4).astype("<f8").tobytes())
        image.update(np.ascontiguousarray(voxels).data)
    labels = hashlib.sha256(f"{METHOD};".encode())
    segmentation = segmentation_node.GetSegmentation()
    representation = binary_labelmap_name()
    for index in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(index)
        voxels = segment_fingerprint(segment, representation) or ""
        labels.update(f"{segment.GetName()};{voxels};".encode())
    return CaseIdentity(image.hexdigest(), labels.hexdigest())


def record_path(folder: Path, case: str) -> Path:
    """Where the identity record of ``case`` lies in ``folder``."""
    return Path(folder) / f"{case}{RECORD_SUFFIX}"


def write_record(folder: Path, case: str, identity: CaseIdentity, files: Sequence[Path]) -> None:
    """Record ``identity`` of ``case`` and the stamps of its written ``files``."""
    record = {
        "method": METHOD,
        "image": identity.image,
        "labels": identity.labels,
        "files": {Path(f).name: _stamp(Path(f)) for f in files},
    }
    record_path(folder, case).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def find_same_image(folder: Path, identity: CaseIdentity, skip: str = "") -> Optional[SameImage]:
    """The first case (by name) in ``folder`` other than ``skip`` whose trusted record has the
    image of ``identity``, preferring one whose labels match too; None when there is none."""
    found = []
    for path in sorted(Path(folder).glob(f"*{RECORD_SUFFIX}")):
        case = path.name[: -len(RECORD_SUFFIX)]
        record = _trusted(path)
        if case == skip or record is None or record.get("image") != identity.image:
            continue
        found.append(SameImage(case, record.get("labels") == identity.labels, path))
    found.sort(key=lambda same: not same.same_labels)  # stable: by name within each kind
    return found[0] if found else None


def _stamp(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _trusted(path: Path) -> Optional[dict]:
    """The record at ``path`` when it is readable, of :data:`METHOD`, and every file it stamps
    is still there unchanged; else None."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        files = record["files"]
        if record.get("method") != METHOD or not files:
            return None
        for name, stamp in files.items():
            if _stamp(path.parent / name) != list(stamp):
                return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return record
