"""Margins of the MR extreme-voxel check (engine/mr_outliers.py) on the shared BraTS channels.

For every channel of the 18 BraTS 2018 cases and the BRATS 2012 case, prints the largest ratio
of the non-zero voxels' standard deviation over that of the same voxels clipped to each pair of
percentiles of ``CLIP_LEVELS``, and the same with a hot block (a cube of ``--share`` of the
non-zero voxels set to 1e5) in each case's first channel.

    python scripts/mr_outlier_margins.py [--data ../shared/data] [--share 0.002]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from UNetPlusPlusLib.engine.mr_outliers import CLIP_LEVELS, std_ratios


def channels(data: Path) -> list[Path]:
    tumour = data / "brain-tumor"
    paths = sorted((tumour / "brats2018").glob("Brats18_*/*.nii.gz"))
    paths = [p for p in paths if not p.name.endswith("_seg.nii.gz")]
    return paths + sorted(
        p for p in (tumour / "brats2012-HG0001").glob("*.mha") if "truth" not in p.name
    )


def hot_block(array: np.ndarray, share: float) -> np.ndarray:
    inside = np.argwhere(array != 0)
    z, y, x = inside[len(inside) // 3]
    side = int(round((share * len(inside)) ** (1 / 3))) + 1
    hot = array.astype(np.float32).copy()
    hot[z : z + side, y : y + side, x : x + side] = 1e5
    return hot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    parser.add_argument("--share", type=float, default=0.002)
    args = parser.parse_args()
    worst = np.zeros(len(CLIP_LEVELS))
    hot_least = np.full(len(CLIP_LEVELS), np.inf)
    paths = channels(args.data)
    for path in paths:
        array = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
        ratios = [r[0] for r in std_ratios(array)]
        worst = np.maximum(worst, ratios)
        if "flair" in path.name.lower():
            hot = hot_block(array, args.share)
            hot_least = np.minimum(hot_least, [r[0] for r in std_ratios(hot)])
        print(path.name, " ".join(f"{r:.3f}" for r in ratios), flush=True)
    for level, w, h in zip(CLIP_LEVELS, worst, hot_least):
        print(
            f"clip {level}: largest ratio {w:.3f} over {len(paths)} channels; "
            f"hot block of {args.share:.2%}: smallest {h:.3f}"
        )


if __name__ == "__main__":
    main()
