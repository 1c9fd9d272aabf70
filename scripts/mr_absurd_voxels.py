"""Absurd MR voxels against the brain-tumour result (engine/mr_robust.py): whole-tumour,
tumour-core and oedema volumes of shared BraTS 2018 cases as given and with 1, 10 and 100
voxels of the T2 (at non-zero voxels drawn with a fixed seed) set to 3e38, and each volume's
change from the clean result in percent. ``--margins`` instead prints, over the 76 shared
BraTS 2018 and BRATS 2012 channels, how far (in 0.5-99.5 percentile ranges) the largest and the
smallest non-zero voxel lie beyond those percentiles: the margin of ``mr_robust.RANGE_FACTOR``.

    python scripts/mr_absurd_voxels.py [--data ../shared/data] [--cases A B ...] [--counts 1 10 100]
    python scripts/mr_absurd_voxels.py --margins [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.mr_robust import PERCENTILES, SAMPLE_SIZE
from UNetPlusPlusLib.engine.predictor import Predictor
from UNetPlusPlusLib.engine.registry import find_model

CASES = ("Brats18_2013_11_1", "Brats18_CBICA_ALU_1", "Brats18_TCIA02_135_1")
SEQUENCES = ("flair", "t1", "t1ce", "t2")
ABSURD = np.float32(3e38)


def volumes_ml(labels: np.ndarray, spacing) -> dict[str, float]:
    """Whole tumour (any label), tumour core (1 necrotic / non-enhancing + 3 enhancing) and
    oedema (2) in ml."""
    voxel = float(np.prod(spacing)) / 1000.0
    return {
        "WT": float(np.count_nonzero(labels)) * voxel,
        "TC": float(np.count_nonzero((labels == 1) | (labels == 3))) * voxel,
        "oedema": float(np.count_nonzero(labels == 2)) * voxel,
    }


def with_absurd(volume, channel: int, count: int, seed: int = 0):
    """A copy of ``volume`` with ``count`` non-zero voxels of ``channel`` set to 3e38."""
    array = volume.array.copy()
    inside = np.flatnonzero(array[channel])
    chosen = np.random.default_rng(seed).choice(inside, size=count, replace=False)
    array[channel].reshape(-1)[chosen] = ABSURD
    return volume.with_array(array)


def margins(data: Path) -> None:
    """Print the largest distance, in percentile ranges, of a clean channel's extreme voxels."""
    tumour = data / "brain-tumor"
    paths = sorted((tumour / "brats2018").glob("Brats18_*/*.nii.gz"))
    paths = [p for p in paths if not p.name.endswith("_seg.nii.gz")]
    paths += sorted(p for p in (tumour / "brats2012-HG0001").glob("*.mha") if "truth" not in p.name)
    above = below = 0.0
    for path in paths:
        array = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
        values = array[array != 0].astype(np.float64)
        step = max(1, values.size // SAMPLE_SIZE)
        low, high = np.percentile(values[::step], PERCENTILES)
        above = max(above, (values.max() - high) / (high - low))
        below = max(below, (low - values.min()) / (high - low))
    print(
        f"{len(paths)} channels: largest voxel at most {above:.2f} ranges above the "
        f"{PERCENTILES[1]}th percentile, smallest at most {below:.2f} below the {PERCENTILES[0]}th"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared/data")
    parser.add_argument("--cases", nargs="+", default=list(CASES))
    parser.add_argument("--counts", nargs="+", type=int, default=[1, 10, 100])
    parser.add_argument("--margins", action="store_true", help="the clean channels' margins")
    args = parser.parse_args()
    if args.margins:
        return margins(args.data)
    manifest = find_model("brain-tumor")
    names = [c.name for c in manifest.channels]
    threads = int(os.environ.get("THREADS", "2"))
    predictor = Predictor.from_manifest_path(manifest.path, device="cpu", threads=threads)
    print(f"{'case':22s} {'voxels':>6s} {'WT ml':>8s} {'TC ml':>8s} {'oedema ml':>9s}  change %")
    for case in args.cases:
        folder = args.data / "brain-tumor" / "brats2018" / case
        volume = read_volume([folder / f"{case}_{s}.nii.gz" for s in SEQUENCES], names)
        clean = None
        for count in [0, *args.counts]:
            given = with_absurd(volume, names.index("T2"), count) if count else volume
            labels = predictor.segment(given).labels
            found = volumes_ml(labels.array, labels.spacing)
            clean = clean or found
            change = {
                k: 100 * (v - clean[k]) / clean[k] if clean[k] else 0 for k, v in found.items()
            }
            print(
                f"{case:22s} {count:6d} {found['WT']:8.2f} {found['TC']:8.2f} "
                f"{found['oedema']:9.2f}"
                f"  {' / '.join(f'{v:+.2f}' for v in change.values())}",
                flush=True,
            )


if __name__ == "__main__":
    main()
