"""The shared MR channels (``../shared/data``) that the MR-check benches read: one reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: The shared data folder beside the project (``../shared/data``).
DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
#: The BraTS 2018 case the benches time by default.
CASE = DATA / "brain-tumor" / "brats2018" / "Brats18_2013_11_1"
#: The four sequences, in the brain-tumour model's order.
NAMES = ("FLAIR", "T1", "T1ce", "T2")
SUFFIXES = ("flair", "t1", "t1ce", "t2")


def case_channels(case: Path) -> list[np.ndarray]:
    """The four sequences of a BraTS 2018 case folder (every ``*.nii.gz`` but the ``_seg``,
    sorted by name: FLAIR, T1, T1ce, T2) as float32 (z, y, x) arrays, read by SimpleITK."""
    import SimpleITK as sitk

    return [
        sitk.GetArrayFromImage(sitk.ReadImage(str(p))).astype(np.float32)
        for p in sorted(case.glob("*.nii.gz"))
        if not p.name.endswith("_seg.nii.gz")
    ]


def brats_cases(data: Path = DATA) -> dict[str, list[Path]]:
    """Case name -> its four files in the model's order: the 18 BraTS 2018 cases, then the
    BRATS 2012 case (as ``Testing/brats_store.brats_cases``)."""
    cases = {}
    for folder in sorted((data / "brain-tumor" / "brats2018").glob("Brats18_*")):
        cases[folder.name] = [
            folder / f"{folder.name}_{s}.nii.gz" for s in ("flair", "t1", "t1ce", "t2")
        ]
    hg = data / "brain-tumor" / "brats2012-HG0001"
    cases[hg.name] = [hg / f"BRATS_HG0001_{s}.mha" for s in ("FLAIR", "T1", "T1C", "T2")]
    return cases


def liver_mr(data: Path = DATA) -> Path:
    """The one shared abdominal MR (TotalSegmentator example, single channel)."""
    return data / "liver" / "totalsegmentator-examples" / "example_mr_sm.nii.gz"
