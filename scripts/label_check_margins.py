"""Margins and cost of the training-label checks (``training/dataset_label_checks.py``).

    PYTHONPATH=UNetPlusPlus python scripts/label_check_margins.py ../shared/data

Runs the checks of each shipped model (as ``--init``) on every case of its shipped dataset
description (liver-lits.json, brats2018.json, lidc-vois.json; ``--every N`` takes every N-th
LIDC crop) and on the other labelled volumes (example_ct_sm, the dcmqi 3 slices, BRATS 2012
HG0001): all must be silent. Then on wrong labels and images, which must be warned: the liver
model's depth-1 and depth-3 results on the heart of pulm_ct_cropped as labels (the tester's
case), example_ct's liver mirrored left-right and moved 150 mm down, each liver CT with a 10x
voxel volume (spacing x 10^(1/3)) and flipped front-back (where its spine decides); a ball
drawn over the heart is shown for information. Prints, per case, the warnings, the measured
figures (anatomy: flanked share, midline offset, room and lung above; volume vs range; spine
offset) and the check's time (ms), then the false-alarm count and the time per case.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import UNetPlusPlusLib.engine.passive_wait  # noqa: F401  (before torch: no OpenMP busy-wait)
from UNetPlusPlusLib.engine import anatomy_check, orientation_check
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.predictor import Predictor
from UNetPlusPlusLib.engine.registry import find_model
from UNetPlusPlusLib.engine.volume import Volume, array_to_sitk
from UNetPlusPlusLib.engine.volume_plausibility import segment_volumes_ml
from UNetPlusPlusLib.training.cases import read_case
from UNetPlusPlusLib.training.dataset import find_cases
from UNetPlusPlusLib.training.dataset_json import load_dataset_json
from UNetPlusPlusLib.training.dataset_label_checks import LabelChecks

DATASETS = Path(__file__).resolve().parents[1] / "UNetPlusPlus/UNetPlusPlusLib/Resources/Datasets"
RUNS = [  # task (--init), dataset description, data folder under ../shared/data
    ("liver", "liver-lits.json", "liver"),
    ("brain-tumor", "brats2018.json", "brain-tumor/brats2018"),
    ("lung-nodule", "lidc-vois.json", "lung-nodule/lidc-vois"),
]


def figures(checks: LabelChecks, image: Volume, labels: np.ndarray) -> str:
    parts = []
    if checks.ct is not None:
        found = orientation_check.measure_ap(
            image.with_array(image.array[checks.ct : checks.ct + 1])
        )
        parts.append(
            f"ap_offset={found.offset if found.offset is None else round(found.offset, 2)}"
        )
    for name, ml in zip(
        [x.name for x in checks._volumes.labels],
        segment_volumes_ml(labels, image.spacing, [x.value for x in checks._volumes.labels]),
    ):
        if name in checks.ranges:
            parts.append(f"{name}={ml:.1f}ml/{checks.ranges[name][1]:g}")
    if checks.anatomy:
        _, summary = anatomy_check.check_model_result(checks._anatomy, image, labels, image.grid)
        if summary:
            keys = ("flanked_share", "midline_offset_mm", "room_above_mm", "lung_near_top")
            parts += [f"{k}={_round(summary[k])}" for k in keys]
    return " ".join(parts)


def _round(value):
    return round(value, 2) if isinstance(value, float) else value


def run_case(checks, name, image, labels, expect_warning, report) -> None:
    started = time.perf_counter()
    said = checks.check_case(image, labels)
    elapsed = (time.perf_counter() - started) * 1000.0
    ok = expect_warning is None or bool(said) == expect_warning
    report.append((name, expect_warning, ok, elapsed))
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {elapsed:.0f} ms; {figures(checks, image, labels)}")
    for warning in said:
        print(f"      warning: {warning[:300]}")


def heart_blob(ct: sitk.Image) -> np.ndarray:
    """A 'liver' on the heart of pulm_ct_cropped (a chest CT angiogram crop, LPS identity,
    1.5 mm): soft tissue and contrast-filled blood (-100..800 HU) within 50 mm of the heart's
    centre, the lower image half (the tester's label was 502 ml)."""
    hu = sitk.GetArrayFromImage(ct)
    centre = np.array([30, 45, 60])  # z, y, x voxels: the contrast-filled heart (viewed)
    zz, yy, xx = np.indices(hu.shape)
    near = sum(((a - c) * 1.5) ** 2 for a, c in zip((zz, yy, xx), centre)) <= 50.0**2
    return (near & (hu > -100) & (hu < 800)).astype(np.uint8)


def moved(labels: np.ndarray, image: Volume, shift_mm) -> np.ndarray:
    """``labels`` moved by ``shift_mm`` (LPS x, y, z) on an image with a diagonal direction."""
    steps = [int(round(d * m / s)) for d, m, s in
             zip(np.diag(image.direction), shift_mm, image.spacing)]  # fmt: skip
    out = np.zeros_like(labels)
    zs, ys, xs = np.nonzero(labels)
    index = [zs + steps[2], ys + steps[1], xs + steps[0]]
    keep = np.all([(i >= 0) & (i < n) for i, n in zip(index, labels.shape)], axis=0)
    out[tuple(i[keep] for i in index)] = labels[zs[keep], ys[keep], xs[keep]]
    return out


EXTRA_LIVER = [  # name, image (file or DICOM folder), label file, liver values
    ("example_ct_sm", "totalsegmentator-examples/example_ct_sm.nii.gz",
     "totalsegmentator-examples/example_seg.nii.gz", [5]),
    ("dcmqi 3 slices", "dcmqi-liver/ct-3slice", "dcmqi-liver/liver_seg.nrrd", [1]),
]  # fmt: skip


def extra(data: Path, liver_checks: LabelChecks, report: list) -> None:
    """The liver CTs outside liver-lits.json and BRATS 2012 HG0001 (1 oedema, 2 core)."""
    for name, image_path, label_path, values in EXTRA_LIVER:
        image = read_volume([data / "liver" / image_path], ["CT"])
        label = sitk.ReadImage(str(data / "liver" / label_path))
        reference = array_to_sitk(image.array[0].astype(np.float32), image.grid)
        label = sitk.Resample(label, reference, sitk.Transform(), sitk.sitkNearestNeighbor)
        labels = np.isin(sitk.GetArrayFromImage(label), values).astype(np.uint8)
        if labels.shape != image.shape_zyx:
            print(f"skip {name}: label grid {labels.shape} is not the image's {image.shape_zyx}")
            continue
        run_case(liver_checks, f"liver/{name}", image, labels, False, report)
    brats = data / "brain-tumor/brats2012-HG0001"
    init = find_model("brain-tumor")
    dataset = load_dataset_json(DATASETS / "brats2018.json", data / "brain-tumor/brats2018")
    checks = LabelChecks(dataset, init)
    files = [brats / f"BRATS_HG0001_{s}.mha" for s in ("FLAIR", "T1", "T1C", "T2")]
    image = read_volume(files, ["FLAIR", "T1", "T1ce", "T2"])
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(brats / "BRATS_HG0001_truth.mha")))
    labels = np.select([truth == 2, truth == 1], [1, 2], 0).astype(np.uint8)  # core, oedema
    run_case(checks, "brain-tumor/brats2012-HG0001", image, labels, False, report)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", type=Path)
    parser.add_argument("--every", type=int, default=1, help="every N-th LIDC crop")
    args = parser.parse_args()
    report: list = []
    liver_cases = []
    for task, description, folder in RUNS:
        init = find_model(task)
        dataset = load_dataset_json(DATASETS / description, args.data / folder)
        checks = LabelChecks(dataset, init)
        cases = find_cases(dataset)
        if task == "lung-nodule":
            cases = cases[:: args.every]
        print(f"== {task}: {len(cases)} case(s) of {description}; anatomy={checks.anatomy}, "
              f"ranges={checks.ranges}")  # fmt: skip
        for case in cases:
            data = read_case(case, dataset)
            run_case(checks, f"{task}/{case.case_id}", data.image, data.labels, False, report)
            if task == "liver":
                liver_cases.append((checks, case.case_id, data))
    print("== the other labelled volumes of the shared data")
    extra(args.data, liver_cases[0][0], report)
    print("== wrong labels and images (each must warn)")
    checks = liver_cases[0][0]
    pulm_path = args.data / "liver/totalsegmentator-examples/pulm_ct_cropped.nii.gz"
    image = read_volume([pulm_path], ["CT"])
    predictor = Predictor.from_task("liver", device="cpu", threads=2)
    for depth in (1, 3):  # the tester's label: the liver model's result on the heart
        heart = predictor.segment(image, depth=depth).labels.array
        ml = np.count_nonzero(heart) * np.prod(image.spacing) / 1000
        name = f"pulm_ct_cropped: the liver model's depth-{depth} result ({ml:.1f} ml) as label"
        run_case(checks, name, image, heart, True, report)
    blob = heart_blob(sitk.ReadImage(str(pulm_path)))
    ml = np.count_nonzero(blob) * np.prod(image.spacing) / 1000
    name = f"pulm_ct_cropped: a hand-drawn ball on the heart ({ml:.0f} ml), for information"
    run_case(checks, name, image, blob, None, report)
    for checks, case_id, data in liver_cases:
        if case_id != "ts-example-ct":
            continue
        labels = data.labels
        run_case(checks, f"{case_id} mirrored label", data.image, labels[:, :, ::-1].copy(),
                 True, report)  # fmt: skip
        # the liver label on the wrong slices: 150 mm lower (the image ends at its dome)
        lower = moved(labels, data.image, (0.0, 0.0, -150.0))
        run_case(checks, f"{case_id} label 150 mm too low", data.image, lower, True, report)
    for checks, case_id, data in liver_cases:
        scale = 10 ** (1 / 3)
        big = Volume(data.image.array, tuple(s * scale for s in data.image.spacing),
                     data.image.origin, data.image.direction, data.image.channel_names)  # fmt: skip
        has_liver = data.labels.any()
        run_case(checks, f"{case_id} spacing x{scale:.2f} (10x volume)", big, data.labels,
                 has_liver, report)  # fmt: skip
        flipped = data.image.with_array(data.image.array[:, :, ::-1, :].copy())
        seen = orientation_check.measure_ap(data.image).offset is not None  # else no evidence
        run_case(checks, f"{case_id} image flipped front-back", flipped, data.labels[:, ::-1],
                 seen, report)  # fmt: skip
    wrong = [r for r in report if not r[2]]
    real = [r for r in report if r[1] is False and "/" in r[0]]
    print(f"real cases: {len(real)}, false alarms: {len([r for r in real if not r[2]])}")
    times = [r[3] for r in report]
    print(f"== {len(report)} checks, {len(wrong)} wrong: " + ", ".join(r[0] for r in wrong))
    print(f"time per case: median {np.median(times):.0f} ms, max {max(times):.0f} ms")


if __name__ == "__main__":
    main()
