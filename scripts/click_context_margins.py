"""Margins of the click-context check (engine/click_context.py) on the shared LIDC crops.

Every crop of ``lung-nodule/lidc-vois/image`` clicked at its centre (as
scripts/evaluate_nodule.py does): the field of view (mm, x y z) within CONTEXT_MM of the click,
how many axes reach MIN_FIELD_MM, and the best lag-1 neighbour correlation over the whole crop;
then the correlation of the shared whole CTs, and the same for white noise and for the
review's tiny volumes. No model is run.

    PYTHONPATH=UNetPlusPlus python scripts/click_context_margins.py ../shared/data
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
from UNetPlusPlusLib.engine.click_context import (
    MIN_FIELD_MM,
    field_mm,
    neighbour_correlation,
)
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.volume import Volume


def centre(volume: Volume) -> np.ndarray:
    return volume.grid.index_to_physical((np.asarray(volume.grid.size_xyz) - 1) / 2.0)


def measure(volume: Volume) -> tuple[np.ndarray, int, float]:
    point = centre(volume)
    field = field_mm(volume, point)
    correlation = neighbour_correlation(volume.array[0])
    return field, int(np.count_nonzero(field >= MIN_FIELD_MM)), correlation


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", type=Path)
    args = parser.parse_args()
    files = sorted((args.data / "lung-nodule" / "lidc-vois" / "image").glob("*.nii.gz"))
    fields, axes, correlations = [], [], []
    for path in files:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            volume = read_volume([path], ["CT"])
        field, reached, correlation = measure(volume)
        fields.append(field)
        axes.append(reached)
        correlations.append(correlation)
    fields = np.array(fields)
    in_plane = fields[:, :2].min(axis=1)
    print(f"{len(files)} LIDC crops, clicked at their centre")
    print(
        f"  smallest field (mm) x {fields[:, 0].min():.1f}, y {fields[:, 1].min():.1f}, "
        f"z {fields[:, 2].min():.1f}; smallest in-plane {in_plane.min():.1f}"
    )
    print(
        f"  axes reaching {MIN_FIELD_MM:g} mm: min {min(axes)} (crops with < 2: "
        f"{sum(a < 2 for a in axes)})"
    )
    values = np.array([c for c in correlations if c is not None])
    print(
        f"  best neighbour correlation: min {values.min():.3f}, 1st percentile "
        f"{np.percentile(values, 1):.3f}, median {np.median(values):.3f}"
    )
    wholes = [
        "liver/totalsegmentator-examples/example_ct.nii.gz",
        "liver/totalsegmentator-examples/example_ct_sm.nii.gz",
        "liver/totalsegmentator-examples/example_ct_dicom",
        "liver/totalsegmentator-dataset-s0009/ct.nii.gz",
        "liver/lits-partial/liver_0_ct.nii.gz",
        "liver/lits-partial/liver_1_ct.nii.gz",
        *sorted(  # the three LIDC DICOM slabs' series folders
            str(p.relative_to(args.data))
            for p in (args.data / "lung-nodule" / "lidc-dicom-slabs").glob("*/*/*")
            if p.is_dir()
        ),
    ]
    for name in wholes:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            volume = read_volume([args.data / name], ["CT"])
        print(f"{name}: correlation {neighbour_correlation(volume.array[0]):.3f}")
    rng = np.random.default_rng(0)
    for label, array, spacing in (
        (
            "uniform noise -1000..400 HU, 40x64x64",
            rng.uniform(-1000, 400, (40, 64, 64)),
            (0.7, 0.7, 1.25),
        ),
        ("normal noise 0 +- 100 HU, 40x64x64", rng.normal(0, 100, (40, 64, 64)), (0.7, 0.7, 1.25)),
        ("2x2x2 at 3 mm", rng.uniform(-1000, 100, (2, 2, 2)), (3.0, 3.0, 3.0)),
        ("2x2x2 at 0.7 x 0.7 x 1.25 mm", rng.uniform(-1000, 100, (2, 2, 2)), (0.7, 0.7, 1.25)),
    ):
        volume = Volume(array[None].astype(np.float32), spacing, (0.0, 0.0, 0.0), np.eye(3))
        field, reached, correlation = measure(volume)
        shown = "n/a" if correlation is None else f"{correlation:.3f}"
        print(
            f"{label}: field {np.round(field, 1).tolist()} mm, {reached} axes, correlation {shown}"
        )


if __name__ == "__main__":
    main()
