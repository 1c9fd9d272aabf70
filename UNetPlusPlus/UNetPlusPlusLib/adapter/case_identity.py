"""The identity of a training case (its image, its labels) and its record beside its files.

A double-click on "Add current case" (or "Export training case"), or a second add of a case
that has not changed, wrote the same case again as ``case002``: a duplicate biases the dataset,
and a copy split between training and validation leaks. Each export records, beside its files,
``<case>.export.json`` (:data:`RECORD_SUFFIX`; no image suffix, so the trainer's case discovery
ignores it) holding:

- ``image``: sha256 of, per volume, its voxels (their type, shape and bytes) and its IJK-to-RAS
  matrix at its first voxel (the image extent's start, where its file's "space origin" is: a
  matrix at index 0 gave a volume whose extent does not start at 0 another identity than its
  file read back, and the same identity as the same voxels elsewhere) rounded to 1e-4 mm,
  with its channel name when there are several (the name is in their
  file names, ``<case>_<channel>.nrrd``, taken in name order; one volume, ``<case>.nrrd``,
  carries none): what the image files hold;
- ``labels``: sha256 of each segment's name and voxel fingerprint
  (:func:`.segment_fingerprint.placed_fingerprint`: its voxels where they are in the world,
  whatever the labelmap's extent and index space, on the grid its ``.seg.nrrd`` holds them
  on), in order;
- ``files``: the stamp of each file of the case: its size, modification time, status-change
  time (ns) and inode number (:func:`file_stamp`).

A record is trusted while every stamp is unchanged. Size and modification time alone are not
enough: ``cp -p``, ``rsync -t``, an unzip or a sync tool give a file replaced by another of the
same size (an uncompressed NRRD of the same shape) the modification time it had, and a
file system may keep that time to 2 s (FAT) or 1 s; the status-change time cannot be set
by any of them (a write, a rename or a copy onto the file sets it to now) and a file renamed
into place has another inode. A false alarm (the folder copied elsewhere, a ``chmod``) costs one
read-back of that case, never a wrong answer; older records (size and time only) are read back
once. (On Windows the status-change time is the creation time, which a copy over the file
keeps: there size, modification time and file index remain.)

The identity is the same whether computed from the MRML nodes before an export or from the files
read back (:mod:`.case_records`, for a case without a trusted record).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .geometry import array_from_volume_node, first_voxel_ijk_to_ras
from .segment_fingerprint import placed_fingerprint
from .segmentation_writer import binary_labelmap_name

RECORD_SUFFIX = ".export.json"
#: v2: one volume's identity no longer holds its channel (or node) name, which its file does not
#: keep, and several volumes are taken in name order; v1 records are recomputed from the files.
#: v3: the IJK-to-RAS matrix at the first voxel, not at index 0 (v2 records of a volume whose
#: extent did not start at 0 were wrong; older records are checked against the files again),
#: and the segments' voxels where they are, whatever the labelmap's index space.
METHOD = "voxels-ijk2ras1e-4-segments-sha256/v3"


@dataclass(frozen=True)
class CaseIdentity:
    """sha256 (hex) of a case's image (all channels, with geometry) and of its labels."""

    image: str
    labels: str


def image_identity(volume_nodes: Sequence, channel_names: Sequence[str]) -> str:
    """sha256 (hex) of the image ``volume_nodes`` (one per channel, named ``channel_names``).
    Raises ``UNetPlusPlusError`` for a volume without scalar image data."""
    names = [""] if len(volume_nodes) == 1 else list(channel_names)
    channels = []
    for name, node in zip(names, volume_nodes):
        voxels = array_from_volume_node(node, copy=False)
        digest = hashlib.sha256(f"{voxels.dtype.str};{'x'.join(map(str, voxels.shape))};".encode())
        matrix = first_voxel_ijk_to_ras(node)  # where the file puts voxel (0, 0, 0)
        digest.update(np.round(matrix, 4).astype("<f8").tobytes())
        digest.update(np.ascontiguousarray(voxels).data)
        channels.append((name, digest.hexdigest()))
    image = hashlib.sha256(f"{METHOD};{len(channels)};".encode())
    for name, digest in sorted(channels):
        image.update(f"{name};{digest};".encode())
    return image.hexdigest()


def labels_identity(segmentation_node) -> str:
    """sha256 (hex) of the segments of ``segmentation_node``: names and voxels, in order, as
    its ``.seg.nrrd`` holds them (:func:`_as_written`)."""
    labels = hashlib.sha256(f"{METHOD};".encode())
    segmentation, common = _as_written(segmentation_node.GetSegmentation())
    representation = binary_labelmap_name()
    for index in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(index)
        image = segment.GetRepresentation(representation)
        voxels = ""
        if image is not None:
            voxels = placed_fingerprint(_on_grid(image, common), segment.GetLabelValue())
        labels.update(f"{segment.GetName()};{voxels};".encode())
    return labels.hexdigest()


def _as_written(segmentation):
    """``segmentation`` and the grid Slicer's segmentation writer puts its segments on
    (:func:`_common_grid`), as that writer takes them. When a segment's labelmap is on another
    grid (added by a script, copied from a finer segmentation), the writer first merges the
    labelmaps into layers (cropping them), then resamples them: the same is done here on a copy,
    the user's segmentation untouched. Before, such a segment had one identity from the nodes
    and another from its file read back: the case exported again was taken for the same image
    with other labels, and "replaced" by them."""
    import slicer

    common = _common_grid(segmentation)
    if common is None:
        return segmentation, None
    representation = binary_labelmap_name()
    images = [segmentation.GetNthSegment(i).GetRepresentation(representation)
              for i in range(segmentation.GetNumberOfSegments())]  # fmt: skip
    match = slicer.vtkOrientedImageDataResample.DoGeometriesMatch
    if all(image is None or match(common, image) for image in images):
        return segmentation, common  # the usual case: no copy
    copy = _copy(segmentation, images)
    copy.CollapseBinaryLabelmaps(False)
    return copy, _common_grid(copy)


def _copy(segmentation, images: list):
    """A copy of ``segmentation`` (its labelmaps ``images``, one per segment, copied once per
    layer: segments that share one share its copy), its conversion parameters included."""
    import slicer

    copy = slicer.vtkSegmentation()
    copy.SetSourceRepresentationName(binary_labelmap_name())
    copy.DeserializeConversionParameters(segmentation.SerializeAllConversionParameters())
    layers: dict = {}
    for index, image in enumerate(images):
        segment = segmentation.GetNthSegment(index)
        twin = slicer.vtkSegment()
        twin.SetName(segment.GetName())
        twin.SetLabelValue(segment.GetLabelValue())
        if image is not None:
            if image.__this__ not in layers:
                layers[image.__this__] = slicer.vtkOrientedImageData()
                layers[image.__this__].DeepCopy(image)
            twin.AddRepresentation(binary_labelmap_name(), layers[image.__this__])
        copy.AddSegment(twin, segmentation.GetNthSegmentID(index))
    return copy


def _common_grid(segmentation):
    """The grid (a ``vtkOrientedImageData`` without voxels) Slicer's segmentation writer puts
    every segment on: the reference geometry, its extent grown to hold every segment; None
    when there is none to tell."""
    import slicer
    import vtk

    if not segmentation.GetNumberOfSegments():
        return None
    ids = vtk.vtkStringArray()
    segmentation.GetSegmentIDs(ids)
    text = segmentation.DetermineCommonLabelmapGeometry(
        slicer.vtkSegmentation.EXTENT_UNION_OF_EFFECTIVE_SEGMENTS_AND_REFERENCE_GEOMETRY, ids
    )
    grid = slicer.vtkOrientedImageData()
    if not text or not slicer.vtkSegmentationConverter.DeserializeImageGeometry(text, grid, False):
        return None  # no grid to tell (no reference geometry, no voxels): as they are
    return grid


def _on_grid(image, common):
    """A segment's labelmap ``image`` on the ``common`` grid: itself when it is on it
    (whatever its extent), else resampled onto it as the writer does (nearest neighbour)."""
    import slicer

    resample = slicer.vtkOrientedImageDataResample
    if common is None or resample.DoGeometriesMatch(common, image):
        return image
    resampled = slicer.vtkOrientedImageData()
    resample.ResampleOrientedImageToReferenceOrientedImage(image, common, resampled)
    return resampled


def case_identity(
    volume_nodes: Sequence, segmentation_node, channel_names: Sequence[str]
) -> CaseIdentity:
    """The identity of the case ``volume_nodes`` (one per channel, named ``channel_names``) and
    ``segmentation_node`` would be exported as. Raises ``UNetPlusPlusError`` for a volume
    without scalar image data."""
    return CaseIdentity(
        image_identity(volume_nodes, channel_names), labels_identity(segmentation_node)
    )


def record_path(folder: Path, case: str) -> Path:
    """Where the identity record of ``case`` lies in ``folder``."""
    return Path(folder) / f"{case}{RECORD_SUFFIX}"


def write_record(folder: Path, case: str, identity: CaseIdentity, files: Sequence[Path]) -> None:
    """Record ``identity`` of ``case`` and the stamps of its ``files``. Raises OSError."""
    record = {
        "method": METHOD,
        "image": identity.image,
        "labels": identity.labels,
        "files": {Path(f).name: file_stamp(Path(f)) for f in files},
    }
    record_path(folder, case).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def trusted_identity(folder: Path, case: str, files: Sequence[Path]) -> Optional[CaseIdentity]:
    """The identity recorded for ``case`` when its record is readable, of :data:`METHOD`, and
    stamps exactly ``files`` (the case's files now), each unchanged since; else None."""
    try:
        record = json.loads(record_path(folder, case).read_text(encoding="utf-8"))
        stamps = record["files"]
        if record.get("method") != METHOD or set(stamps) != {Path(f).name for f in files}:
            return None
        for path in files:
            if file_stamp(Path(path)) != list(stamps[Path(path).name]):
                return None
        return CaseIdentity(str(record["image"]), str(record["labels"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def file_stamp(path: Path) -> list[int]:
    """What a record keeps of ``path`` to tell it unchanged: [size (bytes), modification time,
    status-change time (ns), inode number]. Raises OSError."""
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]
