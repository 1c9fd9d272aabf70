"""What the MR model-input checks say about the shared BraTS cases whole and cropped.

For each case (18 BraTS 2018, BRATS 2012 HG0001) the brain-tumour model's checks of
``sanity.check_sequence_order`` (background, extent, clusters, near duplicates, sequence order,
bias field, extreme voxels: what ``check_model_input`` adds to the generic checks) on the whole
image as given, then on cubes of 48, 64 and 80 mm centred on the tumour (the centroid of the
expert label), each in the right order, with T1 <-> T1ce and with FLAIR <-> T2 swapped. Each
run is classed by its first order finding: ``refused (order)``, ``refused (background)`` (the
zero-background check: a crop whose inside holds too few zeros), another refusal by its text,
``order-warned`` ("may be in the wrong order"), ``unchecked`` ("could not be checked") or
``silent``; the joint brain volume (ml non-zero in every channel) is printed with it.
Run it on two checkouts to compare (the decisions do not depend on the load)::

    PYTHONPATH=UNetPlusPlus python scripts/mr_crop_order_study.py ../shared/data
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.registry import find_model
from UNetPlusPlusLib.engine.sanity import channel_samples, check_sequence_order, image_volume_ml
from UNetPlusPlusLib.errors import UNetPlusPlusError

NAMES = ("FLAIR", "T1", "T1ce", "T2")
SIZES_MM = (48, 64, 80)
ORDERS = {"right": (0, 1, 2, 3), "T1<->T1ce": (0, 2, 1, 3), "FLAIR<->T2": (3, 1, 2, 0)}


def cases(shared: Path) -> dict:
    """Case name -> (its four files in the model's order, its label file)."""
    found = {}
    for folder in sorted((shared / "brain-tumor" / "brats2018").glob("Brats18_*")):
        files = [folder / f"{folder.name}_{s}.nii.gz" for s in ("flair", "t1", "t1ce", "t2")]
        found[folder.name] = (files, folder / f"{folder.name}_seg.nii.gz")
    hg = shared / "brain-tumor" / "brats2012-HG0001"
    files = [hg / f"BRATS_HG0001_{s}.mha" for s in ("FLAIR", "T1", "T1C", "T2")]
    found["brats2012-HG0001"] = (files, hg / "BRATS_HG0001_truth.mha")
    return found


def decide(manifest, arrays, spacing) -> str:
    """The class of the first order finding of the checks on ``arrays`` at ``spacing``."""
    try:
        warnings = check_sequence_order(manifest, arrays, True, spacing)
    except UNetPlusPlusError as error:
        text = str(error)
        if "wrong order" in text:
            return "refused (order)"
        return "refused (background)" if "background" in text else f"refused: {text[:60]}"
    for warning in warnings:
        if "could not be checked" in warning:
            return "unchecked"
        if "may be in the wrong order" in warning:
            return "order-warned"
    return "silent"


def joint_ml(arrays, spacing) -> float:
    """ml non-zero in every channel (from the strided samples the checks use)."""
    samples = channel_samples(arrays)
    inside = np.logical_and.reduce([s != 0 for s in samples])
    return float(inside.mean()) * image_volume_ml(arrays[0].shape, spacing)


def main(shared: Path) -> None:
    manifest = find_model("brain-tumor")
    tally: dict = collections.defaultdict(collections.Counter)
    for name, (files, label_file) in cases(shared).items():
        volume = read_volume(files, NAMES)
        arrays, spacing = list(volume.array), volume.spacing
        label = sitk.GetArrayFromImage(sitk.ReadImage(str(label_file)))
        centre = np.argwhere(label > 0).mean(axis=0).round().astype(int)  # (z, y, x)
        whole = decide(manifest, arrays, spacing)
        tally["whole right"][whole] += 1
        print(f"{name}: whole {joint_ml(arrays, spacing):.0f} ml: {whole}", flush=True)
        for size in SIZES_MM:
            half = [int(round(size / 2 / s)) for s in reversed(spacing)]  # (z, y, x) voxels
            box = tuple(
                slice(max(0, c - h), min(n, c + h))
                for c, h, n in zip(centre, half, arrays[0].shape)
            )
            crop = [np.ascontiguousarray(a[box]) for a in arrays]
            found = []
            for label_, order in ORDERS.items():
                what = decide(manifest, [crop[i] for i in order], spacing)
                tally[f"{size} mm {label_}"][what] += 1
                found.append(f"{label_} {what}")
            print(f"  {size} mm ({joint_ml(crop, spacing):.0f} ml): " + "; ".join(found))
    print("\nsummary (cases per decision):")
    for key, counter in tally.items():
        print(f"{key}: " + ", ".join(f"{n} {what}" for what, n in counter.most_common()))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("../shared/data"))
