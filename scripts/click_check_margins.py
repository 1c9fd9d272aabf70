"""Margins of the lung-nodule click check (engine/click_check.py) on the shared data.

Labelled nodules (false alarms: there must be none): the 814 LIDC crops, clicked at the crop's
centre (as scripts/evaluate_nodule.py does) and at the outline's voxel nearest its centroid,
and the readers' 50 % consensus nodules of the 3 LIDC DICOM slabs, clicked at their centroid.
Bad clicks (detection): on the TotalSegmentator-labelled CTs (example_ct, example_ct_sm,
example_ct_dicom: 26-50 vertebrae, 92-115 ribs, 51 heart, 5 liver), the deepest voxel of each
vertebra, each rib, the heart and the liver, plus random voxels of the heart and liver; the
LiTS and s0009 livers; the centre of the two chest crops around the heart (pulm_ct_cropped,
aorta_ct_cropped); air 10 and 40 mm in front of the body; and 3, 6, 10 and 20 mm behind its
back (the table's pad, the table, air: outside the body whatever the HU), and each solid run
(above -400 HU) behind the back on that column (the table top and frame). ``--model`` also runs the
nodule model on the bad clicks and on every ``--every``-th crop's centre (post-inference rule).

    PYTHONPATH=UNetPlusPlus python scripts/click_check_margins.py ../shared/data [--model]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import UNetPlusPlusLib.engine.passive_wait  # noqa: F401  (before torch: no OpenMP busy-wait)
from UNetPlusPlusLib.engine.click_check import measure_click
from UNetPlusPlusLib.engine.image_read import read_volume, volume_from_sitk
from UNetPlusPlusLib.engine.volume import volume_to_sitk
from UNetPlusPlusLib.errors import UNetPlusPlusError

sys.path.insert(0, str(Path(__file__).resolve().parent))
GROUPS = {"spine": range(26, 51), "rib": range(92, 116), "heart": [51], "liver": [5]}
LABELLED = (
    ("example_ct.nii.gz", "example_seg_fast_force_split.nii.gz"),
    ("example_ct_sm.nii.gz", "example_seg.nii.gz"),
    ("example_ct_dicom", "example_seg_dicom.nii.gz"),
)


def _read(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_volume([path], ["CT"])


def _point(volume, zyx) -> tuple:
    return tuple(volume.grid.index_to_physical(np.asarray(zyx, dtype=float)[::-1]))


def deepest(mask: np.ndarray, spacing) -> np.ndarray:
    """(z, y, x) of the voxel of ``mask`` farthest from its boundary."""
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing(tuple(float(s) for s in spacing))
    distance = sitk.GetArrayFromImage(
        sitk.SignedMaurerDistanceMap(image, insideIsPositive=True, useImageSpacing=True)
    )
    return np.array(np.unravel_index(np.argmax(np.where(mask, distance, -1e9)), mask.shape))


def nodule_clicks(data: Path):
    """(name, volume, point, reference mask or None, mask's grid origin) of every nodule."""
    from evaluate_nodule import consensus_nodules, crop_centre, read_slab, reader_masks

    for path in sorted((data / "lidc-vois" / "image").glob("*.nii.gz")):
        volume = _read(path)
        mask = sitk.ReadImage(str(data / "lidc-vois" / "nodule_mask" / path.name))
        mask = sitk.GetArrayFromImage(mask)
        yield path.name + " centre", volume, crop_centre(sitk.ReadImage(str(path))), mask
        voxels = np.argwhere(mask > 0)
        nearest = voxels[np.argmin(np.linalg.norm(voxels - voxels.mean(axis=0), axis=1))]
        yield path.name + " outline", volume, _point(volume, nearest), mask
    for xml_path in sorted((data / "lidc-dicom-slabs").rglob("*.xml")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image, uids, _ = read_slab(xml_path.parent)
        volume = volume_from_sitk([image])
        nodules = consensus_nodules(reader_masks(xml_path, uids, volume.array.shape[1:]))
        for number, reference in enumerate(nodules, start=1):
            point = _point(volume, np.argwhere(reference).mean(axis=0))
            yield f"{xml_path.parents[2].name} nodule {number}", volume, point, reference


def bad_clicks(data: Path, rng: np.random.Generator):
    """(kind, name, volume, point) of clicks on what is not a nodule."""
    examples = data / "liver" / "totalsegmentator-examples"
    for image, labels in LABELLED:
        volume = _read(examples / image)
        reference = volume_to_sitk(volume)  # the labels on the CT's grid (DICOM: another order)
        seg = sitk.Resample(sitk.ReadImage(str(examples / labels)), reference, sitk.Transform(),
                            sitk.sitkNearestNeighbor, 0)  # fmt: skip
        seg = sitk.GetArrayFromImage(seg)
        spacing = volume.spacing[::-1]
        for kind, values in GROUPS.items():
            for value in values:
                mask = seg == value
                if np.count_nonzero(mask) < 20:
                    continue
                point = _point(volume, deepest(mask, spacing))
                yield kind, f"{image} {value} deepest", volume, point
                if kind in ("heart", "liver"):
                    voxels = np.argwhere(mask)
                    for n in rng.choice(len(voxels), 4, replace=False):
                        yield kind, f"{image} {value} random", volume, _point(volume, voxels[n])
        yield from air_clicks(image, volume)
    lits = data / "liver" / "lits-partial"
    for n in (0, 1):
        volume = _read(lits / f"liver_{n}_ct.nii.gz")
        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(lits / f"liver_{n}_label.nii.gz"))) == 1
        point = _point(volume, deepest(mask, volume.spacing[::-1]))
        yield "liver", f"lits {n} deepest", volume, point
        yield from air_clicks(f"lits {n}", volume)
    for name in ("pulm_ct_cropped.nii.gz", "aorta_ct_cropped.nii.gz"):  # crops around the heart
        volume = _read(examples / name)
        centre = (np.asarray(volume.grid.size_xyz) - 1) / 2.0
        yield "heart", f"{name} centre", volume, tuple(volume.grid.index_to_physical(centre))
    s0009 = data / "liver" / "totalsegmentator-dataset-s0009"
    volume = _read(s0009 / "ct.nii.gz")
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(s0009 / "liver.nii.gz"))) == 1
    yield "liver", "s0009 deepest", volume, _point(volume, deepest(mask, volume.spacing[::-1]))


def air_clicks(name: str, volume):
    """Air 10 and 40 mm in front of the body (LPS -y), and 3-20 mm behind it (+y: the table
    side), on the middle slice, through its middle (the array's y axis may point either way)."""
    z = volume.array.shape[1] // 2
    body = volume.array[0, z] > -400
    cols = np.nonzero(body.any(axis=0))[0]
    x = int((cols[0] + cols[-1]) / 2)
    rows = np.nonzero(body[:, x])[0]
    ends = [_point(volume, (z, row, x)) for row in (rows[0], rows[-1])]
    front = min(ends, key=lambda p: p[1])  # the smaller LPS y: anterior
    back = max(ends, key=lambda p: p[1])
    for mm in (10.0, 40.0):
        point = (front[0], front[1] - mm, front[2])
        index = volume.grid.physical_to_index(np.asarray(point))
        if np.all(index >= 0) and np.all(index <= np.asarray(volume.grid.size_xyz) - 1):
            yield "outside air", f"{name} {mm:g} mm in front", volume, point
    for mm in (3.0, 6.0, 10.0, 20.0):  # behind the back: the table's pad, the table, air
        point = (back[0], back[1] + mm, back[2])
        index = volume.grid.physical_to_index(np.asarray(point))
        if np.all(index >= 0) and np.all(index <= np.asarray(volume.grid.size_xyz) - 1):
            yield "behind body", f"{name} {mm:g} mm behind", volume, point
    yield from table_clicks(name, volume, z, x)


def table_clicks(name: str, volume, z: int, x: int):
    """The middle voxel of each solid run (above -400 HU) behind the body's back on the middle
    slice's middle column (the body: its longest run): the table top and its frame, solid and
    outside the body."""
    solid = volume.array[0, z, :, x] > -400
    edges = np.flatnonzero(np.diff(np.concatenate([[0], solid.astype(int), [0]])))
    runs = list(zip(edges[::2], edges[1::2] - 1))
    if not runs:
        return
    body = max(runs, key=lambda run: run[1] - run[0])
    back_y = max(_point(volume, (z, row, x))[1] for row in body)  # LPS +y: posterior
    for start, end in runs:
        middle = (start + end) // 2
        point = _point(volume, (z, middle, x))
        if (start, end) != body and point[1] > back_y:
            yield "table", f"{name} table {point[1] - back_y:.0f} mm behind", volume, point


def segment_mean(volume, labels) -> float:
    """Mean CT value (HU) of a click's segment, on the volume's voxels (nan when empty)."""
    mask = labels.array != 0
    if not mask.any():
        return float("nan")
    start = np.floor(volume.grid.physical_to_index(np.asarray(labels.origin)) + 0.5).astype(int)
    region = tuple(slice(int(a), int(a) + n) for a, n in zip(start[::-1], mask.shape))
    return float(volume.array[0][region][mask].mean())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", type=Path)
    parser.add_argument("--model", action="store_true", help="also run the nodule model")
    parser.add_argument("--every", type=int, default=8, help="with --model: every Nth crop")
    args = parser.parse_args()
    predictor = None
    if args.model:
        from UNetPlusPlusLib.engine.predictor import Predictor

        predictor = Predictor.from_task("lung-nodule", device="cpu", threads=2)
    verdicts, medians, shares, means, alarms = defaultdict(int), [], [], [], []
    seen, dense, model_rows = [], [], []
    for n, (name, volume, point, mask) in enumerate(nodule_clicks(args.data / "lung-nodule")):
        click = measure_click(volume, point)
        verdicts[click.verdict] += 1
        medians.append(click.median_hu)
        shares.append(click.lung_share)
        means.append(float(volume.array[0][mask > 0].mean()))
        seen.append(click.seen_share)
        if means[-1] > 200 or click.median_hu > 300:
            ml = np.count_nonzero(mask) * np.prod(volume.spacing) / 1000.0
            dense.append(f"  {name}: outline mean {means[-1]:.0f} HU, {ml:.2f} ml; click "
                         f"{click.median_hu:.0f} HU, lung {click.lung_share:.2f}")  # fmt: skip
        if click.verdict:
            alarms.append(f"{name}: {click}")
        if predictor is not None and name.endswith("centre") and n % (2 * args.every) == 0:
            result = predictor.segment(volume, point=point)
            found = [w for w in result.info["warnings"] if "as bone has" in w]
            alarms += [f"{name} (model): {w}" for w in found]
            ml = float(np.count_nonzero(result.labels.array)) * np.prod(volume.spacing) / 1000
            model_rows.append((segment_mean(volume, result.labels), ml, name))
    print(f"nodule clicks: {len(medians)}; verdicts {dict(verdicts)}")
    print(f"  median HU within 3 mm: {np.min(medians):.0f} to {np.max(medians):.0f}; "
          f"above 0 HU: {np.mean(np.asarray(medians) > 0):.2f}")  # fmt: skip
    high = [s for m, s in zip(medians, shares) if m > 100]
    print(f"  lung share within 20 mm: min {np.min(shares):.3f}; clicks above 100 HU: "
          f"{len(high)}, their lung share min {min(high, default=float('nan')):.3f}")  # fmt: skip
    above = int(np.sum(np.asarray(means) > 100))
    print(f"  outline mean HU: max {np.max(means):.0f}; above 100: {above}")
    half = float(np.mean(np.asarray(seen) >= 0.5))
    print(f"  clicks whose 20 mm ball the image holds at least half of: {half:.2f}")
    print("dense nodules (outline mean above 200 HU or click median above 300 HU):")
    print("\n".join(dense))
    print("\n".join(alarms))
    if model_rows:
        model_rows.sort(reverse=True)
        print(f"model on {len(model_rows)} crop centres; highest segment means (HU, ml):")
        print("\n".join(f"  {m:.0f} HU, {ml:.2f} ml: {n}" for m, ml, n in model_rows[:8]))
    rows = defaultdict(list)
    rng = np.random.default_rng(0)
    for kind, name, volume, point in bad_clicks(args.data, rng):
        click = measure_click(volume, point)
        row = f"  {kind:12s} {name}: {click.median_hu:.0f} HU, lung {click.lung_share:.3f}, "
        row += f"seen {click.seen_share:.2f} -> {click.verdict or 'SILENT'}"
        if predictor is not None and click.verdict != "outside_air":
            try:
                result = predictor.segment(volume, point=point)
                ml = float(np.count_nonzero(result.labels.array)) * np.prod(volume.spacing) / 1000
                row += f"; model {ml:.2f} ml, mean {segment_mean(volume, result.labels):.0f} HU"
                row += ", warned: " + " | ".join(w[:60] for w in result.info["warnings"])
            except UNetPlusPlusError as error:
                row += f"; model refused: {error}"
        rows[kind].append((bool(click.verdict), row))
    for kind, found in rows.items():
        caught = sum(c for c, _ in found)
        print(f"{kind}: {caught} of {len(found)} caught before inference")
        print("\n".join(r for _, r in found))


if __name__ == "__main__":
    main()
