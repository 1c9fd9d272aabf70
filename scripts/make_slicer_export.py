#!/usr/bin/env python3
"""Write a four-case "Slicer export" of liver CTs (volume .nrrd + .seg.nrrd, oblique geometry).

What a researcher exports from 3D Slicer: each case cropped around the liver (10 mm margin),
resampled to 4 mm (small volumes, about 40-60 voxels a side), given an oblique direction (a
different rotation per case) and a segment named "liver" with its terminology. Built from
../shared/data/liver (TotalSegmentator example + s0009, LiTS volumes 0 and 1; see that folder's
README for the label sources); the output is not committed.

Usage: scripts/make_slicer_export.py OUT_DIR [--data ../shared/data/liver]
Then:  unetpp train OUT_DIR -o MODEL --labels liver --epochs 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "UNetPlusPlus"))

from UNetPlusPlusLib.engine.manifest import LabelSpec, standard_terminology  # noqa: E402
from UNetPlusPlusLib.engine.volume import LabelVolume  # noqa: E402
from UNetPlusPlusLib.segfile import write_seg_nrrd  # noqa: E402

CASES = [  # case id, image, label, label values meaning liver
    ("case01", "totalsegmentator-examples/example_ct.nii.gz",
     "totalsegmentator-examples/example_seg_fast_force_split.nii.gz", (5,)),
    ("case02", "totalsegmentator-dataset-s0009/ct.nii.gz",
     "totalsegmentator-dataset-s0009/liver.nii.gz", (1,)),
    ("case03", "lits-partial/liver_0_ct.nii.gz", "lits-partial/liver_0_label.nii.gz", (1, 2)),
    ("case04", "lits-partial/liver_1_ct.nii.gz", "lits-partial/liver_1_label.nii.gz", (1, 2)),
]  # fmt: skip
SPACING_MM = 4.0
MARGIN_MM = 10.0


def rotation(angles_deg) -> np.ndarray:
    """Rotation matrix about x, then y, then z (degrees)."""
    ax, ay, az = np.radians(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def export_case(data: Path, out: Path, index: int, case_id, image_rel, label_rel, values) -> None:
    image = sitk.ReadImage(str(data / image_rel))
    label = sitk.ReadImage(str(data / label_rel))
    mask = np.isin(sitk.GetArrayFromImage(label), values)
    zyx = np.argwhere(mask)
    lo = np.maximum(zyx.min(0)[::-1] - 1, 0)
    hi = np.minimum(zyx.max(0)[::-1] + 1, np.array(label.GetSize()) - 1)
    corners = [label.TransformIndexToPhysicalPoint([int(v) for v in (a, b, c)])
               for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])]  # fmt: skip
    corners = np.asarray(corners)
    box_lo, box_hi = corners.min(0) - MARGIN_MM, corners.max(0) + MARGIN_MM
    size = [int(np.ceil((b - a) / SPACING_MM)) for a, b in zip(box_lo, box_hi)]
    # the new grid: oblique, covering the box; each case gets its own rotation
    direction = rotation([(7 + 5 * index) % 25, -(4 + 3 * index), 10 + 6 * index])
    centre = (box_lo + box_hi) / 2
    origin = centre - direction @ (np.asarray(size) * SPACING_MM / 2)
    reference = sitk.Image(size, sitk.sitkUInt8)
    reference.SetSpacing([SPACING_MM] * 3)
    reference.SetOrigin(origin.tolist())
    reference.SetDirection(direction.ravel().tolist())
    ct = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkLinear, -1024.0, sitk.sitkInt16)
    liver = sitk.GetImageFromArray(mask.astype(np.uint8))
    liver.CopyInformation(label)
    liver = sitk.Resample(liver, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    sitk.WriteImage(ct, str(out / f"{case_id}.nrrd"), True)
    labels = LabelVolume.on_grid(
        sitk.GetArrayFromImage(liver),
        _grid(ct),
        [LabelSpec(1, "liver", (0.86, 0.5, 0.4), standard_terminology("liver"))],
    )
    write_seg_nrrd(labels, out / f"{case_id}.seg.nrrd")
    print(f"{case_id}: {size} voxels at {SPACING_MM} mm, liver {int(labels.array.sum())} voxels")


def _grid(image: sitk.Image):
    from UNetPlusPlusLib.engine.volume import Grid

    return Grid.from_sitk(image)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "liver"))
    args = parser.parse_args(argv)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for index, case in enumerate(CASES):
        export_case(Path(args.data), out, index, *case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
