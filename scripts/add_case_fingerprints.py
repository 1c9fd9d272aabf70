#!/usr/bin/env python3
"""Add the image-content fingerprints of their recorded cases to the shipped models.

The three models under UNetPlusPlus/UNetPlusPlusLib/Resources/Models/ were trained before
model.json recorded ``training.case_fingerprints`` (training/case_content.py), so a fine-tune
of them could match their cases by name only. This script reads every case each model.json
lists (``training.cases``, ``validation.cases``, ``validation.held_out_cases``) from the
dataset its training command names (``--dataset-json``; the data folder is the description's
``notes.data_dir`` under DATA), computes the prints exactly as a training run does (the case's
channels read by ``read_volume``, then ``volume_print``: the image print and its axial slice
prints) and writes them into model.json. The weights are not touched: the script checks that
their sha256 and training contract still match the manifest (``check_weights_contract``).

Usage: python scripts/add_case_fingerprints.py [--data ../shared/data] [--check] [TASK ...]
(``--check``: compute and compare with the recorded fingerprints, write nothing; exit 1 on a
difference). Cases that cannot be found are listed and left out of the record.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "UNetPlusPlus"))

from UNetPlusPlusLib.engine.image_read import read_volume  # noqa: E402
from UNetPlusPlusLib.engine.manifest import ModelManifest  # noqa: E402
from UNetPlusPlusLib.engine.manifest_weights import check_weights_contract  # noqa: E402
from UNetPlusPlusLib.resources import builtin_datasets_dir, builtin_models_dir  # noqa: E402
from UNetPlusPlusLib.training.case_content import fingerprint_record, volume_print  # noqa: E402
from UNetPlusPlusLib.training.dataset import find_cases  # noqa: E402
from UNetPlusPlusLib.training.dataset_json import load_dataset_json  # noqa: E402

TASKS = ("liver", "brain-tumor", "lung-nodule")


def dataset_of(manifest: ModelManifest, data: Path):
    """The DatasetDescription the model was trained on: its command's ``--dataset-json``
    (a package data file, found by name) over ``data`` / the description's data folder."""
    words = shlex.split(manifest.training["command"])
    name = Path(words[words.index("--dataset-json") + 1]).name
    description = builtin_datasets_dir() / name
    folder = json.loads(description.read_text(encoding="utf-8"))["notes"]["data_dir"]
    return load_dataset_json(description, data / folder)


def fingerprints(task: str, data: Path) -> tuple[ModelManifest, dict, list[str]]:
    """The model's manifest, its ``case_fingerprints`` record and the case ids not found."""
    manifest = ModelManifest.load(builtin_models_dir() / task / "model.json")
    dataset = dataset_of(manifest, data)
    by_id = {case.case_id: case for case in find_cases(dataset)}
    names = [c.name for c in dataset.channels]
    validation = list(manifest.validation.get("cases") or [])
    held_out = manifest.validation.get("held_out_cases") or []
    validation += [c for c in held_out if c not in validation]
    sides = {"training": list(manifest.training.get("cases") or []), "validation": validation}
    prints, found = {}, {}
    for side, ids in sides.items():
        found[side] = [i for i in ids if i in by_id]
        for case_id in found[side]:
            prints[case_id] = volume_print(read_volume(by_id[case_id].images, names))
    missing = [i for ids in sides.values() for i in ids if i not in by_id]
    return manifest, fingerprint_record(prints, found["training"], found["validation"]), missing


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="*", default=list(TASKS))
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--check", action="store_true", help="compare only, write nothing")
    args = parser.parse_args(argv)
    status = 0
    for task in args.tasks:
        manifest, record, missing = fingerprints(task, args.data)
        counts = f"{len(record['training'])} training, {len(record['validation'])} validation"
        found = f"{task}: {counts} case(s) fingerprinted"
        found += f"; NOT FOUND in {args.data}: {', '.join(missing)}" if missing else ""
        print(found)
        if args.check:
            same = manifest.training.get("case_fingerprints") == record
            print(f"{task}: recorded fingerprints {'match' if same else 'DIFFER'}")
            status |= not same
            continue
        manifest.training["case_fingerprints"] = record
        manifest.save(manifest.path)
        check_weights_contract(ModelManifest.load(manifest.path))  # sha256 + contract unchanged
        print(f"{task}: written to {manifest.path}; weights sha256 {manifest.sha256[:12]}... ok")
    return status


if __name__ == "__main__":
    sys.exit(main())
