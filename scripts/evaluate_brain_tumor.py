"""Evaluate the brain-tumour model as a user runs it, in the BraTS regions.

The Predictor (as ``unetpp segment flair t1 t1ce t2 --task brain-tumor``) at the recommended
depth, on the held-out BraTS 2018 cases (``validation.cases`` in model.json), scored on the
input grid (1 mm) in the BraTS evaluation regions: whole tumour = {1, 2, 3}, tumour core =
{1, 3}, enhancing tumour = {3} (source labels {1, 2, 4}, {1, 4}, {4}). The BRATS 2012 case
(labels 1 = oedema, 2 = tumour core, not split into necrosis and enhancing tumour) is scored
where it maps: whole tumour = {1, 2} and tumour core = {2}. Prints Markdown.

    python scripts/evaluate_brain_tumor.py \\
        UNetPlusPlus/UNetPlusPlusLib/Resources/Models/brain-tumor ../shared/data/brain-tumor
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import UNetPlusPlusLib.engine.passive_wait  # noqa: F401  (before torch: no OpenMP busy-wait)
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.predictor import Predictor

CHANNELS = ("FLAIR", "T1", "T1ce", "T2")


def dice(prediction: np.ndarray, reference: np.ndarray) -> float:
    total = int(prediction.sum()) + int(reference.sum())
    return 1.0 if total == 0 else 2.0 * int((prediction & reference).sum()) / total


def regions(labels: np.ndarray, core: tuple, enhancing: tuple) -> dict:
    return {
        "WT": labels > 0,
        "TC": np.isin(labels, core),
        "ET": np.isin(labels, enhancing) if enhancing else None,
    }


def score(predictor: Predictor, paths: list[Path], reference: np.ndarray, ref_regions) -> tuple:
    volume = read_volume(paths, channel_names=CHANNELS)
    started = time.perf_counter()
    labels = predictor.segment(volume).labels.array
    seconds = time.perf_counter() - started
    predicted = regions(labels, (1, 3), (3,))
    out = {}
    for key, ref in ref_regions.items():
        out[key] = None if ref is None else dice(predicted[key], ref)
    return out, seconds


def main(argv: list[str]) -> int:
    package, data = Path(argv[0]), Path(argv[1])
    predictor = Predictor.from_manifest_path(package, device="cpu", threads=2)
    depth = predictor.manifest.recommended_depth
    print(
        "`scripts/evaluate_brain_tumor.py` runs the Predictor at the recommended depth "
        f"L{depth} on the held-out cases and scores the label map on the input grid (1 mm) in "
        "the BraTS regions: WT = whole tumour, TC = tumour core, ET = enhancing tumour.\n"
    )
    print("| case | WT Dice | TC Dice | ET Dice | seconds |")
    print("|---|---|---|---|---|")
    rows = []
    for case in predictor.manifest.validation.get("cases", []):
        folder = data / "brats2018" / case
        paths = [folder / f"{case}_{s}.nii.gz" for s in ("flair", "t1", "t1ce", "t2")]
        reference = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"{case}_seg.nii.gz")))
        result, seconds = score(predictor, paths, reference, regions(reference, (1, 4), (4,)))
        rows.append(result)
        print(
            f"| {case} | {result['WT']:.3f} | {result['TC']:.3f} | {result['ET']:.3f} | "
            f"{seconds:.1f} |",
            flush=True,
        )
    means = {k: np.mean([r[k] for r in rows]) for k in ("WT", "TC", "ET")}
    print(f"| **mean** | **{means['WT']:.3f}** | **{means['TC']:.3f}** | **{means['ET']:.3f}** | |")
    folder = data / "brats2012-HG0001"
    paths = [folder / f"BRATS_HG0001_{s}.mha" for s in ("FLAIR", "T1", "T1C", "T2")]
    if all(p.is_file() for p in paths):
        reference = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "BRATS_HG0001_truth.mha")))
        result, seconds = score(
            predictor, paths, reference, {"WT": reference > 0, "TC": reference == 2, "ET": None}
        )
        print(
            f"\nBRATS 2012 `HG0001` (other challenge, 1 mm, never seen in training), mapped "
            f"regions only: WT Dice {result['WT']:.3f}, TC Dice {result['TC']:.3f} "
            f"({seconds:.1f} s)."
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
