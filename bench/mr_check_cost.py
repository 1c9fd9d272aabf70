#!/usr/bin/env python3
"""The MR and dataset checks before session 14's speed-up (``benchlib/mr_former.py``) and now:
their decisions on every shared MR channel, and their CPU, in one process.

Decisions: on each shared MR channel (the 76 BraTS 2018 / BRATS 2012 channels and the liver
MR), ``mr_outliers.std_ratios`` at the three clip levels (the largest relative difference, and
whether every number is bit for bit the same), ``channel_warning`` as given, with one voxel at
1e6, with a 0.2 % block at 1e5 and with a 0.3 % block at 8 ranges above the 99.5th percentile
(plausible, so the ratio warning speaks), and the label-map test as MR and as CT: the same text
or the same refusal? Then ``check_model_input`` of the brain-tumour model on each BraTS case as
given, with a hot FLAIR voxel and with FLAIR given twice, and ``check_dataset`` on the shipped
``brats2018.json`` (the first ``--dataset-cases``).

Cost: CPU seconds (``time.process_time``) of ``check_model_input``, ``outlier_warnings`` and
``check_volume`` over the first ``--cases`` BraTS cases (decoded once) and of
``check_dataset`` over the first ``--cost-dataset-cases`` cases (reading included), former and
now interleaved (order alternated per round); the medians and the median of the per-round
ratios now / former, with the load average.

Usage: python bench/mr_check_cost.py [--rounds 5] [--cases 3] [--dataset-cases 18]
       [--cost-dataset-cases 3] [--no-decisions] [--no-cost]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
from benchlib import interleave
from benchlib.mr_channels import DATA, NAMES, brats_cases, liver_mr
from benchlib.mr_former import former
from UNetPlusPlusLib.engine import intensity_checks, mr_outliers, sanity
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.registry import find_model
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.training.dataset_check import check_dataset
from UNetPlusPlusLib.training.dataset_json import load_dataset_json

DATASETS = Path(__file__).resolve().parents[1] / "UNetPlusPlus/UNetPlusPlusLib/Resources/Datasets"


def outcome(call, *args):
    """What ``call(*args)`` decides: its result, or the refusal's text."""
    try:
        return call(*args)
    except UNetPlusPlusError as error:
        return f"refused: {error}"


def both(call, *args) -> tuple:
    """(former, now) outcome of ``call(*args)``."""
    with former():
        before = outcome(call, *args)
    return before, outcome(call, *args)


def variants(array: np.ndarray) -> dict[str, np.ndarray]:
    """The channel as given, with a hot voxel, a hot 0.2 % block and a plausible 0.3 % one."""
    inside = np.flatnonzero(array)
    found = {"as given": array}
    if inside.size < 1000:
        return found
    hot = array.astype(np.float32)
    hot.reshape(-1)[inside[inside.size // 2]] = 1e6
    found["1 voxel 1e6"] = hot
    values = array.reshape(-1)[inside].astype(np.float64)
    low, high = np.percentile(values, (0.5, 99.5))
    for share, value, label in ((0.002, 1e5, "0.2% at 1e5"), (0.003, None, "0.3% plausible")):
        block = array.astype(np.float32)
        chosen = inside[inside.size // 3 : inside.size // 3 + int(share * inside.size)]
        block.reshape(-1)[chosen] = value if value else high + 8 * (high - low)
        found[label] = block
    return found


def channel_decisions(name: str, array: np.ndarray) -> tuple[float, bool, int]:
    """(largest relative ratio difference, all numbers identical, differing decisions)."""
    old, new = both(mr_outliers.std_ratios, array)
    worst = max(abs(a[0] - b[0]) / a[0] for a, b in zip(old, new))
    differ = 0
    for label, variant in variants(array).items():
        before, now = both(mr_outliers.channel_warning, name, variant)
        if before != now:
            differ += 1
            print(f"  DIFFERS {name} {label}: {before!r} / {now!r}")
    sample = array.reshape(-1)[:: intensity_checks.sample_step(array.size)]
    for kind in ("MR", "CT"):
        low, high = float(array.min()), float(array.max())
        before, now = both(intensity_checks.label_map_problem, sample, name, low, high, kind)
        differ += before != now
    return worst, old == new, differ


def decisions(args, volumes: dict) -> None:
    manifest = find_model("brain-tumor")
    worst, identical, differ, count = 0.0, 0, 0, 0
    print("channel: largest relative ratio difference, bit-identical, decisions that differ")
    channels = [(f"{case} {n}", a) for case, v in volumes.items() for n, a in zip(NAMES, v.array)]
    liver = read_volume([liver_mr(args.data)], ["MR"])
    for name, array in channels + [("liver example_mr_sm", liver.array[0])]:
        w, same, d = channel_decisions(name, np.asarray(array))
        worst, identical, differ, count = max(worst, w), identical + same, differ + d, count + 1
        print(f"{name}: {w:.2e} {'yes' if same else 'no'} {d}", flush=True)
    for case, volume in volumes.items():
        hot, twice = volume.array.copy(), volume.array.copy()
        hot[0, hot.shape[1] // 2, hot.shape[2] // 2, hot.shape[3] // 2] = 1e6
        twice[2] = twice[0]
        for label, array in (
            ("as given", volume.array),
            ("hot FLAIR", hot),
            ("FLAIR twice", twice),
        ):
            before, now = both(sanity.check_model_input, manifest, volume.with_array(array))
            differ += before != now
            print(f"check_model_input {case} {label}: {'same' if before == now else 'DIFFERS'}")
    print(
        f"{count} channels: largest relative ratio difference {worst:.2e}, {identical} "
        f"bit-identical; decisions that differ (channels and cases): {differ}"
    )
    if args.dataset_cases:
        dataset = load_dataset_json(
            DATASETS / "brats2018.json", args.data / "brain-tumor/brats2018"
        )
        before, now = both(check_dataset, dataset, args.dataset_cases)
        print(
            f"check_dataset, {args.dataset_cases} cases: {'same' if before == now else 'DIFFERS'}"
        )
        print(f"  former: {before!r}\n  now:    {now!r}")


def cost(args, volumes: dict) -> None:
    manifest = find_model("brain-tumor")
    chosen = list(volumes.values())[: args.cases]
    dataset = load_dataset_json(DATASETS / "brats2018.json", args.data / "brain-tumor/brats2018")
    modalities = [c.modality for c in manifest.channels]
    jobs = {
        "check_model_input": lambda: [sanity.check_model_input(manifest, v) for v in chosen],
        "outlier_warnings": lambda: [
            mr_outliers.outlier_warnings(manifest, list(v.array)) for v in chosen
        ],
        "check_volume": lambda: [sanity.check_volume(v, modalities) for v in chosen],
        "check_dataset": lambda: check_dataset(dataset, args.cost_dataset_cases),
    }

    def measure(cell: tuple) -> float:
        job, mode = cell
        started = time.process_time()
        if mode == "former":
            with former():
                jobs[job]()
        else:
            jobs[job]()
        return time.process_time() - started

    load = os.getloadavg()
    groups = [[(job, "former"), (job, "now")] for job in jobs]
    samples = interleave.collect(args.rounds, groups, measure, rotate=True)
    print(
        f"CPU seconds, median of {args.rounds} rounds ({len(chosen)} cases decoded once; "
        f"check_dataset: {args.cost_dataset_cases} cases read from their files)"
    )
    for job in jobs:
        old, new = samples[(job, "former")], samples[(job, "now")]
        ratio = statistics.median(n / o for n, o in zip(new, old))
        print(
            f"{job}: former {statistics.median(old):.3f} s, now {statistics.median(new):.3f} s, "
            f"now/former {ratio:.3f}"
        )
    print(f"load average before {load}, after {os.getloadavg()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cases", type=int, default=3)
    parser.add_argument("--dataset-cases", type=int, default=18)
    parser.add_argument("--cost-dataset-cases", type=int, default=3)
    parser.add_argument("--no-decisions", action="store_true")
    parser.add_argument("--no-cost", action="store_true")
    args = parser.parse_args()
    paths = brats_cases(args.data)
    wanted = list(paths) if not args.no_decisions else list(paths)[: args.cases]
    volumes = {name: read_volume(paths[name], NAMES) for name in wanted}
    if not args.no_decisions:
        decisions(args, volumes)
    if not args.no_cost:
        cost(args, volumes)


if __name__ == "__main__":
    main()
