"""The training caches (preprocessed cases: training/preprocess.py; dataset fingerprint, whose
training prints ``--resume`` compares: training/fingerprint.py) notice a case file replaced by
one of the same size that keeps the old modification time (``cp -p`` writes in place,
``rsync -t`` renames a new file into place). Before, their key was path, size and mtime: the
stale cache was reused and the changed case went unnoticed; now the key holds the inode change
time and the inode number too (engine/file_stamp.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from test_training_dataset import write_slicer_dataset
from UNetPlusPlusLib.training.dataset import find_cases
from UNetPlusPlusLib.training.dataset_slicer import describe_slicer_export
from UNetPlusPlusLib.training.fingerprint import dataset_fingerprint
from UNetPlusPlusLib.training.preprocess import build_cache

SPACING = (3.0, 3.0, 3.0)


def brighter_copy(path: Path, into: Path) -> None:
    """``into``: ``path``'s image with other voxel values, same type and size (uncompressed)."""
    image = sitk.ReadImage(str(path))
    changed = sitk.GetImageFromArray(sitk.GetArrayFromImage(image)[::-1].copy())
    changed.CopyInformation(image)
    sitk.WriteImage(changed, str(into))


def replace_in_place(path: Path, new: Path) -> None:
    """``cp -p new path``: the same inode rewritten, the old mtime set back."""
    before = path.stat()
    path.write_bytes(new.read_bytes())
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def replace_by_rename(path: Path, new: Path) -> None:
    """``rsync -t``: a new file (new inode) with the old mtime, renamed into place."""
    before = path.stat()
    os.utime(new, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(new, path)


@pytest.mark.parametrize("replace", [replace_in_place, replace_by_rename])
def test_a_same_size_replacement_with_the_old_mtime_is_noticed(tmp_path, replace):
    folder = write_slicer_dataset(tmp_path / "data", cases=2)
    dataset = describe_slicer_export(folder, labels=["tumor"])
    cases = find_cases(dataset)
    cache, log = tmp_path / "cache", []
    first = build_cache(dataset, cases, SPACING, cache, log=log.append)
    prints = dataset_fingerprint(dataset, cases, cache, log=log.append)
    image = Path(cases[0].images[0])
    before = image.stat()

    brighter_copy(image, tmp_path / "new.nrrd")
    replace(image, tmp_path / "new.nrrd")
    after = image.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)

    log.clear()
    again = build_cache(dataset, cases, SPACING, cache, log=log.append)
    assert log == [f"preprocessing 1/2: {cases[0].case_id}"]  # case 1 only: read again
    assert not np.array_equal(np.asarray(again[0].image), np.asarray(first[0].image))
    assert np.array_equal(np.asarray(again[1].image), np.asarray(first[1].image))
    changed = dataset_fingerprint(dataset, cases, cache, log=log.append)
    assert log[-1] == "dataset fingerprint: reading 2 case(s) once"  # not the cached one
    assert changed.cases[0].training_print != prints.cases[0].training_print  # --resume's
    assert changed.cases[1].training_print == prints.cases[1].training_print
