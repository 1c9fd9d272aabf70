"""The 19 shared BraTS cases (``brats_cases``) read once per test run.

Decoding the 76 gzip NIfTI/MHA files costs about 10 CPU-seconds; several test modules need
them. :class:`BratsStore` reads each case once with the engine's ``read_volume``, keeps its
float32 array as an uncompressed ``.npy`` (and its geometry beside it) in a folder shared by
the run's pytest-xdist workers (removed at the end), and hands out volumes whose arrays are
read-only memory maps of it: the same voxels and geometry as a fresh read, not held in memory
between tests, and a test that writes into them fails loudly. A lock file per case lets one
worker decode it while another waits and then maps the same copy.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
from filelock import FileLock
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
        """The case mapped from its copy, which the first call in the run (in any worker)
        makes with ``read_volume``."""
        if name not in self._geometry:
            self._geometry[name] = self._stored(name)
        array = np.asarray(np.load(self.folder / f"{name}.npy", mmap_mode="r"))
        assert not array.flags.writeable
        return self._geometry[name].with_array(array)

    def _stored(self, name: str) -> Volume:
        """The case's geometry (an empty array), read from the folder, or first decoded and
        written there: the array, then the geometry file, which marks the copy complete (a
        worker killed half-way leaves no geometry, and the next one decodes again)."""
        geometry = self.folder / f"{name}.geometry.pickle"
        with FileLock(str(self.folder / f"{name}.lock")):
            if not geometry.is_file():
                read = read_volume(self.paths[name], NAMES)
                np.save(self.folder / f"{name}.npy", read.array)
                partial = geometry.with_suffix(f".{os.getpid()}.part")
                partial.write_bytes(
                    pickle.dumps(read.with_array(np.empty((4, 0, 0, 0), np.float32)))
                )
                partial.replace(geometry)
            return pickle.loads(geometry.read_bytes())

    def volumes(self) -> dict[str, Volume]:
        """Every case (memory-mapped: cheap to hold)."""
        return {name: self.volume(name) for name in self.paths}
