"""Margins of the MR background and near-duplicate checks on the shared BraTS cases.

For each case (18 BraTS 2018, BRATS 2012 HG0001): the share of voxels exactly 0 in each
channel's strided sample (``sanity.channel_samples``, the voxels the check sees), and the
largest Spearman correlation between two different sequences inside the joint non-zero mask
(``channel_order.fingerprint``). Usage::

    PYTHONPATH=UNetPlusPlus python scripts/mr_background_margins.py ../shared/data
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from UNetPlusPlusLib.engine import channel_order as co
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.sanity import channel_samples

NAMES = ("FLAIR", "T1", "T1ce", "T2")


def cases(shared: Path) -> dict:
    """Case name -> its four files in the model's order."""
    found = {}
    for folder in sorted((shared / "brain-tumor" / "brats2018").glob("Brats18_*")):
        suffixes = ("flair", "t1", "t1ce", "t2")
        found[folder.name] = [folder / f"{folder.name}_{s}.nii.gz" for s in suffixes]
    hg = shared / "brain-tumor" / "brats2012-HG0001"
    found["brats2012-HG0001"] = [hg / f"BRATS_HG0001_{s}.mha" for s in ("FLAIR", "T1", "T1C", "T2")]
    return found


def main(shared: Path) -> None:
    zero_min, rho_max = 1.0, -1.0
    for name, paths in cases(shared).items():
        samples = channel_samples(list(read_volume(paths, NAMES).array))
        shares = [float(np.mean(s == 0)) for s in samples]
        rho = co.fingerprint(samples).spearman
        off = rho[np.triu_indices(4, 1)]
        zero_min, rho_max = min(zero_min, *shares), max(rho_max, float(off.max()))
        zeros = " ".join(f"{v:.3f}" for v in shares)
        print(f"{name:24s} zero share {zeros}  max rho {off.max():.3f}")
    print(f"smallest zero share {zero_min:.3f}; largest rho between sequences {rho_max:.3f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
