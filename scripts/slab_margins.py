"""The shipped liver model on partial scans: slabs of the shared CTs (docs/INPUT_CHECKS.md,
"A liver cut by the image's edge").

For each liver CT with a reference label: the whole CT, its lower, middle and upper thirds and
halves in z, and the middle third of the liver's own z extent; for the chest CTs
(TotalSegmentator's pulm/aorta crops) and the LIDC slabs: the whole CT, upper slabs above the
liver and one-lung halves (the patient's right or left half in x). Per run: the result's ml, the
reference's ml inside the same slab and their Dice (where a reference exists; its source is
named), the faces of the image the result touches with a real part of its section
(``engine/liver_edge.py``) and every warning of the result's anatomy (ids only).

    PYTHONPATH=UNetPlusPlus python scripts/slab_margins.py ../shared/data [--only NAME]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "UNetPlusPlus"))

from UNetPlusPlusLib.engine.image_read import read_volume, volume_from_sitk  # noqa: E402

EXAMPLES = "liver/totalsegmentator-examples/"
LITS, S0009 = "liver/lits-partial/", "liver/totalsegmentator-dataset-s0009/"
TS_MODEL, TS_CORRECTED, EXPERT = "TotalSegmentator output", "clinician-corrected", "expert"
LIVERS = [  # name, image, reference label, label values, label source
    ("example_ct", "example_ct.nii.gz", "example_seg_fast_force_split.nii.gz", [5], TS_MODEL),
    ("example_ct_dicom", "example_ct_dicom", "example_seg_dicom.nii.gz", [5], TS_MODEL),
    ("s0009", S0009 + "ct.nii.gz", S0009 + "liver.nii.gz", [1], TS_CORRECTED),
    ("lits 0", LITS + "liver_0_ct.nii.gz", LITS + "liver_0_label.nii.gz", [1, 2], EXPERT),
    ("lits 1", LITS + "liver_1_ct.nii.gz", LITS + "liver_1_label.nii.gz", [1, 2], EXPERT),
]
CHESTS = [
    ("pulm_ct_cropped", "pulm_ct_cropped.nii.gz"),
    ("aorta_ct_cropped", "aorta_ct_cropped.nii.gz"),
]


def _path(data: Path, name: str) -> Path:
    return data / (name if "/" in name else EXAMPLES + name)


def _image(data: Path, name: str) -> sitk.Image:
    path = _path(data, name)
    if path.is_dir():
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(path)))
        return reader.Execute()
    return sitk.ReadImage(str(path))


def _row(predictor, name: str, image: sitk.Image, reference=None, source: str = "") -> None:
    volume = volume_from_sitk([image], ["CT"])
    result = predictor.segment(volume)
    labels = result.labels.array > 0
    voxel_ml = float(np.prod(image.GetSpacing())) / 1000.0
    ml = np.count_nonzero(labels) * voxel_ml
    anatomy = result.info.get("anatomy") or {}
    edge = anatomy.get("edge") or {}
    failed = ", ".join(anatomy.get("failed", [])) or "none"
    warned = [_short(w) for w in result.info["warnings"]]
    if reference is not None:
        ref_ml = np.count_nonzero(reference) * voxel_ml
        both = np.count_nonzero(labels & reference)
        total = np.count_nonzero(labels) + np.count_nonzero(reference)
        dice = f"{2 * both / total:.2f}" if total else "-"
        ref = f"{ref_ml:.0f} ({source})"
    else:
        dice, ref = "-", "-"
    sides = ", ".join(edge.get("sides", [])) or "-"
    shares = "/".join(f"{v:.2f}" for v in (edge.get("section_share") or {}).values()) or "-"
    level = (anatomy.get("position") or {}).get("lung_level_share")
    level = "-" if level is None else f"{level:.2f}"
    area = (anatomy.get("position") or {}).get("area_share")
    area = "-" if area is None else f"{area:.2f}"
    bone = (anatomy.get("position") or {}).get("bone_midline_mm")
    level += " / " + ("-" if bone is None else f"{bone:.0f}")
    print(
        f"| {name} | {image.GetSize()[2]} | {ml:.0f} | {ref} | {dice} | {sides} | "
        f"{shares} | {area} | {level} | {failed} | {len(warned)}: {'; '.join(warned)} |",
        flush=True,
    )


def _short(warning: str) -> str:
    """A warning's kind: the edge cut (and whether unreliable), the anatomy, thin input."""
    if "cut by the edge of the image" in warning:
        return "edge, unreliable" if "unreliable" in warning else "edge"
    if "is not where a liver lies" in warning:
        return "anatomy"
    return warning.split(":")[0][:40]


def _thirds(n: int) -> list[tuple[str, int, int]]:
    a, b = n // 3, 2 * n // 3
    return [
        ("lower third", 0, a),
        ("middle third", a, b),
        ("upper third", b, n),
        ("lower half", 0, n // 2),
        ("upper half", n // 2, n),
    ]


def livers(predictor, data: Path, only: str) -> None:
    for name, image_name, label, values, source in LIVERS:
        if only and only not in name:
            continue
        image = _image(data, image_name)
        mask = np.isin(sitk.GetArrayFromImage(sitk.ReadImage(str(_path(data, label)))), values)
        _row(predictor, f"{name} whole", image, mask, source)
        n = image.GetSize()[2]
        zs = np.nonzero(mask.any(axis=(1, 2)))[0]
        low, high = int(zs[0]), int(zs[-1]) + 1
        third = (high - low) // 3
        slabs = _thirds(n) + [("liver's middle third", low + third, high - third)]
        for what, start, stop in slabs:
            if stop - start < 4:
                continue
            _row(predictor, f"{name} {what} [{start}:{stop}]", image[:, :, start:stop],
                 mask[start:stop], source)  # fmt: skip


def chests(predictor, data: Path, only: str) -> None:
    for name, image_name in CHESTS:
        if only and only not in name:
            continue
        image = _image(data, image_name)
        nx, _, n = image.GetSize()
        _row(predictor, f"{name} whole", image)
        for what, start, stop in [("upper two thirds", n // 3, n), ("upper half", n // 2, n)]:
            _row(predictor, f"{name} {what} [{start}:{stop}]", image[:, :, start:stop])
        direction = np.asarray(image.GetDirection()).reshape(3, 3)
        right_first = direction[0, 0] > 0  # LPS x grows to the patient's left
        halves = [(0, nx // 2), (nx // 2, nx)]
        for side, (start, stop) in zip(
            ("right", "left") if right_first else ("left", "right"), halves
        ):
            _row(predictor, f"{name} {side} half (one lung) x[{start}:{stop}]", image[start:stop])
    if only and "lidc" not in only:
        return
    for patient in (1, 2, 3):
        folder = next((data / f"lung-nodule/lidc-dicom-slabs/LIDC-IDRI-000{patient}").glob("*/*"))
        volume = read_volume([folder], ["CT"])
        result = predictor.segment(volume)
        warned = [_short(w) for w in result.info["warnings"]]
        ml = np.count_nonzero(result.labels.array) * float(np.prod(volume.spacing)) / 1000.0
        failed = ", ".join((result.info.get("anatomy") or {}).get("failed", [])) or "none"
        print(f"| LIDC-IDRI-000{patient} slab | {ml:.0f} ml | {failed} | {'; '.join(warned)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the shared data folder (../shared/data)")
    parser.add_argument("--only", default="", help="only the cases whose name holds this")
    parser.add_argument("--part", choices=["livers", "chests", "all"], default="all")
    args = parser.parse_args()
    from UNetPlusPlusLib.engine.predictor import Predictor

    predictor = Predictor.from_task("liver", device="cpu")
    print("| case | slices | model ml | reference ml in slab (source) | Dice | edge sides |"
          " section share | area share | lung level / bone midline mm | anatomy failed |"
          " warnings |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    if args.part in ("livers", "all"):
        livers(predictor, args.data, args.only)
    if args.part in ("chests", "all"):
        chests(predictor, args.data, args.only)


if __name__ == "__main__":
    main()
