"""Evaluate the liver model as a user runs it: the Predictor on the held-out liver CTs.

Unlike the trainer's validation (model grid, no post-processing), this scores the label map on
the input grid after the manifest's post-processing (largest connected component). Cases (both
in the model's validation split, never trained on):

- ``example-ct``: the demo CT, against its TotalSegmentator liver label (model output, not
  expert ground truth);
- ``lits-1``: the first 65 slices of LiTS training volume 1 (../shared/data/liver/lits-partial),
  against the LiTS expert reference (liver and tumour both count as liver). Skipped without the
  shared data.

Prints a Markdown table, one row per case and depth: Dice, predicted and reference volume (ml),
the volume error (%) and the seconds.

    python scripts/evaluate_liver.py UNetPlusPlus/UNetPlusPlusLib/Resources/Models/liver [DEPTH ...]
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

ROOT = Path(__file__).resolve().parents[1]
LITS = ROOT.parent / "shared" / "data" / "liver" / "lits-partial"
CASES = {
    "example-ct": (
        ROOT / "Resources" / "Examples" / "example_ct.nii.gz",
        ROOT / "Testing" / "fixtures" / "example_ct_liver.nii.gz",
        "TotalSegmentator output",
    ),
    "lits-1": (LITS / "liver_1_ct.nii.gz", LITS / "liver_1_label.nii.gz", "LiTS expert"),
}


def main(argv: list[str]) -> int:
    package = Path(argv[0])
    depths = argv[1:] or ["1", "2", "3", "4", "ensemble"]
    predictor = Predictor.from_manifest_path(package, device="cpu", threads=2)
    print(
        "`scripts/evaluate_liver.py` runs the Predictor (as `unetpp segment` does) on the held-out"
        " liver CTs and scores the label map on the input grid, after the largest-component"
        " post-processing: the demo CT against its TotalSegmentator liver label (model output,"
        " not expert) and the first 65 slices of LiTS volume 1 against the LiTS expert reference"
        " (tumour counted as liver).\n"
    )
    print(
        "| case (reference) | depth | liver Dice | volume ml | reference ml | volume error "
        "| seconds |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, (image, label, source) in CASES.items():
        if not (image.is_file() and label.is_file()):
            print(f"| {name} | - | skipped: {image.name} not found | | | | |")
            continue
        reference = sitk.GetArrayFromImage(sitk.ReadImage(str(label))) > 0
        volume = read_volume([image])
        voxel_ml = float(np.prod(volume.spacing)) / 1000.0
        reference_ml = reference.sum() * voxel_ml
        for depth in depths:
            started = time.perf_counter()
            result = predictor.segment(volume, depth=int(depth) if depth.isdigit() else depth)
            seconds = time.perf_counter() - started
            mask = result.labels.array == 1
            dice = 2.0 * int((mask & reference).sum()) / (int(mask.sum()) + int(reference.sum()))
            predicted_ml = mask.sum() * voxel_ml
            error = 100.0 * (predicted_ml - reference_ml) / reference_ml
            tag = f"L{depth}" if depth.isdigit() else depth
            print(
                f"| {name} ({source}) | {tag} | {dice:.3f} | {predicted_ml:.0f} | "
                f"{reference_ml:.0f} | {error:+.1f} % | {seconds:.1f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
