"""A volume node's voxels and geometry, taken on Slicer's main thread, written off it.

The training export wrote each image with Slicer's ``vtkMRMLVolumeArchetypeStorageNode``
(compressed NRRD), which reads the node and so ran on Slicer's main thread: a 512x512x300 CT
froze Slicer for seconds, most of it in gzip. :func:`snapshot_volume` copies what that writer
reads from MRML (the (z, y, x) voxels in their own type, the node's own IJK-to-RAS matrix moved
to the first voxel, as that writer puts the file's "space origin" there), and
:func:`write_volume_file` writes it with SimpleITK, whose NRRD writer is the one Slicer's volume
writer uses (ITK's NrrdImageIO: the same header fields, LPS, gzip) and which releases Python's
GIL while it compresses and writes: it can run in a thread while Slicer stays responsive. No
MRML or VTK object is touched after the snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .geometry import array_from_volume_node, first_voxel_ijk_to_ras

#: RAS <-> LPS (either way): the first two axes flip.
_FLIP = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class VolumeSnapshot:
    """A scalar volume as its file holds it: ``voxels`` (z, y, x), a private copy, and
    ``ijk_to_lps`` (4x4, mm) of the voxel ``voxels[0, 0, 0]``."""

    voxels: np.ndarray
    ijk_to_lps: np.ndarray

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size along i, j, k (mm)."""
        return tuple(float(s) for s in np.linalg.norm(self.ijk_to_lps[:3, :3], axis=0))

    @property
    def direction(self) -> np.ndarray:
        """3x3, its columns the unit LPS directions of the i, j, k axes."""
        return self.ijk_to_lps[:3, :3] / np.asarray(self.spacing)

    @property
    def origin(self) -> tuple[float, float, float]:
        """LPS position (mm) of the voxel ``voxels[0, 0, 0]``."""
        return tuple(float(v) for v in self.ijk_to_lps[:3, 3])


def snapshot_volume(volume_node) -> VolumeSnapshot:
    """Copy the voxels and geometry of ``volume_node`` (a scalar volume; its own matrix, not
    its parent transform's, as Slicer's volume writer). Main thread only. Raises
    ``UNetPlusPlusError`` for a node without scalar image data."""
    ras = first_voxel_ijk_to_ras(volume_node)
    lps = np.eye(4)
    lps[:3, :3], lps[:3, 3] = _FLIP @ ras[:3, :3], _FLIP @ ras[:3, 3]
    return VolumeSnapshot(array_from_volume_node(volume_node, copy=True), lps)


def write_volume_file(snapshot: VolumeSnapshot, path: Path) -> bool:
    """Write ``snapshot`` to ``path`` (compressed NRRD, or what its suffix names); whether
    the writer succeeded (False: it raised; a file cut short is caught by the caller's check).
    Touches no MRML: safe in a worker thread (the GIL is released while it writes)."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(snapshot.voxels)  # a copy, mostly without the GIL
    image.SetSpacing(snapshot.spacing)
    image.SetOrigin(snapshot.origin)
    image.SetDirection(tuple(float(v) for v in snapshot.direction.ravel()))
    try:
        sitk.WriteImage(image, str(path), True)
    except RuntimeError:  # ITK's exception: no room, no permission, ...
        return False
    return True
