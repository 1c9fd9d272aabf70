"""The sequence-order reference of a multi-channel MR model, and its detection study.

Computes the contrast fingerprint (``engine/channel_order.py``) of every case of a dataset,
builds the reference from the model's TRAINING cases only (all cases of the dataset except the
model's ``validation.cases``, or ``--training-cases``) and, with ``--write``, stores it in the
model's ``model.json`` as ``inference.channel_fingerprint`` (the weights and their sha256 are
untouched). ``--study`` prints the detection table of docs/INPUT_CHECKS_MR.md: every case in its
own order and in each of the other C! - 1 orders; a training case is scored against a reference
built without it (leave-one-out), a held-out case (validation cases, ``--extra``) against the
reference of all training cases. The decision is ``check_channel_order``'s, with the enhancement
asymmetry of the pre- and post-contrast T1 pair (``engine/contrast_pair.py``) when the model's
channel names hold one (T1 and T1ce).

    python scripts/channel_fingerprint.py ../shared/data/brain-tumor/brats2018 \\
        --dataset-json UNetPlusPlus/UNetPlusPlusLib/Resources/Datasets/brats2018.json \\
        --model UNetPlusPlus/UNetPlusPlusLib/Resources/Models/brain-tumor --study \\
        --extra brats2012-HG0001 \\
        ../shared/data/brain-tumor/brats2012-HG0001/BRATS_HG0001_{FLAIR,T1,T1C,T2}.mha [--write]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

import numpy as np
from UNetPlusPlusLib.engine import channel_order as co
from UNetPlusPlusLib.engine import contrast_pair as cp
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.manifest import ModelManifest
from UNetPlusPlusLib.engine.manifest_model import manifest_text
from UNetPlusPlusLib.engine.sanity import channel_samples, check_sequence_order
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.training.dataset import find_cases
from UNetPlusPlusLib.training.dataset_json import load_dataset_json


def case_fingerprint(paths: list, names: list) -> co.Fingerprint:
    """The fingerprint of one case (one file per channel, in the model's order)."""
    volume = read_volume(paths, names)
    found = co.fingerprint(channel_samples(list(volume.array)))
    if found is None:
        raise UNetPlusPlusError(f"{paths[0]}: too few voxels non-zero in every channel.")
    return found


def write_reference(path: Path, reference: dict) -> None:
    """Store ``reference`` as ``inference.channel_fingerprint`` in the model.json at ``path``,
    every other field, the key order and the layout as they were (validated before writing)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    inference = {**data.get("inference", {}), "channel_fingerprint": reference}
    keys = list(data)
    if "inference" not in data:  # the documented place: after postprocess / TTA
        anchor = "test_time_augmentation" if "test_time_augmentation" in data else "postprocess"
        keys.insert(keys.index(anchor) + 1 if anchor in keys else len(keys), "inference")
    data = {key: inference if key == "inference" else data[key] for key in keys}
    ModelManifest.from_dict(data, path=path)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(manifest_text(data), encoding="utf-8")  # the file's own layout
    temporary.replace(path)


def decide(print_: co.Fingerprint, reference: dict, names: list) -> tuple[str, co.OrderVerdict]:
    """("ok" | "warn" | "refuse", verdict): what ``check_channel_order`` decides."""
    verdict = co.compare(print_, reference)
    placeholders = [np.empty(0)] * len(names)  # only counted: the fingerprint is given
    try:
        said = co.check_channel_order(placeholders, reference, names, print_)
    except UNetPlusPlusError:
        return "refuse", verdict
    return ("warn" if said else "ok"), verdict


def study(prints: dict, training: list, held_out: list, names: list) -> None:
    """Print the detection table (Markdown) of every order of every case."""
    import itertools

    pair = cp.find_pair(names)
    references = {
        case: co.build_reference([prints[t] for t in training if t != case], pair=pair)
        for case in training
    }
    full = co.build_reference([prints[t] for t in training], training, pair)
    orders = list(itertools.permutations(range(len(names))))
    rows = []
    for order in orders:
        counts = {"train": [0, 0, 0], "held": [0, 0, 0]}
        gaps, asymmetries = [], []
        for case, print_ in prints.items():
            group = "train" if case in references else "held"
            moved = print_.reordered(order)
            verdict, found = decide(moved, references.get(case, full), names)
            counts[group][("ok", "warn", "refuse").index(verdict)] += 1
            gaps.append(found.gap)
            asymmetries.append(moved.asymmetry[pair[0], pair[1]] if pair else float("nan"))
        given = "/".join(names[i] for i in order)
        rows.append((given, counts, min(gaps), max(gaps), min(asymmetries), max(asymmetries)))
    print(f"training cases (leave-one-out): {len(training)}; held out: {', '.join(held_out)}")
    print(
        f"thresholds: refuse gap > {co.REFUSE_GAP:g} (best distance <= {co.MAX_FIT:g}), "
        f"warn gap > {co.WARN_GAP:g}; contrast pair {pair} (asymmetry: refuse below "
        f"{cp.REFUSE_BELOW:g}, warn below {cp.WARN_BELOW:g})\n"
    )
    print("| order given (slots " + ", ".join(names) + ") | training: refused / warned / "
          "passed | held out: refused / warned / passed | gap min .. max | "
          "asymmetry min .. max |")  # fmt: skip
    print("|---|---|---|---|---|")
    for given, counts, low, high, least, most in rows:
        train, held = counts["train"], counts["held"]
        print(
            f"| {given} | {train[2]} / {train[1]} / {train[0]} | {held[2]} / {held[1]} / "
            f"{held[0]} | {low:.2f} .. {high:.2f} | {least:.2f} .. {most:.2f} |"
        )
    print("\ncorrect order, gap, best-order distance and contrast asymmetry per case:")
    for case, print_ in prints.items():
        verdict = co.compare(print_, references.get(case, full))
        asymmetry = print_.asymmetry[pair[0], pair[1]] if pair else float("nan")
        print(
            f"  {case}: gap {verdict.gap:.2f}, distance {verdict.distances[0]:.2f}, "
            f"asymmetry {asymmetry:.2f}"
        )


def time_check(paths: list, manifest: ModelManifest, rounds: int) -> None:
    """Seconds of the order check and of the other input checks on one case, interleaved."""
    import os
    import time

    from UNetPlusPlusLib.engine.sanity import check_volume

    volume = read_volume(paths, [c.name for c in manifest.channels])
    modalities = [c.modality for c in manifest.channels]
    order, others = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        check_sequence_order(manifest, list(volume.array))
        order.append(time.perf_counter() - start)
        start = time.perf_counter()
        check_volume(volume, modalities)
        others.append(time.perf_counter() - start)
    print(
        f"{Path(paths[0]).parent.name} {tuple(volume.array.shape)}, {rounds} rounds, load "
        f"average {os.getloadavg()[0]:.2f}: order check median {np.median(order):.3f} s (best "
        f"{min(order):.3f}); the other input checks median {np.median(others):.3f} s (best "
        f"{min(others):.3f})"
    )


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--dataset-json", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True, help="model folder or model.json")
    parser.add_argument("--training-cases", help="comma-separated (default: all but validation)")
    parser.add_argument(
        "--extra", action="append", nargs="+", default=[], metavar="NAME FILE",
        help="a held-out case outside the dataset: a name, then its files in channel order",
    )  # fmt: skip
    parser.add_argument("--study", action="store_true", help="print the detection table")
    parser.add_argument("--write", action="store_true", help="store the reference in model.json")
    parser.add_argument("--time", type=int, metavar="ROUNDS", help="time the check on a case")
    args = parser.parse_args(argv)

    manifest = ModelManifest.load(args.model)
    names = [c.name for c in manifest.channels]
    dataset = load_dataset_json(args.dataset_json, args.data_dir)
    cases = {c.case_id: c for c in find_cases(dataset)}
    validation = list(manifest.validation.get("cases", []))
    if args.training_cases:
        training = args.training_cases.split(",")
    else:
        training = [c for c in cases if c not in validation]
    unknown = [c for c in training + validation if c not in cases]
    if unknown:
        raise UNetPlusPlusError(f"Case {unknown[0]} is not in {args.data_dir}.")
    if set(training) & set(validation):
        raise UNetPlusPlusError("A validation case cannot build the reference.")
    prints = {c: case_fingerprint(cases[c].images, names) for c in training + validation}
    for name, *files in args.extra:
        prints[name] = case_fingerprint(files, names)
    reference = co.build_reference([prints[c] for c in training], training, cp.find_pair(names))
    if args.study:
        study(prints, training, [c for c in prints if c not in training], names)
    if args.time:
        time_check(cases[validation[0]].images, manifest, args.time)
    if args.write:
        write_reference(manifest.path, reference)
        print(f"wrote inference.channel_fingerprint ({len(training)} cases) to {manifest.path}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UNetPlusPlusError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
