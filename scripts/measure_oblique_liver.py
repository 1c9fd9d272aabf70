"""The shipped liver model on a CT and on the same CT resampled onto rotated grids (docs/
BENCHMARK_E2E.md, "Oblique CTs"): liver ml on each grid and Dice against the axis-aligned
result.

Each rotated grid has the input's spacing and holds all of the image (air, -1024 HU, in its
corners): the same physical content, stored obliquely. Dice is taken on the rotated grid, the
axis-aligned result resampled onto it (nearest neighbour); the "floor" row is that
resampling's own loss (the axis-aligned result to the rotated grid and back). The "round trip"
row segments the rotated CT resampled back onto the input grid: the cost of the two linear
interpolations alone, with the input's own tiles.

    PYTHONPATH=UNetPlusPlus python scripts/measure_oblique_liver.py CT [CT ...]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Testing"))
from helpers import rotated_grid  # noqa: E402
from UNetPlusPlusLib.engine.image_read import volume_from_sitk  # noqa: E402
from UNetPlusPlusLib.engine.predictor import Predictor  # noqa: E402

ROTATIONS = {"25 deg about z": (0, 0, 25), "25 deg about x": (25, 0, 0),
             "20, -15, 25 deg": (20, -15, 25)}  # fmt: skip


def resample(image: sitk.Image, grid: tuple, nearest: bool) -> sitk.Image:
    size, origin, spacing, direction = grid
    how, fill = (sitk.sitkNearestNeighbor, 0) if nearest else (sitk.sitkLinear, -1024.0)
    return sitk.Resample(image, size, sitk.Transform(), how, origin, spacing, direction, fill)


def segment(predictor: Predictor, image: sitk.Image) -> tuple[sitk.Image, dict]:
    result = predictor.segment(volume_from_sitk([image], ["CT"]))
    labels = sitk.GetImageFromArray(result.labels.array.astype(np.uint8))
    labels.CopyInformation(image)
    return labels, result.info


def ml(labels: sitk.Image) -> float:
    count = np.count_nonzero(sitk.GetArrayViewFromImage(labels))
    return count * float(np.prod(labels.GetSpacing())) / 1000.0


def dice(a: sitk.Image, b: sitk.Image) -> float:
    x, y = sitk.GetArrayViewFromImage(a) > 0, sitk.GetArrayViewFromImage(b) > 0
    return 2.0 * np.count_nonzero(x & y) / (np.count_nonzero(x) + np.count_nonzero(y))


def main(paths: list[str]) -> None:
    predictor = Predictor.from_task("liver", device="cpu")
    print(f"load average {os.getloadavg()[0]:.1f}")
    print("| CT | grid | liver ml | vs axis-aligned | Dice | floor | body crop (model voxels) |")
    print("|---|---|---|---|---|---|---|")
    for path in paths:
        image = sitk.ReadImage(path, sitk.sitkFloat32)
        name = Path(path).name
        own = (list(image.GetSize()), image.GetOrigin(), image.GetSpacing(), image.GetDirection())
        base, info = segment(predictor, image)
        crop = info["body_crop"] or "none"
        print(f"| {name} | axis-aligned | {ml(base):.1f} | | | | {crop} |", flush=True)
        for label, angles in ROTATIONS.items():
            grid = rotated_grid(image, angles)
            labels, info = segment(predictor, resample(image, grid, nearest=False))
            there = resample(base, grid, nearest=True)
            floor = dice(resample(there, own, nearest=True), base)
            change = (ml(labels) / ml(base) - 1.0) * 100.0
            crop = info["body_crop"] or "none"
            print(
                f"| {name} | {label} | {ml(labels):.1f} | {change:+.1f} % | "
                f"{dice(labels, there):.3f} | {floor:.3f} | {crop} |",
                flush=True,
            )
        grid = rotated_grid(image, ROTATIONS["25 deg about x"])
        back = resample(resample(image, grid, nearest=False), own, nearest=False)
        labels, _ = segment(predictor, back)
        change = (ml(labels) / ml(base) - 1.0) * 100.0
        print(
            f"| {name} | round trip (25 deg about x and back) | {ml(labels):.1f} | "
            f"{change:+.1f} % | {dice(labels, base):.3f} | 1 | |",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
