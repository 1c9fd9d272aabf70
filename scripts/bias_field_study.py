"""Calibration of the bias-field check (``engine/bias_field.py``), and the model's reference.

``strengths``: the measured field strengths of the real cases (BraTS 2018 folders and, with
``--extra``, other cases given as four files), with the milliseconds the measure took (the
median of ``--repeat`` runs).

``dice``: synthetic smooth fields applied to the held-out cases (``validation.cases``), every
shape of :data:`SHAPES` at every strength of :data:`STRENGTHS`; for each, the measured strength
and the WT / TC / ET Dice of the shipped model against the expert labels (as
``scripts/evaluate_brain_tumor.py``: the Predictor at the recommended depth, input grid). A
strength is the field's max/min ratio over the brain (non-zero in every channel); the field is
log-linear (``lin``) or log-quadratic (``quad``: brighter at both ends of the direction,
``radial``: brighter in the centre) in physical mm; and the tester's field, ``ramp-x``: 0.4 to 1.6
linearly across the whole image along x. One JSON line per run.

``write``: stores ``inference.bias_field`` in model.json from the training cases (every
brats2018 case not in ``validation.cases``) and ``--warn-ratio`` (weights untouched).

    python scripts/bias_field_study.py strengths ../shared/data/brain-tumor/brats2018 \\
        --extra ../shared/data/brain-tumor/brats2012-HG0001/BRATS_HG0001_{FLAIR,T1,T1C,T2}.mha
    python scripts/bias_field_study.py dice ../shared/data/brain-tumor/brats2018 \\
        --model UNetPlusPlus/UNetPlusPlusLib/Resources/Models/brain-tumor > dice.jsonl
    python scripts/bias_field_study.py write ../shared/data/brain-tumor/brats2018 \\
        --model UNetPlusPlus/UNetPlusPlusLib/Resources/Models/brain-tumor \\
        --warn-ratio 2.2 --linear-warn-ratio 1.8 --channel-warn-ratio 3.6
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from UNetPlusPlusLib.engine import bias_field as bf
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.manifest import ModelManifest
from UNetPlusPlusLib.engine.manifest_model import _dumps

NAMES = ["FLAIR", "T1", "T1ce", "T2"]
SUFFIXES = ("flair", "t1", "t1ce", "t2")
#: (name, kind, direction (x, y, z)) of the synthetic fields.
SHAPES = (
    ("lin-x", "lin", (1, 0, 0)),
    ("lin-z", "lin", (0, 0, 1)),
    ("lin-oblique", "lin", (1, 1, 1)),
    ("quad-oblique", "quad", (1, 0, 1)),
    ("radial", "radial", (0, 0, 0)),
)
STRENGTHS = (1.2, 1.5, 2.0, 4.0)


def case_paths(folder: Path) -> list[Path]:
    """The four files of a BraTS 2018 case folder, in the model's order."""
    return [folder / f"{folder.name}_{s}.nii.gz" for s in SUFFIXES]


def strengths(volume) -> bf.FieldStrength:
    """The measured strengths of a Volume (as the check measures them)."""
    steps = bf.grid_steps(volume.spacing)
    pitch = [s * float(p) for s, p in zip(steps, reversed(list(volume.spacing)))]
    found = bf.field_strength([bf.coarse_grid(a, steps) for a in volume.array], pitch)
    if found is None:
        raise SystemExit("too few brain voxels to measure")
    return found


def synthetic_field(volume, kind: str, direction, ratio: float) -> np.ndarray:
    """A smooth field (z, y, x) float32 with max/min ``ratio`` over the joint non-zero voxels."""
    shape = volume.array.shape[1:]
    spacing = list(reversed(list(volume.spacing)))  # z, y, x
    axes = [np.arange(n, dtype=np.float32) * float(s) for n, s in zip(shape, spacing)]
    z, y, x = np.meshgrid(*axes, indexing="ij", sparse=True)
    brain = np.all(volume.array != 0, axis=0)
    centre = [float(np.mean(np.nonzero(brain)[i])) * spacing[i] for i in range(3)]
    if kind == "ramp":  # the tester's field: 0.4 -> 1.6 linearly across the whole image, x
        return np.broadcast_to(np.linspace(0.4, 1.6, shape[2], dtype=np.float32), shape)
    if kind == "radial":
        value = -((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2)
    else:
        d = np.asarray(direction, dtype=np.float64) / np.linalg.norm(direction)
        value = (x - centre[2]) * d[0] + (y - centre[1]) * d[1] + (z - centre[0]) * d[2]
        value = value**2 if kind == "quad" else value
    value = np.broadcast_to(value, shape)
    low, high = float(value[brain].min()), float(value[brain].max())
    return np.exp(np.log(ratio) * ((value - low) / (high - low) - 0.5)).astype(np.float32)


def run_strengths(args) -> int:
    cases = [(f.name, case_paths(f)) for f in sorted(Path(args.data).iterdir()) if f.is_dir()]
    if args.extra:
        cases.append((Path(args.extra[0]).parent.name, [Path(p) for p in args.extra]))
    print("| case | common | linear | " + " | ".join(NAMES) + " | ms |")
    print("|---" * (len(NAMES) + 4) + "|")
    for name, paths in cases:
        volume = read_volume(paths, NAMES)
        seconds = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            found = strengths(volume)
            seconds.append(time.perf_counter() - started)
        ms = float(np.median(seconds)) * 1000
        each = " | ".join(f"{v:.2f}" for v in found.channels)
        print(f"| {name} | {found.common:.2f} | {found.linear:.2f} | {each} | {ms:.0f} |")
    return 0


def run_dice(args) -> int:
    import SimpleITK as sitk
    import UNetPlusPlusLib.engine.passive_wait  # noqa: F401  (before torch)
    from UNetPlusPlusLib.engine.predictor import Predictor
    from UNetPlusPlusLib.engine.volume import Volume

    sys.path.insert(0, str(Path(__file__).parent))
    from evaluate_brain_tumor import dice, regions

    predictor = Predictor.from_manifest_path(args.model, device="cpu", threads=args.threads)
    cases = args.cases or predictor.manifest.validation.get("cases", [])
    for case in cases:
        folder = Path(args.data) / case
        volume = read_volume(case_paths(folder), NAMES)
        seg = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"{case}_seg.nii.gz")))
        expert = regions(seg, (1, 4), (4,))
        runs = [("none", "none", (0, 0, 0), 1.0)]
        runs += [(n, k, d, r) for n, k, d in SHAPES for r in STRENGTHS]
        runs.append(("ramp-x 0.4-1.6", "ramp", (1, 0, 0), 4.0))
        for name, kind, direction, ratio in runs:
            array = volume.array
            if kind != "none":
                array = volume.array * synthetic_field(volume, kind, direction, ratio)[None]
            biased = Volume(array, volume.spacing, volume.origin, volume.direction, NAMES)
            started = time.perf_counter()
            labels = predictor.segment(biased).labels.array
            seconds = time.perf_counter() - started
            found = regions(labels, (1, 3), (3,))
            measured = strengths(biased)
            row = {"case": case, "shape": name, "ratio": ratio}
            row["common"] = round(measured.common, 3)
            row["linear"] = round(measured.linear, 3)
            row["channels"] = [round(v, 3) for v in measured.channels]
            row.update({k: round(dice(found[k], expert[k]), 4) for k in ("WT", "TC", "ET")})
            row["et_ml"] = round(float(found["ET"].sum()) * float(np.prod(volume.spacing)) / 1e3, 2)
            row["seconds"] = round(seconds, 1)
            print(json.dumps(row), flush=True)
    return 0


def n4_correct(volume, shrink: int = 4):
    """(the Volume with each channel N4-corrected inside the joint non-zero mask, seconds):
    SimpleITK's N4BiasFieldCorrectionImageFilter on a ``shrink``-times smaller image, the
    field it found applied at full resolution; 0 stays 0, the geometry is unchanged."""
    import SimpleITK as sitk
    from UNetPlusPlusLib.engine.volume import Volume

    started = time.perf_counter()
    brain = np.all(volume.array != 0, axis=0).astype(np.uint8)
    mask = sitk.Shrink(sitk.GetImageFromArray(brain), [shrink] * 3)
    corrected = []
    for channel in volume.array:
        image = sitk.GetImageFromArray(channel)
        n4 = sitk.N4BiasFieldCorrectionImageFilter()
        n4.Execute(sitk.Shrink(image, [shrink] * 3), mask)
        log_field = sitk.GetArrayFromImage(n4.GetLogBiasFieldAsImage(image))
        corrected.append(np.where(brain > 0, channel / np.exp(log_field), 0.0))
    result = Volume(np.stack(corrected), volume.spacing, volume.origin, volume.direction, NAMES)
    return result, time.perf_counter() - started


def run_n4(args) -> int:
    """Seconds and Dice of N4 on the tester's ramp and 2x / 4x linear z fields (held-out cases)."""
    import SimpleITK as sitk
    import UNetPlusPlusLib.engine.passive_wait  # noqa: F401  (before torch)
    from UNetPlusPlusLib.engine.predictor import Predictor
    from UNetPlusPlusLib.engine.volume import Volume

    sys.path.insert(0, str(Path(__file__).parent))
    from evaluate_brain_tumor import dice, regions

    predictor = Predictor.from_manifest_path(args.model, device="cpu", threads=args.threads)
    for case in args.cases or predictor.manifest.validation.get("cases", []):
        folder = Path(args.data) / case
        volume = read_volume(case_paths(folder), NAMES)
        seg = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"{case}_seg.nii.gz")))
        expert = regions(seg, (1, 4), (4,))
        for name, kind, ratio in (("none", "none", 1.0), ("ramp-x 0.4-1.6", "ramp", 4.0),
                                  ("lin-z", "lin", 2.0), ("lin-z", "lin", 4.0)):  # fmt: skip
            array = volume.array
            if kind != "none":
                array = array * synthetic_field(volume, kind, (0, 0, 1), ratio)[None]
            biased = Volume(array, volume.spacing, volume.origin, volume.direction, NAMES)
            corrected, seconds = n4_correct(biased)
            row = {"case": case, "shape": name, "ratio": ratio, "n4_seconds": round(seconds, 1)}
            for label, image in (("", biased), ("n4_", corrected)):
                found = regions(predictor.segment(image).labels.array, (1, 3), (3,))
                row.update({label + k: round(dice(found[k], expert[k]), 4) for k in expert})
                row[label + "common"] = round(strengths(image).common, 3)
                row[label + "linear"] = round(strengths(image).linear, 3)
            print(json.dumps(row), flush=True)
    return 0


def run_write(args) -> int:
    path = Path(args.model) / "model.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data.get("inference", {}).pop("bias_field", None)  # replaced, whatever its version
    manifest = ModelManifest.from_dict(data, path=path)
    held_out = set(manifest.validation.get("cases", []))
    folders = [f for f in sorted(Path(args.data).iterdir()) if f.is_dir()]
    training = [f for f in folders if f.name not in held_out]
    table = [strengths(read_volume(case_paths(f), NAMES)) for f in training]
    names = [f.name for f in training]
    ratios = (args.warn_ratio, args.linear_warn_ratio, args.channel_warn_ratio)
    reference = bf.build_reference(table, *ratios, names)
    data["inference"] = {**data.get("inference", {}), "bias_field": reference}
    ModelManifest.from_dict(data, path=path)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(_dumps(data) + "\n", encoding="utf-8")  # model.json's own layout
    temporary.replace(path)
    print(json.dumps(reference))
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("strengths", "dice", "n4", "write"))
    parser.add_argument("data", help="the brats2018 folder")
    parser.add_argument("--model", help="the model package folder (dice, write)")
    parser.add_argument("--extra", nargs=4, help="strengths: one more case, four files")
    parser.add_argument("--cases", nargs="*", help="dice: these cases, not validation.cases")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="strengths: median ms of N runs")
    parser.add_argument("--warn-ratio", type=float, default=2.2, help="write: common field")
    parser.add_argument("--linear-warn-ratio", type=float, default=1.8, help="write: its plane")
    parser.add_argument("--channel-warn-ratio", type=float, default=3.6, help="write: one channel")
    args = parser.parse_args(argv)
    commands = {"strengths": run_strengths, "dice": run_dice, "n4": run_n4, "write": run_write}
    return commands[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
