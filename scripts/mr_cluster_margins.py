"""Margins of the MR absurd-cluster refusal (engine/mr_cluster.py) on the shared MR channels.

Prints, for every non-zero MR channel of the shared data (the 18 BraTS 2018 cases and the
BRATS 2012 case, 4 channels each, and the TotalSegmentator example MR), the largest empty-gap
ratio (``mr_cluster.gap_ratios`` of ``cluster_values``: the strided sample completed by the
voxels beyond its extremes that could lie beyond an empty gap, against ``GAP_FACTOR``) and
whether anything is found (or warned: ``channel_warning``). Then
the detection table: each case's T2 (and the liver MR) with a share of its non-zero voxels
(random, seed 0) set to each value; per share and value, how many channels are refused
(a cluster above ``mr_cluster.MAX_SET_APART_SHARE``), clipped and warned with every
contaminated voxel set apart by mr_robust ("clipped"), only warned (``mr_outliers``: not all
set apart) or passed without a word ("silent"); ``--counts``: the same with a handful of
voxels (a count, not a share).

    python scripts/mr_cluster_margins.py [--data ../shared/data] [--shares 0.1 0.5 ...]
        [--counts 1 3 10 ...] [--values 1e4 -1e4 ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from UNetPlusPlusLib.engine.mr_cluster import GAP_FACTOR, gap_ratios, separated_cluster

try:
    from UNetPlusPlusLib.engine.mr_cluster import cluster_values
except ImportError:  # the code before session 15: the strided sample alone
    from UNetPlusPlusLib.engine.mr_cluster import sorted_sample as cluster_values
from UNetPlusPlusLib.engine.mr_outliers import channel_warning
from UNetPlusPlusLib.engine.mr_robust import absurd_voxels
from UNetPlusPlusLib.errors import UNetPlusPlusError

SHARES = (0.1, 0.2, 0.3, 0.4, 0.5, 1, 2, 5, 10, 20, 50)  # percent of the non-zero voxels
VALUES = (1e4, 1e6, 1e9, 3e38, -1e4, -1e9)


def channels(data: Path) -> list[Path]:
    """Every shared MR channel: BraTS 2018, BRATS 2012 HG0001, the TotalSegmentator MR."""
    tumour = data / "brain-tumor"
    paths = sorted((tumour / "brats2018").glob("Brats18_*/*.nii.gz"))
    paths = [p for p in paths if not p.name.endswith("_seg.nii.gz")]
    paths += sorted(p for p in (tumour / "brats2012-HG0001").glob("*.mha") if "truth" not in p.name)
    return paths + [data / "liver/totalsegmentator-examples/example_mr_sm.nii.gz"]


def contaminated(array: np.ndarray, share: float, value: float, seed: int = 0, count: int = 0):
    """A float32 copy with ``share`` (percent) of the non-zero voxels (or ``count`` of them)
    set to ``value``, and their count."""
    out = array.astype(np.float32)
    inside = np.flatnonzero(out)
    count = count or max(1, int(round(share / 100 * inside.size)))
    chosen = np.random.default_rng(seed).choice(inside, size=count, replace=False)
    out.reshape(-1)[chosen] = np.float32(value)
    return out, count


def outcome(array: np.ndarray, count: int) -> str:
    """'refused'; 'clipped' (every contaminated voxel set apart by mr_robust, and warned);
    'warned' (not all set apart, but mr_outliers warns); or 'silent'."""
    try:
        warning = channel_warning("T2", array)
    except UNetPlusPlusError:
        return "refused"
    if len(absurd_voxels(array)[0]) >= count:
        return "clipped"
    return "warned" if warning else "silent"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    parser.add_argument("--shares", nargs="+", type=float, default=list(SHARES))
    parser.add_argument("--values", nargs="+", type=float, default=list(VALUES))
    parser.add_argument("--counts", nargs="*", type=int, default=[])
    args = parser.parse_args()
    paths, worst, found, warned = channels(args.data), (0.0, ""), 0, 0
    contaminate = []
    for path in paths:
        array = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
        ratio = gap_ratios(cluster_values(array))[0]
        found += separated_cluster(array) is not None
        warned += channel_warning(path.name, array) is not None
        worst = max(worst, (ratio, path.name))
        if "t2" in path.name.lower() or "example_mr" in path.name:
            contaminate.append(array)
    print(
        f"clean: {len(paths)} channels, {found} with a separated cluster, {warned} warned; "
        "largest gap ratio "
        f"{worst[0]:.2f} ({worst[1]}), limit {GAP_FACTOR:g} ({GAP_FACTOR / worst[0]:.1f}x margin)"
    )
    print(f"{len(contaminate)} channels contaminated; refused / clipped / warned / silent")
    print("share % | " + " | ".join(f"{v:g}" for v in args.values))
    for share in args.shares:
        row = []
        for value in args.values:
            counts = {"refused": 0, "clipped": 0, "warned": 0, "silent": 0}
            for array in contaminate:
                counts[outcome(*contaminated(array, share, value))] += 1
            row.append("/".join(str(n) for n in counts.values()))
        print(f"{share:g} | " + " | ".join(row), flush=True)
    for count in args.counts:
        row = []
        for value in args.values:
            counts = {"refused": 0, "clipped": 0, "warned": 0, "silent": 0}
            for array in contaminate:
                counts[outcome(*contaminated(array, 0.0, value, count=count))] += 1
            row.append("/".join(str(n) for n in counts.values()))
        print(f"{count} voxel(s) | " + " | ".join(row), flush=True)


if __name__ == "__main__":
    main()
