"""Measure test-time augmentation and the heads' disagreement map on a model's validation cases.

For every depth and case, two Predictor runs as ``unetpp segment`` does them (input grid,
the manifest's post-processing, prompts as the other evaluate_*.py scripts give them), both
with ``--disagreement`` from depth 2 on (it does not change the labels; its cost is in both
timings):

1. plain: Dice per label (brain: also the BraTS regions WT / TC / ET) and seconds; the
   disagreement map D and the per-segment agreement.
   The error region E is where the plain label map differs from the reference; the
   high-disagreement region is H = {D >= t}. Pooled over the cases: precision |H & E| / |H|,
   recall |H & E| / |E| and Dice 2 |H & E| / (|H| + |E|), for t = 0.1, 0.25, 0.5; and the
   Spearman correlation between a case's mean agreement and its Dice.
2. ``--tta``: the same with mirrored passes (engine/tta.py), and its seconds.

Cases: liver: the card's validation CT (``ts-example-ct``, TotalSegmentator output as reference)
and the LiTS volumes not in the model's training split (expert labels; both for a model whose
validation names no LiTS volume); brain-tumor: the card's
validation cases (BraTS 2018, expert); lung-nodule: the card's validation crops (point at the
crop centre, LIDC expert masks). Writes JSON (``--json``) and prints Markdown; ``--record``
stores the means in the package's model.json (``validation.tta``, ``validation.review`` and,
with ``--mirror-axes``, ``test_time_augmentation``), where `unetpp models show`, the panel
and scripts/write_model_cards.py read them.

    python scripts/evaluate_review.py liver --json /tmp/review-liver.json
    python scripts/evaluate_review.py lung-nodule --depths 3 --max-cases 40
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import SimpleITK as sitk
import UNetPlusPlusLib.engine.passive_wait  # noqa: F401  (before torch: no OpenMP busy-wait)
from UNetPlusPlusLib.engine.image_read import read_image, read_volume
from UNetPlusPlusLib.engine.manifest import ModelManifest
from UNetPlusPlusLib.engine.predictor import Predictor
from UNetPlusPlusLib.engine.volume import Volume

ROOT = Path(__file__).resolve().parents[1]
THRESHOLDS = (0.1, 0.25, 0.5)
HEADLINE_THRESHOLD = "0.1"  # the one model.json records; REVIEW.md gives all three
SCORING = {
    "liver": "liver Dice on the input grid after the largest-component post-processing",
    "brain-tumor": "mean of the BraTS regions WT / TC / ET Dice on the input grid",
    "lung-nodule": "nodule Dice, point prompt at the crop centre, input grid",
}


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def _array(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def liver_cases(data: Path, manifest) -> Iterator[tuple]:
    """(name, label source, volume, reference (z, y, x) in model label values, point)."""
    example = ROOT / "Resources" / "Examples" / "example_ct.nii.gz"
    reference = ROOT / "Testing" / "fixtures" / "example_ct_liver.nii.gz"
    yield (
        "ts-example-ct",
        "TotalSegmentator output",
        read_volume([example]),
        _array(reference) > 0,
        None,
    )
    held_out_lits = {"liver_0", "liver_1"} & set(manifest.validation.get("cases", []))
    for n in (0, 1):
        if held_out_lits and f"liver_{n}" not in held_out_lits:
            continue  # this LiTS volume is in the model's training split
        folder = data / "liver" / "lits-partial"
        volume = read_volume([folder / f"liver_{n}_ct.nii.gz"])
        yield (
            f"lits-{n}",
            "expert (LiTS)",
            volume,
            _array(folder / f"liver_{n}_label.nii.gz") > 0,
            None,
        )


def brain_cases(data: Path, manifest) -> Iterator[tuple]:
    names = [c.name for c in manifest.channels]
    for case in manifest.validation.get("cases", []):
        folder = data / "brain-tumor" / "brats2018" / case
        paths = [folder / f"{case}_{s}.nii.gz" for s in ("flair", "t1", "t1ce", "t2")]
        seg = _array(folder / f"{case}_seg.nii.gz")
        reference = np.where(seg == 4, 3, seg).astype(np.uint8)  # BraTS 4 -> model value 3
        yield case, "expert (BraTS 2018)", read_volume(paths, channel_names=names), reference, None


def nodule_cases(data: Path, manifest) -> Iterator[tuple]:
    for case in manifest.validation.get("cases", []):
        image_path = data / "lung-nodule" / "lidc-vois" / "image" / f"{case}.nii.gz"
        mask = _array(data / "lung-nodule" / "lidc-vois" / "nodule_mask" / f"{case}.nii.gz") > 0
        image = read_image(image_path)
        centre = [(s - 1) / 2.0 for s in image.GetSize()]
        point = tuple(image.TransformContinuousIndexToPhysicalPoint(centre))
        yield case, "expert (LIDC)", read_volume([image_path]), mask, point


CASES = {"liver": liver_cases, "brain-tumor": brain_cases, "lung-nodule": nodule_cases}


def scores(labels: np.ndarray, reference: np.ndarray, task: str, manifest) -> dict:
    out = {
        label.name: dice(labels == label.value, reference == label.value)
        for label in manifest.labels
    }
    if task == "brain-tumor":  # BraTS regions in model values: 1 core, 2 oedema, 3 enhancing
        out.update(
            WT=dice(labels > 0, reference > 0),
            TC=dice(np.isin(labels, (1, 3)), np.isin(reference, (1, 3))),
            ET=dice(labels == 3, reference == 3),
        )
    return out


def run(predictor: Predictor, volume: Volume, depth, point, **kw) -> tuple:
    """The result, wall-clock seconds and CPU seconds of this process (all its threads): on a
    shared, overloaded machine the CPU seconds are the steadier measure of the cost."""
    started, cpu = time.perf_counter(), time.process_time()
    result = predictor.segment(volume, depth=depth, point=point, **kw)
    return result, time.perf_counter() - started, time.process_time() - cpu


def spearman(x: list[float], y: list[float]) -> Optional[float]:
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return None
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def evaluate(
    task: str,
    predictor: Predictor,
    data: Path,
    depths: list,
    max_cases: Optional[int],
    save: Optional[Callable[[dict], None]] = None,
    every: int = 1,
    with_tta: bool = True,
):
    manifest = predictor.manifest
    cases = list(CASES[task](data, manifest))[::every][:max_cases]
    report: dict = {"task": task, "cases": [c[0] for c in cases], "per_depth": {}}
    for depth in depths:
        rows = []
        pooled = {t: [0, 0, 0] for t in THRESHOLDS}  # |H|, |E|, |H & E|
        for name, source, volume, reference, point in cases:
            review = depth != 1
            plain, seconds, cpu = run(predictor, volume, depth, point, disagreement=review)
            labels = plain.labels.array
            row = {
                "case": name,
                "label_source": source,
                "dice": scores(labels, reference, task, manifest),
                "seconds": seconds,
                "cpu_seconds": cpu,
                "voxel_ml": float(np.prod(volume.spacing)) / 1000.0,
                "volume_ml": float((labels > 0).sum() * np.prod(volume.spacing) / 1000.0),
                "reference_ml": float((reference > 0).sum() * np.prod(volume.spacing) / 1000.0),
            }
            if with_tta:
                tta, seconds_tta, cpu_tta = run(
                    predictor, volume, depth, point, tta=True, disagreement=review
                )
                row.update(
                    dice_tta=scores(tta.labels.array, reference, task, manifest),
                    seconds_tta=seconds_tta,
                    cpu_seconds_tta=cpu_tta,
                    volume_ml_tta=float(
                        (tta.labels.array > 0).sum() * np.prod(volume.spacing) / 1000.0
                    ),
                )
            if review:
                error = labels != reference
                dmap = plain.disagreement.array[0]
                row["agreement"] = plain.info["agreement"]
                if with_tta:
                    row["agreement_tta"] = tta.info["agreement"]
                for t in THRESHOLDS:
                    high = dmap >= t
                    pooled[t][0] += int(high.sum())
                    pooled[t][1] += int(error.sum())
                    pooled[t][2] += int((high & error).sum())
            rows.append(row)
            print(json.dumps({"depth": depth, **row}), file=sys.stderr, flush=True)
        report["per_depth"][str(depth)] = {"rows": rows, "review": _review(rows, pooled)}
        if save is not None:  # after every depth, so a long run that is stopped keeps its part
            save(report)
    return report


def _review(rows: list[dict], pooled: dict) -> dict:
    if not any("agreement" in r for r in rows):
        return {}
    out: dict = {}
    for t, (h, e, both) in pooled.items():
        out[str(t)] = {
            "precision": both / h if h else None,
            "recall": both / e if e else None,
            "dice": 2 * both / (h + e) if h + e else None,
            "high_voxels": h,
            "error_voxels": e,
        }
    out["spearman_agreement_vs_dice"] = _agreement_vs_dice(rows)
    return out


def _agreement_vs_dice(rows: list[dict]) -> Optional[float]:
    """Spearman over the cases: mean agreement of the segments vs mean Dice of the same ones."""
    rows = [r for r in rows if "agreement" in r]
    agreement = [float(np.mean(list(r["agreement"].values()))) for r in rows]
    dice = [float(np.mean([r["dice"][name] for name in r["agreement"]])) for r in rows]
    return spearman(agreement, dice)


def _score_keys(task: str, row: dict) -> list[str]:
    return ["WT", "TC", "ET"] if task == "brain-tumor" else [next(iter(row["dice"]))]


def _tta_means(rows: list[dict], keys: list[str], name: str) -> dict:
    """Mean Dice (over ``keys``, then cases) and seconds, without and with TTA."""

    def mean(field: str) -> float:
        return round(float(np.mean([r[field] for r in rows])), 3)

    def dice(field: str) -> dict:
        values = [np.mean([r[field][k] for k in keys]) for r in rows]
        return {name: round(float(np.mean(values)), 4)}

    out = {
        "dice": dice("dice"),
        "dice_tta": dice("dice_tta"),
        "seconds": mean("seconds"),
        "seconds_tta": mean("seconds_tta"),
    }
    if all("cpu_seconds" in r for r in rows):
        out.update(cpu_seconds=mean("cpu_seconds"), cpu_seconds_tta=mean("cpu_seconds_tta"))
    return out


def record(report: dict, package: Path, mirror_override: bool) -> None:
    """Store the per-depth means in the package's model.json (weights untouched)."""
    manifest = ModelManifest.load(package)
    task = report["task"]
    tta: dict = {
        "command": report["command"],
        "cases": report["cases"],
        "mirror_axes": report["mirror_axes"],
        "scoring": SCORING[task],
        "device": "cpu, 2 threads on a shared, loaded 2-core machine (seconds are noisy); "
        "from L2 on both runs also computed the disagreement map",
        "per_depth": {},
    }
    review: dict = {"command": report["command"], "threshold": float(HEADLINE_THRESHOLD)}
    review["per_depth"] = {}
    for depth, block in report["per_depth"].items():
        rows = block["rows"]
        keys = _score_keys(task, rows[0])
        name = "mean" if len(keys) > 1 else keys[0]
        if "dice_tta" in rows[0]:  # not with --no-tta (review figures only)
            tta["per_depth"][depth] = _tta_means(rows, keys, name)
        figures = block["review"].get(HEADLINE_THRESHOLD)
        if figures:
            review["per_depth"][depth] = {
                k: None if figures[k] is None else round(figures[k], 4)
                for k in ("precision", "recall", "dice")
            }
            rho = block["review"].get("spearman_agreement_vs_dice")
            review["per_depth"][depth]["spearman"] = None if rho is None else round(rho, 3)
    manifest.validation = dict(manifest.validation, tta=tta, review=review)
    if mirror_override:
        manifest.test_time_augmentation = {"mirror_axes": report["mirror_axes"]}
    manifest.save(manifest.path)


def summary(report: dict) -> str:
    """Markdown: mean Dice and seconds per depth, plain and with TTA; review figures."""
    lines = [
        "| depth | cases | mean Dice | mean Dice, TTA | gain | s / case | s / case, TTA "
        "| time x (CPU seconds where recorded) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for depth, block in report["per_depth"].items():
        rows = block["rows"]
        if "dice_tta" not in rows[0]:
            continue  # --no-tta
        key = "WT" if report["task"] == "brain-tumor" else next(iter(rows[0]["dice"]))
        keys = ["WT", "TC", "ET"] if report["task"] == "brain-tumor" else [key]
        plain = np.mean([np.mean([r["dice"][k] for k in keys]) for r in rows])
        tta = np.mean([np.mean([r["dice_tta"][k] for k in keys]) for r in rows])
        s, st = np.mean([r["seconds"] for r in rows]), np.mean([r["seconds_tta"] for r in rows])
        if all("cpu_seconds" in r for r in rows):  # the steadier ratio on a loaded machine
            ratio = np.mean([r["cpu_seconds_tta"] for r in rows]) / np.mean(
                [r["cpu_seconds"] for r in rows]
            )
        else:
            ratio = st / s
        tag = f"L{depth}" if depth.isdigit() else depth
        lines.append(
            f"| {tag} | {len(rows)} | {plain:.3f} | {tta:.3f} | {tta - plain:+.3f} | {s:.2f} | "
            f"{st:.2f} | {ratio:.1f} |"
        )
    lines += [
        "",
        "| depth | t | high-disagreement voxels | error voxels | precision | recall | Dice "
        "| Spearman (agreement, Dice) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for depth, block in report["per_depth"].items():
        review = block["review"]
        tag = f"L{depth}" if depth.isdigit() else depth
        for t in THRESHOLDS:
            row = review.get(str(t))
            if row:
                lines.append(
                    f"| {tag} | {t} | {row['high_voxels']} | {row['error_voxels']} | "
                    f"{fmt(row['precision'])} | {fmt(row['recall'])} | {fmt(row['dice'])} | "
                    f"{fmt(review.get('spearman_agreement_vs_dice'))} |"
                )
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=sorted(CASES))
    parser.add_argument("--package", type=Path, help="model folder (default: the built-in one)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--depths", nargs="+", default=["1", "2", "3", "4", "ensemble"])
    parser.add_argument("--max-cases", type=int, help="only the first N cases")
    parser.add_argument("--every", type=int, default=1, help="only every N-th case (a spread)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--mirror-axes", nargs="*", help="override the manifest's mirror axes")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--no-tta", action="store_true", help="only the plain run and the review")
    parser.add_argument("--record", action="store_true", help="store the means in model.json")
    parser.add_argument("--from-json", type=Path, help="record an earlier --json run, no inference")
    args = parser.parse_args(argv)
    package = (
        args.package
        or ROOT / "UNetPlusPlus" / "UNetPlusPlusLib" / "Resources" / "Models" / args.task
    )
    if args.from_json:
        report = json.loads(args.from_json.read_text())
        for block in report["per_depth"].values():  # recomputed: older runs used one label
            if block["review"]:
                block["review"]["spearman_agreement_vs_dice"] = _agreement_vs_dice(block["rows"])
        record(report, package, "--mirror-axes" in report["command"])
        print(summary(report))
        return 0
    predictor = Predictor.from_manifest_path(package, device="cpu", threads=args.threads)
    if args.mirror_axes is not None:
        predictor.manifest.test_time_augmentation = {"mirror_axes": list(args.mirror_axes)}
    depths = [int(d) if d.isdigit() else d for d in args.depths]
    axes = (predictor.manifest.test_time_augmentation or {}).get("mirror_axes", ["x", "y", "z"])
    command = "python scripts/evaluate_review.py " + " ".join(sys.argv[1:])

    def save(report: dict) -> None:
        report.update(mirror_axes=list(axes), command=command)
        if args.json:
            args.json.write_text(json.dumps(report, indent=1) + "\n")

    report = evaluate(
        args.task, predictor, args.data, depths, args.max_cases, save, args.every, not args.no_tta
    )
    save(report)
    if args.record:
        record(report, package, args.mirror_axes is not None)
    print(summary(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
