"""The 19 shared BraTS cases (``brats_cases``) read once per test session.

Decoding the 76 gzip NIfTI/MHA files costs about 10 CPU-seconds; several test modules need
them. :class:`BratsStore` reads each case once with the engine's ``read_volume``, keeps its
float32 array as an uncompressed ``.npy`` in a session folder (removed at the end) and hands
out volumes whose arrays are read-only memory maps of it: the same voxels and geometry as a
fresh read, not held in memory between tests, and a test that writes into them fails loudly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.volume import Volume

NAMES = ("FLAIR", "T1", "T1ce", "T2")
SUFFIXES = ("flair", "t1", "t1ce", "t2")


def brats_cases(shared_data: Path) -> dict:
    """Case name -> its four files in the model's order (18 BraTS 2018, 1 BRATS 2012)."""
    cases = {}
    for folder in sorted((shared_data / "brain-tumor" / "brats2018").glob("Brats18_*")):
        cases[folder.name] = [folder / f"{folder.name}_{s}.nii.gz" for s in SUFFIXES]
    hg = shared_data / "brain-tumor" / "brats2012-HG0001"
    cases["brats2012-HG0001"] = [hg / f"BRATS_HG0001_{s}.mha" for s in ("FLAIR", "T1", "T1C", "T2")]
    return cases


class BratsStore:
    """Read-only volumes (C=4, z, y, x; float32, LPS) of the shared BraTS cases by name."""

    def __init__(self, shared_data: Path, folder: Path) -> None:
        self.paths = brats_cases(shared_data)
        self.folder = folder
        self._geometry: dict[str, Volume] = {}

    def names(self) -> list[str]:
        """The case names, sorted as ``brats_cases`` gives them."""
        return list(self.paths)

    def volume(self, name: str) -> Volume:
        """The case read by ``read_volume`` (first call) or mapped from its copy (later)."""
        cached = self.folder / f"{name}.npy"
        if name not in self._geometry:
            read = read_volume(self.paths[name], NAMES)
            np.save(cached, read.array)
            self._geometry[name] = read.with_array(np.empty((4, 0, 0, 0), np.float32))
        array = np.asarray(np.load(cached, mmap_mode="r"))
        assert not array.flags.writeable
        return self._geometry[name].with_array(array)

    def volumes(self) -> dict[str, Volume]:
        """Every case (memory-mapped: cheap to hold)."""
        return {name: self.volume(name) for name in self.paths}
