"""The below-air share and the dense/air ratio of engine/ct_range.py on the shared CTs, as they are,
shifted by -1024 HU and negated.

    PYTHONPATH=UNetPlusPlus python scripts/ct_range_margins.py ../shared/data

Prints, per CT, the share of the strided sample below ``BELOW_AIR_HU`` beyond its single most
frequent value there (the padding), and the same for the volume shifted by -1024 HU (the
rescale intercept applied twice); then the largest share of the real volumes. Also the ratio of
the share above +500 HU to the share at or below -500 HU (``inverted_problem`` refuses above 1),
as they are and negated (a CT saved as its negative). And, for what the share rule refuses,
the bone-band ratio (voxels in +150..+500 HU over voxels above +500 HU; passes at
``BAND_FACTOR``) of the central half and third of each field of view in-plane (little air) and
of each negated volume. The LIDC crops are taken every 8th (``--every``; ``--every 1`` for all
814).
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import numpy as np
from UNetPlusPlusLib.engine.ct_range import BAND_LOW_HU, BELOW_AIR_HU, DENSE_HU
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


def band_ratio(sample: np.ndarray) -> float:
    """+150..+500 HU voxels over voxels above +500 HU (inf when none are above)."""
    dense = np.count_nonzero(sample >= DENSE_HU)
    band = np.count_nonzero((sample >= BAND_LOW_HU) & (sample < DENSE_HU))
    return float(band) / float(dense) if dense else float("inf")


def central(array: np.ndarray, fraction: float) -> np.ndarray:
    """The central ``fraction`` of a (z, y, x) array in y and x (a small field of view)."""
    _, ny, nx = array.shape
    y0, x0 = int(ny * (1 - fraction) / 2), int(nx * (1 - fraction) / 2)
    return array[:, y0 : ny - y0, x0 : nx - x0]


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
    crops_band, negated_band = [], []
    for name in dict.fromkeys(files):
        try:
            array = read_volume([name]).array[0]
            sample = channel_stats(array).sample
        except UNetPlusPlusError as error:
            print(f"skipped {name}: {error}")
            continue
        real, shifted = below_air_share(sample), below_air_share(sample - 1024)
        worst, lowest_shifted = max(worst, real), min(lowest_shifted, shifted)
        ratio, negated = dense_air_ratio(sample), dense_air_ratio(-sample)
        worst_ratio, lowest_negated = max(worst_ratio, ratio), min(lowest_negated, negated)
        if negated > 1.0:
            negated_band.append(band_ratio(-sample))
        for fraction in (0.5, 1 / 3):
            crop = channel_stats(np.ascontiguousarray(central(array, fraction))).sample
            if dense_air_ratio(crop) > 1.0:  # refused by the share rule alone
                crops_band.append(band_ratio(crop))
        print(
            f"{Path(name).name:45s} real {real:.4f}  shifted {shifted:.3f}  dense/air {ratio:.3f}"
            f"  negated {negated:.2f}"
        )
    print(f"largest real share {worst:.4f}; smallest shifted share {lowest_shifted:.3f}")
    print(f"largest real dense/air {worst_ratio:.3f}; smallest negated {lowest_negated:.2f}")
    if crops_band:
        print(
            f"central crops refused by the share rule: {len(crops_band)}, bone-band ratio "
            f"{min(crops_band):.2f}..{max(crops_band):.2f}"
        )
    if negated_band:
        print(
            f"negated volumes refused by the share rule: {len(negated_band)}, bone-band ratio "
            f"at most {max(negated_band):.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
