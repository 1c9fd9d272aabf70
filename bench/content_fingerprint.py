#!/usr/bin/env python3
"""What the image-content fingerprint (training/case_content.py) adds to a training run's
per-case preparation, on a BraTS 2018 case (4 x 240x240x155) and a LiTS CT (512x512x65).

Per round, interleaved: the dataset-fingerprint step as before (read_case + case_fingerprint),
the content prints alone (volume_print: image and slice prints, on the case already read), and
the preprocessing of the case (read_case + preprocess_case at the shipped model's spacing),
which a first run does anyway. Prints the median seconds of each and the prints' share of the
case's first-run work.

Usage: python bench/content_fingerprint.py [--rounds N] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "UNetPlusPlus"))

from UNetPlusPlusLib.resources import builtin_datasets_dir  # noqa: E402
from UNetPlusPlusLib.training.case_content import volume_print  # noqa: E402
from UNetPlusPlusLib.training.cases import read_case  # noqa: E402
from UNetPlusPlusLib.training.dataset import find_cases  # noqa: E402
from UNetPlusPlusLib.training.dataset_json import load_dataset_json  # noqa: E402
from UNetPlusPlusLib.training.fingerprint import case_fingerprint  # noqa: E402
from UNetPlusPlusLib.training.preprocess import preprocess_case  # noqa: E402

#: (label, dataset json, data folder under DATA, case id, spacing of the shipped model, mm)
CASES = [
    ("BraTS 2018", "brats2018.json", "brain-tumor/brats2018", "Brats18_2013_11_1", (2.0,) * 3),
    ("LiTS CT", "liver-lits.json", "liver", "liver_0", (3.0,) * 3),
]


def _round(case, dataset, spacing, normalizations) -> tuple[dict, str]:
    """One round's seconds per step (see the module doc) and the case's fingerprint."""
    start = time.perf_counter()
    data = read_case(case, dataset)
    case_fingerprint(case.case_id, data.image.array, data.labels, data.image.spacing, 1)
    hashed = time.perf_counter()
    found = volume_print(data.image)
    preprocessed = time.perf_counter()
    preprocess_case(read_case(case, dataset), spacing, normalizations)
    end = time.perf_counter()
    steps = {"fingerprint step": hashed - start, "hash": preprocessed - hashed}
    return {**steps, "preprocess": end - preprocessed}, found.image


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args(argv)
    for label, description, folder, case_id, spacing in CASES:
        dataset = load_dataset_json(builtin_datasets_dir() / description, args.data / folder)
        case = next(c for c in find_cases(dataset) if c.case_id == case_id)
        normalizations = [c.normalization for c in dataset.channels]
        times: dict[str, list[float]] = {"fingerprint step": [], "hash": [], "preprocess": []}
        for _ in range(args.rounds):
            seconds, found = _round(case, dataset, spacing, normalizations)
            for step, value in seconds.items():
                times[step].append(value)
        median = {k: statistics.median(v) for k, v in times.items()}
        first_run = median["fingerprint step"] + median["preprocess"]
        print(
            f"{label} {case_id}: fingerprint step {median['fingerprint step']:.3f} s, "
            f"+ hash {median['hash']:.3f} s, preprocess {median['preprocess']:.3f} s; hash = "
            f"{100 * median['hash'] / first_run:.1f} % of the case's first-run work "
            f"(median of {args.rounds}; {found})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
