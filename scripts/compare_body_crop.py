"""Labels with and without the CT body crop (engine/body_crop.py) on the liver cases.

Cases: the liver model's two validation cases, the first 65 slices of LiTS volume 1 (LiTS expert
reference, tumour counted as liver) and the demo CT (TotalSegmentator output, not expert), and
``liver_512`` of the end-to-end bench (LiTS volume 0 resampled to 300 slices, with its expert
label resampled the same way, nearest neighbour; LiTS volume 0 is a TRAINING case of the model).
Each at each depth three ways: ``off`` (``crop_body=False``), ``on`` (the default: the crop only
where it saves tiles) and ``forced`` (``body_crop.FEWER_TILES_ONLY`` off: the crop wherever the
box is smaller than the model grid). Prints Markdown: the model grid inferred on, the tiles, the
liver Dice on the input grid after post-processing, the input voxels whose label differs from
``off``, and the CPU seconds of ``Predictor.segment``; ``--json PATH`` also writes the rows.

    PYTHONPATH=$PWD/UNetPlusPlus python scripts/compare_body_crop.py \\
        UNetPlusPlus/UNetPlusPlusLib/Resources/Models/liver --depths 3 4
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import UNetPlusPlusLib.engine.passive_wait  # noqa: F401  (before torch: no OpenMP busy-wait)
from UNetPlusPlusLib.engine import body_crop
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.predictor import Predictor
from UNetPlusPlusLib.engine.tile_count import tile_count
from UNetPlusPlusLib.engine.volume import canonical_grid

ROOT = Path(__file__).resolve().parents[1]
LITS = ROOT.parent / "shared" / "data" / "liver" / "lits-partial"
sys.path.insert(0, str(ROOT / "bench"))


def cases() -> list[tuple[str, Path, np.ndarray]]:
    """(name, CT path, reference liver mask (z, y, x)) for every case found."""
    out = []
    example = ROOT / "Resources" / "Examples" / "example_ct.nii.gz"
    label = ROOT / "Testing" / "fixtures" / "example_ct_liver.nii.gz"
    out.append(("example-ct (TotalSegmentator output)", example, _mask(sitk.ReadImage(label))))
    if (LITS / "liver_1_ct.nii.gz").is_file():
        reference = _mask(sitk.ReadImage(LITS / "liver_1_label.nii.gz"))
        out.append(("lits-1 (LiTS expert)", LITS / "liver_1_ct.nii.gz", reference))
    from benchlib.e2e import ct_512  # made once from LiTS volume 0, in the user cache

    ct = ct_512()
    if ct is not None:
        grid = sitk.ReadImage(str(ct))
        label = sitk.Resample(
            sitk.ReadImage(LITS / "liver_0_label.nii.gz"), grid, sitk.Transform(),
            sitk.sitkNearestNeighbor, 0,
        )  # fmt: skip
        out.append(("liver_512 (LiTS expert; a training case)", ct, _mask(label)))
    return out


def _mask(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image) > 0


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int((a & b).sum()) / total if total else 1.0


def run(predictor: Predictor, volume, depth: int, way: str) -> tuple[np.ndarray, dict, float]:
    """Labels, info and CPU seconds of one ``segment`` run the given way."""
    body_crop.FEWER_TILES_ONLY = way != "forced"
    started = time.process_time()
    try:
        result = predictor.segment(volume, depth=depth, crop_body=way != "off")
    finally:
        body_crop.FEWER_TILES_ONLY = True
    return result.labels.array, result.info, time.process_time() - started


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", type=Path)
    parser.add_argument("--depths", type=int, nargs="+", default=[3, 4])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    predictor = Predictor.from_manifest_path(args.package, device="cpu", threads=2)
    manifest = predictor.manifest
    print("| case | depth | way | model grid | tiles | liver Dice | voxels changed | CPU s |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for case, path, reference in cases():
        volume = read_volume([path])
        whole = canonical_grid(volume, manifest.spacing).shape_zyx
        for depth in args.depths:
            off = None
            for way in ("off", "on", "forced"):
                labels, info, seconds = run(predictor, volume, depth, way)
                off = labels if off is None else off
                shape = info["body_crop"] or list(whole)
                row = {"case": case, "depth": depth, "way": way, "grid": shape,
                       "tiles": tile_count(shape, manifest.tile_size_zyx, manifest.overlap),
                       "dice": dice(labels == 1, reference),
                       "changed": int((labels != off).sum()), "cpu_s": seconds}  # fmt: skip
                rows.append(row)
                print(f"| {case} | L{depth} | {way} | {'x'.join(map(str, shape))} | "
                      f"{row['tiles']} | {row['dice']:.4f} | {row['changed']} | "
                      f"{seconds:.1f} |", flush=True)  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
