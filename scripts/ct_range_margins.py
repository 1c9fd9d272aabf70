"""The below-air share and the dense/air ratio of engine/ct_range.py on the shared CTs, as they are,
shifted by -1024 HU and negated.

    PYTHONPATH=UNetPlusPlus python scripts/ct_range_margins.py ../shared/data

Prints, per CT, the share of the strided sample below ``BELOW_AIR_HU`` beyond its single most
frequent value there (the padding), and the same for the volume shifted by -1024 HU (the
rescale intercept applied twice); then the largest share of the real volumes. Also the ratio of
the share above +500 HU to the share at or below -500 HU (``inverted_problem`` refuses above 1),
as they are and negated (a CT saved as its negative). The LIDC crops are taken every 8th
(``--every``; ``--every 1`` for all 814).
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import numpy as np
from UNetPlusPlusLib.engine.ct_range import BELOW_AIR_HU, DENSE_HU
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.sanity import channel_stats
from UNetPlusPlusLib.errors import UNetPlusPlusError


def below_air_share(sample: np.ndarray) -> float:
    below = sample[sample < BELOW_AIR_HU]
    if below.size == 0:
        return 0.0
    values, counts = np.unique(below, return_counts=True)
    return float(np.count_nonzero(below != values[np.argmax(counts)])) / float(sample.size)


def dense_air_ratio(sample: np.ndarray) -> float:
    dense = np.count_nonzero(sample >= DENSE_HU)
    return float(dense) / max(float(np.count_nonzero(sample <= -DENSE_HU)), 1.0)


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
    worst_ratio, lowest_negated = 0.0, float("inf")
    for name in dict.fromkeys(files):
        try:
            sample = channel_stats(read_volume([name]).array[0]).sample
        except UNetPlusPlusError as error:
            print(f"skipped {name}: {error}")
            continue
        real, shifted = below_air_share(sample), below_air_share(sample - 1024)
        worst, lowest_shifted = max(worst, real), min(lowest_shifted, shifted)
        ratio, negated = dense_air_ratio(sample), dense_air_ratio(-sample)
        worst_ratio, lowest_negated = max(worst_ratio, ratio), min(lowest_negated, negated)
        print(
            f"{Path(name).name:45s} real {real:.4f}  shifted {shifted:.3f}  dense/air {ratio:.3f}"
            f"  negated {negated:.2f}"
        )
    print(f"largest real share {worst:.4f}; smallest shifted share {lowest_shifted:.3f}")
    print(f"largest real dense/air {worst_ratio:.3f}; smallest negated {lowest_negated:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
