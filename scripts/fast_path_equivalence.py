"""Whole-case check that the CPU fast path (``cpu_inference``, ``cpu_norm``) segments like the
plain modules: the liver model on the demo CT (whole volume, recommended depth) and the nodule
model on a click at the centre of a LIDC crop (session 14, issue 14).

Prints, per case, the CPU seconds of each run, whether the labels are identical and the largest
absolute difference of the class probabilities. ``--old FILE`` adds a run with the norm of an
older ``cpu_norm.py`` (``git show main:UNetPlusPlus/UNetPlusPlusLib/engine/cpu_norm.py``). The
module path of the demo CT takes about a minute of CPU.

    python scripts/fast_path_equivalence.py [--data ../shared/data] [--old FILE]
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from UNetPlusPlusLib.engine import cpu_inference
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.network import plain_modules
from UNetPlusPlusLib.engine.predictor import Predictor

REPO = Path(__file__).resolve().parents[1]
NODULE_CASE = "LIDC-IDRI-0004_R_1"


def _old_norm(path: str):
    spec = importlib.util.spec_from_file_location("UNetPlusPlusLib.engine._old_norm", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.norm_act_


def _cases(data: Path) -> dict:
    cases = {"liver": ([REPO / "Resources" / "Examples" / "example_ct.nii.gz"], {})}
    nodule = data / "lung-nodule" / "lidc-vois" / "image" / f"{NODULE_CASE}.nii.gz"
    if nodule.is_file():
        image = sitk.ReadImage(str(nodule))
        centre = image.TransformContinuousIndexToPhysicalPoint(
            [(s - 1) / 2.0 for s in image.GetSize()]
        )
        cases["lung-nodule"] = ([nodule], {"point": tuple(centre)})
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--old", help="an older cpu_norm.py to run as well")
    args = parser.parse_args()
    norms = {"fast": cpu_inference.norm_act_}
    if args.old:
        norms["old"] = _old_norm(args.old)
    for task, (paths, options) in _cases(args.data).items():
        predictor = Predictor.from_task(task, device="cpu", threads=2, executor="ours")
        volume = read_volume(paths)
        results = {}
        for name in [*norms, "modules"]:
            cpu_inference.norm_act_ = norms.get(name, norms["fast"])
            started = time.process_time()
            if name == "modules":
                with plain_modules():
                    results[name] = predictor.segment(volume, return_probabilities=True, **options)
            else:
                results[name] = predictor.segment(volume, return_probabilities=True, **options)
            print(f"{task} {name}: {time.process_time() - started:.2f} s CPU")
        cpu_inference.norm_act_ = norms["fast"]
        want = results["modules"]
        for name in norms:
            got = results[name]
            same = np.array_equal(got.labels.array, want.labels.array)
            gap = np.abs(got.probabilities.array - want.probabilities.array).max()
            print(f"{task} {name} vs modules: labels identical {same}, probabilities {gap:.2e}")


if __name__ == "__main__":
    main()
