"""Image-content fingerprints of training cases: the same image under another name is found.

A fine-tune (``--init``) keeps its parent's held-out cases out of training and does not validate
on the parent's training cases (parent_split.py). Matching by case id and patient missed a
renamed copy (a Slicer export saved as ``case001``) and let it leak. A case's fingerprint is
the sha256 (first 128 bits, hex) of its voxels read as float32, channel after channel, in a
canonical axis order (the stored axes permuted and flipped to the nearest of x, y, z in LPS),
after a header of the method, the number of channels and the canonical shape.

What it catches: the same voxels under another file name or case id, in another file format
(NRRD, NIfTI, MHA, a DICOM series), voxel type (int16 saved as float32; every value an integer
type holds is exact in float32) or axis order (a flipped or permuted copy with a matching
direction), and with another origin or spacing (neither is hashed: identical voxel values are
the same acquisition). What it does not catch: a crop, a resampled copy, any change of value
(a rescaled or offset intensity, lossy compression, a re-reconstruction) and an oblique axis
order; two acquisitions of one patient differ anyway and are matched by patient id only.
"""

from __future__ import annotations

import hashlib
from typing import Mapping, Optional

import numpy as np

#: The method recorded beside the fingerprints in model.json; another method is not compared.
CONTENT_METHOD = "float32-voxels-canonical-axes-sha256-128/v1"


def canonical_axes(direction: np.ndarray) -> Optional[tuple[tuple[int, int, int], tuple]]:
    """For a (3, 3) ``direction`` (column a: LPS direction of index axis a), the transpose and
    the flips that put a (z, y, x) array into LPS axis order, or None for an oblique direction
    (two index axes nearest to the same LPS axis)."""
    nearest = np.abs(direction).argmax(axis=0)  # LPS axis of each index axis (x, y, z)
    if sorted(nearest.tolist()) != [0, 1, 2]:
        return None
    index_of = {int(p): a for a, p in enumerate(nearest)}  # LPS axis -> index axis
    order = tuple(2 - index_of[p] for p in (2, 1, 0))  # array axes (z, y, x) for LPS (z, y, x)
    flips = tuple(i for i, p in enumerate((2, 1, 0)) if direction[p, index_of[p]] < 0)
    return order, flips


def content_fingerprint(array: np.ndarray, direction: np.ndarray) -> str:
    """The fingerprint (32 hex characters) of an image ``array`` (C, z, y, x), any numeric type,
    stored with ``direction`` (3, 3). Hashes a channel at a time (one float32 copy of one
    channel at most)."""
    axes = canonical_axes(np.asarray(direction, float))
    digest = hashlib.sha256()
    channels = np.asarray(array)
    views = []
    for channel in channels:
        if axes is not None:
            order, flips = axes
            channel = np.transpose(channel, order)
            for axis in flips:
                channel = np.flip(channel, axis)
        views.append(channel)
    shape = views[0].shape if views else ()
    digest.update(f"{CONTENT_METHOD};{len(views)};{'x'.join(map(str, shape))};".encode())
    for channel in views:
        digest.update(np.ascontiguousarray(channel, dtype="<f4").data)
    return digest.hexdigest()[:32]


def volume_fingerprint(volume) -> str:
    """The fingerprint of an engine ``Volume`` (array (C, z, y, x), ``direction``)."""
    return content_fingerprint(volume.array, volume.direction)


def recorded_fingerprints(training: Optional[Mapping]) -> Optional[dict]:
    """The ``case_fingerprints`` a model.json ``training`` record holds (``{"method",
    "training": {case id: fingerprint}, "validation": {...}}``), or None when it holds none or
    another method's."""
    found = (training or {}).get("case_fingerprints")
    if not isinstance(found, Mapping) or found.get("method") != CONTENT_METHOD:
        return None
    return {
        side: {str(k): str(v) for k, v in (found.get(side) or {}).items()}
        for side in ("training", "validation")
    }


def fingerprint_record(
    content: Mapping[str, str], training: list[str], validation: list[str]
) -> Optional[dict]:
    """model.json ``training.case_fingerprints`` for the case ids of each side, or None when a
    case has no fingerprint (``content``: case id -> fingerprint)."""
    if any(not content.get(i) for i in [*training, *validation]):
        return None
    return {
        "method": CONTENT_METHOD,
        "training": {i: content[i] for i in training},
        "validation": {i: content[i] for i in validation},
    }
