"""The below-air share of engine/ct_range.py on the shared CTs, as they are and shifted by -1024 HU.

    PYTHONPATH=UNetPlusPlus python scripts/ct_range_margins.py ../shared/data

Prints, per CT, the share of the strided sample below ``BELOW_AIR_HU`` beyond its single most
frequent value there (the padding), and the same for the volume shifted by -1024 HU (the
rescale intercept applied twice); then the largest share of the real volumes. The LIDC crops are
taken every 8th (``--every``).
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import numpy as np
from UNetPlusPlusLib.engine.ct_range import BELOW_AIR_HU
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.sanity import channel_stats
from UNetPlusPlusLib.errors import UNetPlusPlusError


def below_air_share(sample: np.ndarray) -> float:
    below = sample[sample < BELOW_AIR_HU]
    if below.size == 0:
        return 0.0
    values, counts = np.unique(below, return_counts=True)
    return float(np.count_nonzero(below != values[np.argmax(counts)])) / float(sample.size)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the shared data folder (../shared/data)")
    parser.add_argument("--every", type=int, default=8, help="take every n-th LIDC crop")
    args = parser.parse_args()
    liver = args.data / "liver"
    files = sorted(glob.glob(str(liver / "**" / "*ct*.nii.gz"), recursive=True))
    files += [str(liver / "totalsegmentator-examples" / f"{n}_ct_cropped.nii.gz")
              for n in ("pulm", "aorta")]  # fmt: skip
    files += sorted(glob.glob(str(args.data / "lung-nodule/lidc-vois/image/*.nii.gz")))[
        :: args.every
    ]
    files += sorted(glob.glob(str(args.data / "lung-nodule/lidc-dicom-slabs/LIDC-*")))
    worst, lowest_shifted = 0.0, 1.0
    for name in dict.fromkeys(files):
        try:
            sample = channel_stats(read_volume([name]).array[0]).sample
        except UNetPlusPlusError as error:
            print(f"skipped {name}: {error}")
            continue
        real, shifted = below_air_share(sample), below_air_share(sample - 1024)
        worst, lowest_shifted = max(worst, real), min(lowest_shifted, shifted)
        print(f"{Path(name).name:45s} real {real:.4f}  shifted {shifted:.3f}")
    print(f"largest real share {worst:.4f}; smallest shifted share {lowest_shifted:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
