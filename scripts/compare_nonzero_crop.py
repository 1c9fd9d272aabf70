"""Labels with and without the non-zero crop (engine/nonzero_crop.py) on the brain-tumour cases.

For each held-out BraTS 2018 case (``validation.cases`` of the model) and BRATS 2012 HG0001,
at each depth: the share of input voxels whose label is the same both ways, and WT / TC / ET
Dice against the expert labels both ways (regions as in scripts/evaluate_brain_tumor.py).
Prints Markdown; ``--json PATH`` also writes the figures.

    python scripts/compare_nonzero_crop.py \\
        UNetPlusPlus/UNetPlusPlusLib/Resources/Models/brain-tumor ../shared/data/brain-tumor \\
        --depths 1 2 4
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import UNetPlusPlusLib.engine.passive_wait  # noqa: F401  (before torch: no OpenMP busy-wait)
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.predictor import Predictor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate_brain_tumor import CHANNELS, dice, regions  # noqa: E402


def cases(predictor: Predictor, data: Path) -> list[tuple[str, list[Path], dict]]:
    """(name, channel paths, reference regions) for every case found under ``data``."""
    out = []
    for case in predictor.manifest.validation.get("cases", []):
        folder = data / "brats2018" / case
        paths = [folder / f"{case}_{s}.nii.gz" for s in ("flair", "t1", "t1ce", "t2")]
        reference = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"{case}_seg.nii.gz")))
        out.append((case, paths, regions(reference, (1, 4), (4,))))
    folder = data / "brats2012-HG0001"
    paths = [folder / f"BRATS_HG0001_{s}.mha" for s in ("FLAIR", "T1", "T1C", "T2")]
    if all(p.is_file() for p in paths):
        reference = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "BRATS_HG0001_truth.mha")))
        out.append(("HG0001", paths, {"WT": reference > 0, "TC": reference == 2, "ET": None}))
    return out


def run(predictor: Predictor, volume, depth: int, crop: bool) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    labels = predictor.segment(volume, depth=depth, crop_nonzero=crop).labels.array
    return labels, time.perf_counter() - started


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--depths", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    predictor = Predictor.from_manifest_path(args.package, device="cpu", threads=2)
    print("| case | depth | same label | WT Dice off / on | TC Dice off / on | ET Dice off / on "
          "| seconds off / on |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    rows = []
    for case, paths, reference in cases(predictor, args.data):
        volume = read_volume(paths, channel_names=CHANNELS)
        for depth in args.depths:
            off, seconds_off = run(predictor, volume, depth, False)
            on, seconds_on = run(predictor, volume, depth, True)
            row = {"case": case, "depth": depth, "agreement": float((off == on).mean()),
                   "differing_voxels": int((off != on).sum()),
                   "seconds": [seconds_off, seconds_on]}  # fmt: skip
            cells = []
            for key in ("WT", "TC", "ET"):
                if reference[key] is None:
                    row[key] = None
                    cells.append("-")
                    continue
                both = [dice(regions(x, (1, 3), (3,))[key], reference[key]) for x in (off, on)]
                row[key] = both
                cells.append(f"{both[0]:.4f} / {both[1]:.4f}")
            rows.append(row)
            print(f"| {case} | L{depth} | {100 * row['agreement']:.4f} % "
                  f"({row['differing_voxels']} voxels) | " + " | ".join(cells)
                  + f" | {seconds_off:.1f} / {seconds_on:.1f} |", flush=True)  # fmt: skip
    changes = [abs(r[k][1] - r[k][0]) for r in rows for k in ("WT", "TC", "ET") if r[k]]
    print(f"\nLargest Dice change: {max(changes):.4f}.")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
