#!/usr/bin/env python3
"""Margins of the image-content match (training/case_content.py) on the shared data.

For each task's dataset description (the shipped models' ``--dataset-json``): every case is
read as a training run reads it (its channels by ``read_volume``) and printed
(``volume_print``). Over every pair of cases of different patients (the description's
``patient_regex``), it counts the shared image prints, slice prints and patch prints: a false
match is a pair at or above the rule (the same image, one slice, or MIN_SHARED_PATCHES patch
prints). Then, for each case of at least 10 slices, an in-plane crop of a quarter of the slice
area (half of each side) over 10 slices, at the centre and at a seeded random place, and the
centre crop mirrored left-right, are printed and matched against the case's record: the
smallest count of shared patch prints is the margin of the rule on the catching side.

Usage::

    PYTHONPATH=UNetPlusPlus python scripts/content_match_margins.py [--data ../shared/data]
        [--min-distinct N] [TASK ...]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "UNetPlusPlus"))

from UNetPlusPlusLib.engine.image_read import read_volume  # noqa: E402
from UNetPlusPlusLib.resources import builtin_datasets_dir  # noqa: E402
from UNetPlusPlusLib.training import case_patches  # noqa: E402
from UNetPlusPlusLib.training.case_content import (  # noqa: E402
    MIN_SHARED_PATCHES,
    ContentIndex,
    canonical_axes,
    case_print,
)
from UNetPlusPlusLib.training.dataset import find_cases  # noqa: E402
from UNetPlusPlusLib.training.dataset_json import load_dataset_json  # noqa: E402

DESCRIPTIONS = {
    "liver": "liver-lits.json",
    "brain-tumor": "brats2018.json",
    "lung-nodule": "lidc-vois.json",
}


def canonical(array: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """``array`` (C, z, y, x) in the canonical axis order the prints use (a view)."""
    axes = canonical_axes(np.asarray(direction, float))
    if axes is None:
        return array
    order, flips = axes
    view = np.transpose(array, (0, *(a + 1 for a in order)))
    for axis in flips:
        view = np.flip(view, axis + 1)
    return view


def crops(array: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Crops of a quarter of the slice area over 10 slices of ``array`` (C, z, y, x)."""
    _, depth, rows, cols = array.shape
    h, w, z = rows // 2, cols // 2, (depth - 10) // 2
    centre = array[:, z : z + 10, rows // 4 : rows // 4 + h, cols // 4 : cols // 4 + w]
    top, left = rng.integers(0, rows - h + 1), rng.integers(0, cols - w + 1)
    first = rng.integers(0, depth - 10 + 1)
    placed = array[:, first : first + 10, top : top + h, left : left + w]
    return {"centre": centre, "random place": placed, "centre mirrored": centre[..., ::-1]}


def task_margins(task: str, data: Path, rng: np.random.Generator) -> None:
    description = builtin_datasets_dir() / DESCRIPTIONS[task]
    folder = json.loads(description.read_text(encoding="utf-8"))["notes"]["data_dir"]
    dataset = load_dataset_json(description, data / folder)
    names = [c.name for c in dataset.channels]
    prints, patients, caught, tried, missed = {}, {}, Counter(), 0, []
    smallest: dict[str, tuple[int, str]] = {}
    for case in find_cases(dataset):
        volume = read_volume(case.images, names)
        found = case_print(volume.array, volume.direction)
        prints[case.case_id], patients[case.case_id] = found, case.patient_id
        view = canonical(volume.array, volume.direction)
        if view.shape[1] < 10:
            continue
        tried += 1
        index = ContentIndex({}, {}, {case.case_id: found.stored().patches_text()})
        for kind, crop in crops(view, rng).items():
            counts = Counter(p for p in case_print(crop, np.eye(3)).patches if p in index.by_patch)
            shared = sum(counts.values())
            caught[kind] += shared >= MIN_SHARED_PATCHES
            if shared < MIN_SHARED_PATCHES:
                body = float(np.mean((crop != view.min(axis=(1, 2, 3), keepdims=True)).any(0)))
                missed.append(f"{case.case_id} {kind} ({shared}; {100 * body:.0f} %)")
            if kind not in smallest or shared < smallest[kind][0]:
                smallest[kind] = (shared, case.case_id)
    sizes = [len(p.stored().patches_text()) for p in prints.values()]
    print(
        f"{task}: {len(prints)} cases of {len(set(patients.values()))} patients; patch prints "
        f"per case {min(len(p.patches) for p in prints.values())}-"
        f"{max(len(p.patches) for p in prints.values())} (cache), in model.json "
        f"{min(len(p.stored().patches) for p in prints.values())}-"
        f"{max(len(p.stored().patches) for p in prints.values())}: "
        f"{sum(sizes) / 1000:.1f} kB of hex in all (largest case {max(sizes) / 1000:.1f} kB)"
    )
    pairs = same_images = most_slices = most_patches = false = 0
    worst = ""
    for a, b in itertools.combinations(sorted(prints), 2):
        if patients[a] == patients[b]:
            continue
        pairs += 1
        pa, pb = prints[a], prints[b]
        slices = len(set(pa.slices) & set(pb.slices))
        patches = len(set(pa.patches) & set(pb.patches))
        same_images += pa.image == pb.image
        most_slices = max(most_slices, slices)
        if patches > most_patches:
            most_patches, worst = patches, f" ({a}, {b})"
        false += pa.image == pb.image or slices > 0 or patches >= MIN_SHARED_PATCHES
    print(
        f"  {pairs} pairs of different patients: {same_images} same image, most shared slice "
        f"prints {most_slices}, most shared patch prints {most_patches}{worst} (whole "
        f"sketches); false matches "
        f"{false} (rule: >= {MIN_SHARED_PATCHES} patch prints)"
    )
    for kind, (shared, case_id) in smallest.items():
        print(
            f"  crop 1/4 area x 10 slices, {kind}: caught {caught[kind]} of {tried}; fewest shared "
            f"patch "
            f"prints {shared} ({case_id})"
        )
    if missed:
        print(f"  missed (shared prints; voxels above the case's minimum): {', '.join(missed)}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="*", default=list(DESCRIPTIONS))
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--min-distinct", type=int, default=case_patches.MIN_DISTINCT)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    case_patches.MIN_DISTINCT = args.min_distinct
    print(
        f"patch {case_patches.PATCH}, {case_patches.SAMPLES_PER_SLICE} positions per slice (at "
        f"most 1 in {case_patches.SMALLEST_RATE}), sketch "
        f"{case_patches.SKETCH}, min distinct values {case_patches.MIN_DISTINCT}"
    )
    rng = np.random.default_rng(args.seed)
    for task in args.tasks:
        task_margins(task, args.data, rng)
    return 0


if __name__ == "__main__":
    sys.exit(main())
