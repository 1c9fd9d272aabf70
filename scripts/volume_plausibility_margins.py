"""Per-label volumes behind the shipped models' ``postprocess.plausible_ml`` ranges.

    PYTHONPATH=UNetPlusPlus python scripts/volume_plausibility_margins.py ../shared/data

Measures, in ml: every reference label of the shared data (liver: the TotalSegmentator
examples, s0009, the LiTS partial volumes, dcmqi; brain tumour: the 18 BraTS 2018 cases and
BRATS 2012 HG0001, per model label; lung nodule: the 814 LIDC crops), the shipped models'
results on the same cases (liver: every CT; brain: every case; nodule: every ``--every``-th crop,
clicked at its centre), and the liver CTs with a wrong header (``--no-model`` skips the model
runs). Each volume is judged with the shipped manifest's ranges. Prints the largest volume per
label, every warning on a real case (false alarms) and whether each wrong header was warned.
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import UNetPlusPlusLib.engine.passive_wait  # noqa: F401  (before torch: no OpenMP busy-wait)
from UNetPlusPlusLib.engine.image_read import read_volume, volume_from_sitk
from UNetPlusPlusLib.engine.registry import find_model
from UNetPlusPlusLib.engine.volume import Volume
from UNetPlusPlusLib.engine.volume_plausibility import check_volumes, segment_volumes_ml

EXAMPLES, LITS = "liver/totalsegmentator-examples/", "liver/lits-partial/"
S0009 = "liver/totalsegmentator-dataset-s0009/"
LIVER_CTS = [  # name, CT, reference label file, its liver values
    ("example_ct", EXAMPLES + "example_ct.nii.gz",
     EXAMPLES + "example_seg_fast_force_split.nii.gz", [5]),
    ("example_ct_sm", EXAMPLES + "example_ct_sm.nii.gz", EXAMPLES + "example_seg.nii.gz", [5]),
    ("example_ct_dicom", EXAMPLES + "example_ct_dicom", EXAMPLES + "example_seg_dicom.nii.gz", [5]),
    ("s0009", S0009 + "ct.nii.gz", S0009 + "liver.nii.gz", [1]),
    ("lits 0", LITS + "liver_0_ct.nii.gz", LITS + "liver_0_label.nii.gz", [1, 2]),
    ("lits 1", LITS + "liver_1_ct.nii.gz", LITS + "liver_1_label.nii.gz", [1, 2]),
    ("dcmqi 3 slices", "liver/dcmqi-liver/ct-3slice", "liver/dcmqi-liver/liver_seg.nrrd", [1]),
]  # fmt: skip
OTHER_LIVER_LABELS = [("example_mr_sm (MR)", EXAMPLES + "example_seg_mr.nii.gz", [5])]
BRATS_CHANNELS = ("FLAIR", "T1", "T1ce", "T2")
#: model label value -> BraTS 2018 label values (1 core, 2 oedema, 4 enhancing)
BRATS_2018 = {1: [1], 2: [2], 3: [4]}
#: BRATS 2012: 1 = oedema, 2 = tumour core (core and enhancing together: counted as core)
BRATS_2012 = {1: [2], 2: [1]}


class Report:
    """The volumes per (task, label) and every warning, for the summary."""

    def __init__(self) -> None:
        self.largest: dict[tuple, tuple[float, str]] = {}
        self.counts: dict[str, int] = {}
        self.alarms: list[str] = []

    def judge(self, kind: str, case: str, manifest, labels, spacing, at_point=False) -> list:
        values = [label.value for label in manifest.labels]
        volumes = segment_volumes_ml(labels, spacing, values)
        for label, ml in zip(manifest.labels, volumes):
            key = (manifest.task, label.name, kind)
            if ml > self.largest.get(key, (-1.0, ""))[0]:
                self.largest[key] = (ml, case)
        self.counts[f"{manifest.task} {kind}"] = self.counts.get(f"{manifest.task} {kind}", 0) + 1
        warnings = check_volumes(manifest, labels, spacing, at_point)
        self.alarms += [f"{manifest.task} {kind} {case}: {w}" for w in warnings]
        return volumes


def _mapped(array: np.ndarray, mapping: dict) -> np.ndarray:
    out = np.zeros(array.shape, dtype=np.uint8)
    for value, sources in mapping.items():
        out[np.isin(array, sources) & (out == 0)] = value
    return out


def _label(path: Path, mapping: dict) -> tuple[np.ndarray, tuple]:
    image = sitk.ReadImage(str(path))
    return _mapped(sitk.GetArrayFromImage(image), mapping), image.GetSpacing()


def liver(data: Path, report: Report, predictor) -> None:
    manifest = find_model("liver")
    for name, ct, label, values in LIVER_CTS:
        array, spacing = _label(data / label, {1: values})
        ref = report.judge("reference", name, manifest, array, spacing)[0]
        line = f"liver {name:20s} reference {ref:8.1f} ml"
        if predictor is not None:
            volume = read_volume([data / ct], ["CT"])
            result = predictor.segment(volume)
            model = report.judge("model", name, manifest, result.labels.array, volume.spacing)[0]
            line += f"   model {model:8.1f} ml"
        print(line)
    for name, label, values in OTHER_LIVER_LABELS:
        array, spacing = _label(data / label, {1: values})
        ref = report.judge("reference", name, manifest, array, spacing)[0]
        print(f"liver {name:20s} reference {ref:8.1f} ml")


def brain(data: Path, report: Report, predictor) -> None:
    manifest = find_model("brain-tumor")
    folders = sorted((data / "brain-tumor" / "brats2018").glob("Brats18_*"))
    cases = [(f.name, f / f"{f.name}_seg.nii.gz", BRATS_2018) for f in folders]
    hg = data / "brain-tumor" / "brats2012-HG0001"
    cases.append(("BRATS_HG0001", hg / "BRATS_HG0001_truth.mha", BRATS_2012))
    for name, label, mapping in cases:
        array, spacing = _label(label, mapping)
        refs = report.judge("reference", name, manifest, array, spacing)
        line = f"brain {name:22s} reference " + " ".join(f"{v:6.1f}" for v in refs)
        if predictor is not None:
            if name.startswith("Brats18"):
                paths = [label.parent / f"{name}_{s}.nii.gz" for s in ("flair", "t1", "t1ce", "t2")]
            else:
                paths = [hg / f"BRATS_HG0001_{s}.mha" for s in ("FLAIR", "T1", "T1C", "T2")]
            volume = read_volume(paths, BRATS_CHANNELS)
            labels = predictor.segment(volume).labels.array
            models = report.judge("model", name, manifest, labels, volume.spacing)
            line += "   model " + " ".join(f"{v:6.1f}" for v in models)
        print(line + "   (core, oedema, enhancing ml)")


def nodules(data: Path, report: Report, predictor, every: int) -> None:
    manifest = find_model("lung-nodule")
    masks = sorted(glob.glob(str(data / "lung-nodule/lidc-vois/nodule_mask/*.nii.gz")))
    for index, mask in enumerate(masks):
        array, spacing = _label(Path(mask), {1: [1]})
        report.judge("reference", Path(mask).name, manifest, array, spacing, at_point=True)
        if predictor is None or index % every:
            continue
        image_path = Path(mask).parent.parent / "image" / Path(mask).name
        image = sitk.ReadImage(str(image_path))
        centre = image.TransformContinuousIndexToPhysicalPoint(
            [(s - 1) / 2.0 for s in image.GetSize()]
        )
        volume = read_volume([image_path])
        labels = predictor.segment(volume, point=tuple(centre)).labels
        report.judge("model", Path(mask).name, manifest, labels.array, labels.spacing, True)
    print(f"nodule: {len(masks)} reference masks, model on every {every}-th crop")


def wrong_headers(data: Path, predictor) -> list[str]:
    """The liver CTs whose header claims 5 mm slices, or 5 mm voxels, and example_ct resampled
    to 1 mm slices first (a thin-slice CT) with 5 mm slices in its header: the model's liver
    volume and whether it is warned."""
    rows = []
    cases = [(n, ct) for n, ct, _, _ in LIVER_CTS if "lits" not in n and "dcmqi" not in n]
    example = sitk.ReadImage(str(data / LIVER_CTS[0][1]))
    size = list(example.GetSize())
    size[2] = int(round(size[2] * 3.0))  # 3 mm slices become 1 mm slices (linear)
    fine = sitk.Resample(example, size, sitk.Transform(), sitk.sitkLinear, example.GetOrigin(),
                         (3.0, 3.0, 1.0), example.GetDirection(), -1024.0)  # fmt: skip
    runs = [(n, ct, claim) for n, ct in cases for claim in ("slices", "voxels")]
    for name, ct, claim in runs + [("example_ct at 1 mm slices", None, "slices")]:
        given = volume_from_sitk([fine], ["CT"]) if ct is None else read_volume([data / ct], ["CT"])
        spacing = (5.0, 5.0, 5.0) if claim == "voxels" else (*given.spacing[:2], 5.0)
        factor = float(np.prod(spacing) / np.prod(given.spacing))
        volume = Volume(given.array, spacing, given.origin, given.direction, given.channel_names)
        result = predictor.segment(volume)
        ml = segment_volumes_ml(result.labels.array, volume.spacing, [1])[0]
        warned = [w for w in result.info["warnings"] if "plausible range" in w]
        rows.append(
            f"{name} with 5 mm {claim} in its header (volumes x{factor:.2f}): model {ml:.0f} ml, "
            + ("WARNED: " + warned[0] if warned else "not warned")
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the shared data folder (../shared/data)")
    parser.add_argument("--every", type=int, default=4, help="run the nodule model on every n-th")
    parser.add_argument("--no-model", action="store_true", help="reference labels only")
    args = parser.parse_args()
    report = Report()
    predictors = {}
    if not args.no_model:
        from UNetPlusPlusLib.engine.predictor import Predictor

        for task in ("liver", "brain-tumor", "lung-nodule"):
            predictors[task] = Predictor.from_task(task, device="cpu", threads=2)
    liver(args.data, report, predictors.get("liver"))
    brain(args.data, report, predictors.get("brain-tumor"))
    nodules(args.data, report, predictors.get("lung-nodule"), max(1, args.every))
    print("\nlargest volume per label (ml) against the shipped range:")
    for (task, label, kind), (ml, case) in sorted(report.largest.items()):
        bounds = (find_model(task).postprocess or {}).get("plausible_ml", {}).get(label)
        print(f"  {task:12s} {label:38s} {kind:9s} {ml:9.2f}  ({case})  range {bounds}")
    print("cases judged: " + ", ".join(f"{k} {v}" for k, v in sorted(report.counts.items())))
    print(f"false alarms on real cases: {len(report.alarms)}")
    for alarm in report.alarms:
        print("  " + alarm)
    if not args.no_model:
        print("\nwrong headers:")
        for row in wrong_headers(args.data, predictors["liver"]):
            print("  " + row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
