"""The anatomy check's figures on the shared CTs (docs/INPUT_CHECKS.md, "Anatomy of the result").

For each CT: the shipped liver model's result (Predictor, depth auto, as `unetpp segment`
runs it; its ``info["anatomy"]``) and, where the data has one, the reference liver label
(engine/anatomy_check.measure_liver). Also: the first 60 slices of example_ct (below the liver),
example_ct with its left-right axis flipped in the header only, and the LIDC DICOM slabs.
``--time N``: the check's seconds (N runs) on example_ct resampled to 512 x 512 x 300 voxels.

    PYTHONPATH=UNetPlusPlus python scripts/anatomy_margins.py ../shared/data [--time 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "UNetPlusPlus"))

from UNetPlusPlusLib.engine.anatomy_check import measure_liver  # noqa: E402
from UNetPlusPlusLib.engine.image_read import read_volume, volume_from_sitk  # noqa: E402
from UNetPlusPlusLib.engine.volume import Grid, Volume, resample_volume  # noqa: E402

EXAMPLES = "liver/totalsegmentator-examples/"
LITS, S0009 = "liver/lits-partial/", "liver/totalsegmentator-dataset-s0009/"
CASES = [  # name, image, reference label (or None), label values
    ("example_ct", "example_ct.nii.gz", "example_seg_fast_force_split.nii.gz", [5]),
    ("example_ct_sm", "example_ct_sm.nii.gz", "example_seg.nii.gz", [5]),
    ("example_ct_dicom", "example_ct_dicom", "example_seg_dicom.nii.gz", [5]),
    ("s0009", S0009 + "ct.nii.gz", S0009 + "liver.nii.gz", [1]),
    ("lits 0", LITS + "liver_0_ct.nii.gz", LITS + "liver_0_label.nii.gz", [1, 2]),
    ("lits 1", LITS + "liver_1_ct.nii.gz", LITS + "liver_1_label.nii.gz", [1, 2]),
    ("dcmqi 3 slices", "liver/dcmqi-liver/ct-3slice", None, []),
    ("pulm_ct_cropped", "pulm_ct_cropped.nii.gz", None, []),
    ("aorta_ct_cropped", "aorta_ct_cropped.nii.gz", None, []),
]


def _path(data: Path, name: str) -> Path:
    """A file of the shared data; bare names are TotalSegmentator examples."""
    return data / (name if "/" in name else EXAMPLES + name)


def _row(name: str, source: str, f, ml: float) -> str:
    def num(value, fmt):
        return "-" if value is None else format(value, fmt)

    p = f.get("position") or {}  # engine/liver_position.py
    return (
        f"| {name} | {source} | {ml:.0f} | {num(f.get('flanked_share'), '.2f')} | "
        f"{num(f.get('midline_offset_mm'), '.0f')} | {num(f.get('room_above_mm'), '.0f')} | "
        f"{'yes' if f.get('lung_near_top') else 'no'} | "
        f"{num(p.get('outside_trunk_share'), '.2f')} | {num(p.get('lateral_share'), '.2f')} / "
        f"{num(p.get('lateral_mm'), '.0f')} | {num(p.get('area_share'), '.2f')} | "
        f"{', '.join(f.get('failed', [])) or 'none'} |"
    )


def _flipped_lr(volume: Volume) -> Volume:
    direction = volume.direction.copy()
    direction[:, 0] *= -1  # the same voxels; the header says left is right
    return Volume(volume.array, volume.spacing, volume.origin, direction, volume.channel_names)


def _predicted(predictor, volume: Volume, name: str) -> str:
    result = predictor.segment(volume)
    ml = np.count_nonzero(result.labels.array) * float(np.prod(volume.spacing)) / 1000.0
    if not result.labels.array.any():
        return f"| {name} | model | 0 | - | - | - | - | - | - | - | (empty result) |"
    return _row(name, "model", result.info["anatomy"], ml)


def _reference(volume: Volume, path: Path, values, name: str, flip: bool = False) -> str:
    mask = np.isin(sitk.GetArrayFromImage(sitk.ReadImage(str(path))), values)
    ml = np.count_nonzero(mask) * float(np.prod(volume.spacing)) / 1000.0
    findings = measure_liver(_flipped_lr(volume) if flip else volume, mask)
    return _row(name, "reference", findings.__dict__, ml)


def study(data: Path) -> None:
    from UNetPlusPlusLib.engine.predictor import Predictor

    predictor = Predictor.from_task("liver", device="cpu")
    print("| CT | segment | ml | flanked share | centroid - midline (mm) | room above (mm) |"
          " lung near top | outside trunk | beyond lungs share / median mm |"
          " cross-section share | failed |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, image, label, values in CASES:
        volume = read_volume([_path(data, image)], ["CT"])
        print(_predicted(predictor, volume, name), flush=True)
        if label:
            print(_reference(volume, _path(data, label), values, name), flush=True)
    below = volume_from_sitk([sitk.ReadImage(str(_path(data, CASES[0][1])))[:, :, :60]], ["CT"])
    print(_predicted(predictor, below, "example_ct slices 0-59"), flush=True)
    example = read_volume([_path(data, CASES[0][1])], ["CT"])
    flipped = "example_ct, header L-R flipped"
    print(_predicted(predictor, _flipped_lr(example), flipped))
    print(_reference(example, _path(data, CASES[0][2]), [5], flipped, True))
    for patient in (1, 2, 3):
        folder = next((data / f"lung-nodule/lidc-dicom-slabs/LIDC-IDRI-000{patient}").glob("*/*"))
        volume = read_volume([folder], ["CT"])
        print(_predicted(predictor, volume, f"LIDC-IDRI-000{patient} slab"), flush=True)


def timing(data: Path, runs: int) -> None:
    example = read_volume([_path(data, CASES[0][1])], ["CT"])
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(_path(data, CASES[0][2])))) == 5
    size = (512, 512, 300)
    extent = np.asarray(example.grid.size_xyz) * np.asarray(example.spacing)
    spacing = tuple(extent / np.asarray(size))
    grid = Grid(size, spacing, example.origin, example.direction)
    big = resample_volume(example, grid, "linear", -1024.0)
    labels = resample_volume(example.with_array(mask[None].astype(np.float32)), grid, "linear", 0.0)
    big_mask = labels.array[0] > 0.5
    del labels
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        findings = measure_liver(big, big_mask)
        seconds.append(time.perf_counter() - started)
    mm = ", ".join(f"{s:.2f}" for s in spacing)
    times = ", ".join(f"{s:.2f}" for s in seconds)
    print(f"512 x 512 x 300 ({mm} mm): failed {findings.failed}; seconds {times}", end="")
    print(f" (median {np.median(seconds):.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the shared data folder (../shared/data)")
    parser.add_argument("--time", type=int, default=0, metavar="N", help="time the check N times")
    args = parser.parse_args()
    if args.time:
        timing(args.data, args.time)
    else:
        study(args.data)


if __name__ == "__main__":
    main()
