"""Evaluate the liver model as a user runs it: the Predictor on the held-out example CT.

Unlike the trainer's validation (model grid, no post-processing), this scores the label map on
the input grid after the manifest's post-processing (largest connected component), against the
TotalSegmentator liver label of the example CT (model output, not expert ground truth). Prints a
Markdown table, one row per depth.

    python scripts/evaluate_liver.py UNetPlusPlus/UNetPlusPlusLib/Resources/Models/liver [DEPTH ...]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import SimpleITK as sitk
from UNetPlusPlusLib.engine.predictor import Predictor
from UNetPlusPlusLib.engine.volume import read_volume

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_CT = ROOT / "Resources" / "Examples" / "example_ct.nii.gz"
EXAMPLE_LIVER = ROOT / "Testing" / "fixtures" / "example_ct_liver.nii.gz"


def main(argv: list[str]) -> int:
    package = Path(argv[0])
    depths = argv[1:] or ["1", "2", "3", "4", "ensemble"]
    reference = sitk.GetArrayFromImage(sitk.ReadImage(str(EXAMPLE_LIVER))) > 0
    predictor = Predictor.from_manifest_path(package, device="cpu", threads=2)
    volume = read_volume([EXAMPLE_CT])
    print(
        "`scripts/evaluate_liver.py` runs the Predictor (as `unetpp segment` does) on the held-out"
        " example CT and scores the label map on the input grid, after the largest-component"
        " post-processing, against its TotalSegmentator liver label (model output, not expert).\n"
    )
    print("| depth | liver Dice (input grid, largest component) | volume ml | seconds |")
    print("|---|---|---|---|")
    voxel_ml = float(volume.spacing[0] * volume.spacing[1] * volume.spacing[2]) / 1000.0
    for depth in depths:
        started = time.perf_counter()
        result = predictor.segment(volume, depth=int(depth) if depth.isdigit() else depth)
        seconds = time.perf_counter() - started
        mask = result.labels.array == 1
        dice = 2.0 * int((mask & reference).sum()) / (int(mask.sum()) + int(reference.sum()))
        tag = f"L{depth}" if depth.isdigit() else depth
        print(f"| {tag} | {dice:.3f} | {mask.sum() * voxel_ml:.0f} | {seconds:.1f} |", flush=True)
    print(f"\nReference (TotalSegmentator output): {reference.sum() * voxel_ml:.0f} ml.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
