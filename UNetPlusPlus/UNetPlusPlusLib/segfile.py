"""Read and write 3D Slicer `.seg.nrrd` files without Slicer, through slicerio.

A written file opens in Slicer as a Segmentation node whose segments carry the manifest's names,
colours and standard terminology (the `TerminologyEntry` tag), stored as one shared labelmap
layer, with the reference image geometry set to the input grid so Segment Editor edits at full
resolution.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np
import slicerio
import slicerio.segmentation

from .engine.manifest import (
    ANATOMIC_CONTEXT,
    SEGMENTATION_CONTEXT,
    LabelSpec,
    terminology_entry_string,
)
from .engine.volume import LabelVolume
from .errors import UNetPlusPlusError

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
#: gzip level of written files: 1 writes a 512x512x300 label map in 0.19 s (443 kB), level 9,
#: slicerio's default, in 0.65 s (111 kB); any level is plain gzip that Slicer reads
#: (docs/BENCHMARK_E2E.md, "End to end").
COMPRESSION_LEVEL = 1
# slicerio's terminology keys -> the manifest's (engine/manifest.py).
_TERMINOLOGY_KEYS = {
    "category": "category",
    "type": "type",
    "typeModifier": "type_modifier",
    "anatomicRegion": "anatomic_region",
    "anatomicRegionModifier": "anatomic_region_modifier",
}


def terminology_from_slicerio(terminology: Optional[dict]) -> Optional[dict]:
    """slicerio's {"type": [scheme, code, meaning], ...} -> the manifest's code dicts."""
    if not terminology:
        return None
    out = {}
    for theirs, ours in _TERMINOLOGY_KEYS.items():
        triplet = terminology.get(theirs)
        if triplet and len(triplet) == 3 and all(triplet):
            out[ours] = dict(zip(("scheme", "code", "meaning"), triplet))
    if "category" not in out or "type" not in out:
        return None
    # keep a context only where it is not Slicer's default (the manifest's default)
    for theirs, ours, default in (
        ("contextName", "context", SEGMENTATION_CONTEXT),
        ("anatomicContextName", "anatomic_context", ANATOMIC_CONTEXT),
    ):
        if terminology.get(theirs) and terminology[theirs] != default:
            out[ours] = terminology[theirs]
    return out


def ijk_to_lps(labels: LabelVolume) -> np.ndarray:
    """The 4x4 voxel-index (i, j, k) to LPS matrix of a label volume."""
    matrix = np.eye(4)
    matrix[:3, :3] = np.asarray(labels.direction, dtype=float) @ np.diag(labels.spacing)
    matrix[:3, 3] = labels.origin
    return matrix


def reference_geometry_string(labels: LabelVolume) -> str:
    """Slicer's "Reference image geometry" string: IJK-to-RAS matrix (row-major) and extent."""
    ijk_to_ras = LPS_TO_RAS @ ijk_to_lps(labels)
    size_xyz = labels.array.shape[::-1]
    matrix = ";".join(repr(float(v)) for v in ijk_to_ras.flatten())
    extent = ";".join(f"0;{n - 1}" for n in size_xyz)
    return f"{matrix};{extent};"


def write_seg_nrrd(labels: LabelVolume, path: Union[str, Path]) -> Path:
    """Write `labels` as a Slicer segmentation (one labelmap layer, one segment per label)."""
    path = Path(path)
    extent = []
    for n in labels.array.shape[::-1]:
        extent += [0, int(n) - 1]
    segments = []
    for label in labels.labels:
        segments.append(
            {
                "id": f"Segment_{label.value}",
                "labelValue": int(label.value),
                "layer": 0,
                "name": label.name,
                "color": [float(c) for c in label.color],
                "extent": extent,
                "terminology": slicerio.segmentation.terminology_entry_from_string(
                    terminology_entry_string(label)
                ),
            }
        )
    segmentation = {
        # (z, y, x) -> (i, j, k) as a view: it is Fortran-ordered, which is the order the NRRD
        # writer stores (index_order "F"), so no transposed copy of the whole grid is made
        "voxels": labels.array.transpose(2, 1, 0),
        "ijkToLPS": ijk_to_lps(labels),
        "encoding": "gzip",
        "containedRepresentationNames": ["Binary labelmap"],
        "masterRepresentation": "Binary labelmap",
        "referenceImageExtentOffset": [0, 0, 0],
        "conversionParameters": [
            {
                "name": "Reference image geometry",
                "value": reference_geometry_string(labels),
                "description": "Image geometry description string determining the geometry "
                "of the labelmap that is created in course of conversion.",
            }
        ],
        "segments": segments,
    }
    slicerio.write_segmentation(str(path), segmentation, compression_level=COMPRESSION_LEVEL)
    return path


def read_seg_nrrd(path: Union[str, Path]) -> LabelVolume:
    """Read a `.seg.nrrd` into a LabelVolume (overlapping layers are not supported)."""
    try:
        segmentation = slicerio.read_segmentation(str(path))
    except Exception as error:  # slicerio/pynrrd raise many types for bad files
        raise UNetPlusPlusError(f"Cannot read the segmentation file {path}: {error}") from error
    voxels = np.asarray(segmentation["voxels"])
    if voxels.ndim == 4:
        raise UNetPlusPlusError(
            f"{path} stores overlapping segments in several layers; merge them in Slicer first."
        )
    matrix = np.asarray(segmentation["ijkToLPS"], dtype=float)
    spacing = np.linalg.norm(matrix[:3, :3], axis=0)
    direction = matrix[:3, :3] / spacing
    offset = segmentation.get("referenceImageExtentOffset") or [0, 0, 0]
    origin = matrix[:3, 3] + matrix[:3, :3] @ np.asarray(offset, dtype=float)
    labels = []
    for segment in segmentation.get("segments", []):
        labels.append(
            LabelSpec(
                value=int(segment.get("labelValue", 1)),
                name=str(segment.get("name", segment.get("id", "segment"))),
                color=tuple(float(c) for c in segment.get("color", (1.0, 1.0, 0.0))),
                terminology=terminology_from_slicerio(segment.get("terminology")),
            )
        )
    return LabelVolume(
        array=np.ascontiguousarray(voxels.transpose(2, 1, 0)),
        spacing=tuple(float(s) for s in spacing),
        origin=tuple(float(o) for o in origin),
        direction=direction,
        labels=labels,
    )
