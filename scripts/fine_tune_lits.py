"""Does a short fine-tune help? The shipped liver model, fine-tuned on one LiTS volume.

Issue 12: fine-tune ``liver`` (``unetpp train --init liver``) for a short ``--time-budget`` on
LiTS volume TRAIN (expert labels, tumour counted as liver), then score the parent and the
fine-tuned model as a user runs them (Predictor, input grid, the manifest's post-processing,
the recommended depth) on the held-out LiTS volume and on the demo CT the parent was validated on
(TotalSegmentator liver label: model output, not expert). Prints a Markdown table.

    OMP_WAIT_POLICY=PASSIVE python scripts/fine_tune_lits.py OUT [--train liver_0] [--budget 300]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import UNetPlusPlusLib.engine.passive_wait  # noqa: F401  (before torch: no OpenMP busy-wait)
from UNetPlusPlusLib.engine import registry
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.manifest import ModelManifest
from UNetPlusPlusLib.engine.predictor import Predictor

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "liver"
LITS = DATA / "lits-partial"
DEMO_CT = ROOT / "Resources" / "Examples" / "example_ct.nii.gz"
DEMO_LIVER = ROOT / "Testing" / "fixtures" / "example_ct_liver.nii.gz"


def dataset_json(train: str) -> dict:
    """One LiTS volume; no postprocess, codes or prompt: they come from the parent."""
    return {
        "format_version": 1,
        "name": f"lits-{train}",
        "task": "liver",
        "description": f"LiTS {train} (first 65 slices), expert labels, tumour counted as liver.",
        "channels": [{"name": "CT", "modality": "CT", "normalization": {"kind": "ct"}}],
        "labels": [{"name": "liver"}],
        "sources": [
            {
                "name": f"lits-{train}",
                "images": [f"lits-partial/{train}_ct.nii.gz"],
                "label": f"lits-partial/{train}_label.nii.gz",
                "label_map": {"liver": [1, 2]},
                "label_source": "expert (LiTS challenge reference)",
            }
        ],
    }


def score(manifest: ModelManifest, image: Path, label: Path, values, threads: int) -> float:
    """Liver Dice on the input grid after the manifest's post-processing (recommended depth)."""
    reference = np.isin(sitk.GetArrayFromImage(sitk.ReadImage(str(label))), values)
    result = Predictor(manifest, device="cpu", threads=threads).segment(read_volume([image]))
    found = result.labels.array == 1
    return float(2 * (found & reference).sum() / max(found.sum() + reference.sum(), 1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--train", default="liver_0", choices=["liver_0", "liver_1"])
    parser.add_argument("--budget", default="300", help="--time-budget of the fine-tune")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    test = "liver_1" if args.train == "liver_0" else "liver_0"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    spec = args.out_dir / f"lits-{args.train}.json"
    spec.write_text(json.dumps(dataset_json(args.train), indent=2))
    out = args.out_dir / f"liver-ft-{args.train}"
    command = [sys.executable, "-m", "UNetPlusPlusLib.cli", "train", str(DATA), "-o", str(out)]
    command += ["--dataset-json", str(spec), "--init", "liver", "--time-budget", args.budget]
    command += ["--threads", str(args.threads), "--no-progress", "--overwrite"]  # a rerun replaces
    started = time.monotonic()
    subprocess.run(command, check=True)
    minutes = (time.monotonic() - started) / 60
    parent = registry.find_model("liver")
    child = ModelManifest.load(out / "model.json")
    cases = [
        (f"LiTS {test} (held out, expert)", LITS / f"{test}_ct.nii.gz",
         LITS / f"{test}_label.nii.gz", (1, 2)),
        (f"LiTS {args.train} (fine-tune case)", LITS / f"{args.train}_ct.nii.gz",
         LITS / f"{args.train}_label.nii.gz", (1, 2)),
        ("demo CT (parent's validation case)", DEMO_CT, DEMO_LIVER, (1,)),
    ]  # fmt: skip
    print(f"\n`{' '.join(command[1:])}`: {minutes:.1f} min wall clock\n")
    print(f"| case | {parent.name} L{parent.recommended_depth} | "
          f"{child.name} L{child.recommended_depth} |")  # fmt: skip
    print("|---|---|---|")
    for name, image, label, values in cases:
        before = score(parent, image, label, values, args.threads)
        after = score(child, image, label, values, args.threads)
        print(f"| {name} | {before:.3f} | {after:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
