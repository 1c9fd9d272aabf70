"""Evaluate the lung-nodule model with point prompts, as a user would run it.

Two checks, each printing one JSON object:

``crops``: the model's held-out LIDC crops (``validation.cases`` in model.json); the point is the
centre of each crop (the crops are nodule-centred), the reference the crop's expert mask.

``slabs``: the full-resolution LIDC-IDRI DICOM slabs, with the reference rasterised from the
readers' XML outlines. Each reader's nodule is filled slice by slice (pixel centres inside the
outline, ``inclusion=FALSE`` outlines cut out); the readers' nodules that overlap form one
nodule, and the reference is the voxels marked by at least half of its readers (the usual 50 %
consensus). The point is the centroid of that reference. Slices that cannot be read (one slice of
LIDC-IDRI-0003 is truncated) are reported and left out, the slab read from the others.

    python scripts/evaluate_nodule.py UNetPlusPlus/UNetPlusPlusLib/Resources/Models/lung-nodule \\
        ../shared/data/lung-nodule

``centre|offset|edge [MM] [EVERY] [--rows]`` after the two paths: the crops only, as one JSON
object, with the click at the centre, MM (default 2.5) from the centre towards the nodule's
farthest in-plane edge, or MM outside that edge (``offset_point``); EVERY takes every n-th
crop; it also counts the results that touch the first box's faces inside the image, the extra
passes and the engine's "beyond the analysed box" warnings, and lists the results warned about
as smaller than the smallest lesion (``postprocess.min_lesion_mm3``).
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import UNetPlusPlusLib.engine.passive_wait  # noqa: F401  (before torch: no OpenMP busy-wait)
from matplotlib.path import Path as Polygon
from UNetPlusPlusLib.engine.image_read import read_image, read_volume, volume_from_sitk
from UNetPlusPlusLib.engine.predictor import Predictor
from UNetPlusPlusLib.engine.prompt_boxes import prompt_boxes
from UNetPlusPlusLib.engine.volume import box_to_index_slices
from UNetPlusPlusLib.errors import UNetPlusPlusError

NS = {"l": "http://www.nih.gov"}


def dice(prediction: np.ndarray, reference: np.ndarray) -> float:
    total = int(prediction.sum()) + int(reference.sum())
    return 1.0 if total == 0 else 2.0 * int((prediction & reference).sum()) / total


def crop_centre(image: sitk.Image) -> tuple[float, float, float]:
    """Physical (LPS) centre of an image's voxel grid."""
    centre = [(s - 1) / 2.0 for s in image.GetSize()]
    return tuple(image.TransformContinuousIndexToPhysicalPoint(centre))


def read_crop(data: Path, case: str) -> tuple:
    """One held-out LIDC crop: (its Volume, its sitk image, the expert mask (z, y, x))."""
    image_path = data / "lidc-vois" / "image" / f"{case}.nii.gz"
    mask = sitk.GetArrayFromImage(
        sitk.ReadImage(str(data / "lidc-vois" / "nodule_mask" / f"{case}.nii.gz"))
    )
    return read_volume([image_path]), read_image(image_path), mask


def evaluate_crops(predictor: Predictor, data: Path, cases: list[str], depth="auto") -> dict:
    """Point-prompted Dice on the nodule-centred crops named in ``cases``."""
    scores = []
    for case in cases:
        volume, image, mask = read_crop(data, case)
        point = crop_centre(image)
        result = predictor.segment(volume, depth=depth, point=point)
        scores.append(dice(result.labels.array == 1, mask > 0))
    return {"cases": len(scores), "mean_dice": float(np.mean(scores)), "dice": scores}


def offset_point(image: sitk.Image, mask: np.ndarray, mode: str, mm: float) -> tuple:
    """A click off the nodule's centre (physical LPS), towards its farthest in-plane edge.

    The edge direction is the one of +-x, +-y (index axes) along which the mask reaches farthest
    from its centroid. ``mode`` "offset": the crop's centre moved ``mm`` that way; "edge": the
    last mask voxel on that ray from the centroid, moved ``mm`` further out (outside the nodule,
    as a hurried click lands; the engine keeps a component within 3 mm)."""
    spacing = np.asarray(image.GetSpacing())[::-1]  # z, y, x
    centroid = np.argwhere(mask).mean(axis=0)
    best = None
    for axis in (1, 2):
        for sign in (-1, 1):
            step = np.zeros(3)
            step[axis] = sign
            k = 0
            while True:
                voxel = np.floor(centroid + (k + 1) * step + 0.5).astype(int)
                if np.any(voxel < 0) or np.any(voxel >= mask.shape) or not mask[tuple(voxel)]:
                    break
                k += 1
            reach = k * spacing[axis]
            if best is None or reach > best[0]:
                best = (reach, step)
    reach, step = best
    if mode == "offset":
        start = (np.asarray(mask.shape) - 1) / 2.0
        index = start + step * mm / spacing
    else:
        index = centroid + step * (reach / spacing + mm / spacing)
    return tuple(image.TransformContinuousIndexToPhysicalPoint([float(v) for v in index[::-1]]))


def box_faces(predictor: Predictor, volume, point, labels: np.ndarray) -> list[str]:
    """Faces of the first analysis box (the prompt box around ``point``) that the result
    touches, leaving out faces at the image border, e.g. ["x-", "z+"]."""
    box = prompt_boxes(predictor.manifest, None, point)[0]
    slices = box_to_index_slices(volume.grid, box)
    touched = []
    for axis, name in zip(range(3), "zyx"):
        low, high = slices[axis].start, slices[axis].stop
        part = labels[slices]
        if low > 0 and np.take(part, 0, axis=axis).any():
            touched.append(name + "-")
        if high < labels.shape[axis] and np.take(part, -1, axis=axis).any():
            touched.append(name + "+")
    return touched


def evaluate_offsets(
    predictor: Predictor, data: Path, cases: list[str], mode: str, mm: float, depth="auto"
) -> dict:
    """Dice on the held-out crops with clicks off the centre (``offset_point``), and how often
    the result touches the first box's faces inside the image or carries the engine's warning
    that the nodule may extend beyond the analysed box."""
    rows = []
    for case in cases:
        volume, image, mask = read_crop(data, case)
        point = crop_centre(image) if mode == "centre" else offset_point(image, mask > 0, mode, mm)
        result = predictor.segment(volume, depth=depth, point=point)
        labels = result.labels.array == 1
        warnings = result.info.get("warnings", [])
        warned = any("beyond the analysed box" in w for w in warnings)
        rows.append(
            {
                "case": case,
                "dice": round(dice(labels, mask > 0), 4),
                "first_box_faces": box_faces(predictor, volume, point, labels),
                "passes": (result.info.get("point_box") or {}).get("passes", 1),
                "warned": warned,
                "small_warned": any("may have missed the lesion" in w for w in warnings),
            }
        )
    scores = [r["dice"] for r in rows]
    return {
        "mode": mode,
        "mm": mm if mode != "centre" else 0.0,
        "cases": len(rows),
        "mean_dice": round(float(np.mean(scores)), 4),
        "below_0.5": [(r["case"], r["dice"]) for r in rows if r["dice"] < 0.5],
        "touching_first_box": sum(bool(r["first_box_faces"]) for r in rows),
        "extra_passes": sum(r["passes"] > 1 for r in rows),
        "warned": sum(r["warned"] for r in rows),
        "small_warned": [(r["case"], r["dice"]) for r in rows if r["small_warned"]],
        "rows": rows,
    }


# ---------------------------------------------------------------------------- DICOM slabs
def read_slab(folder: Path) -> tuple[sitk.Image, list[str], list[str]]:
    """The slab (the engine's reader skips unreadable slices), the SOP instance UID of each of
    its slices in order, and the files that were left out."""
    image = read_image(folder)
    headers, unreadable = {}, []
    for path in sorted(folder.glob("*.dcm")):
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        try:
            reader.ReadImageInformation()
            z = float(reader.GetMetaData("0020|0032").split("\\")[2])
        except RuntimeError:
            unreadable.append(path.name)  # truncated: the engine's reader left it out too
            continue
        headers[path.name] = (z, reader.GetMetaData("0008|0018").strip())
    uids, used = [], set()
    for k in range(image.GetSize()[2]):
        z = image.TransformIndexToPhysicalPoint((0, 0, k))[2]
        name = min(headers, key=lambda n: abs(headers[n][0] - z))
        if abs(headers[name][0] - z) > 1e-3:
            raise UNetPlusPlusError(f"{folder}: no DICOM file for slice {k} at z = {z} mm.")
        uids.append(headers[name][1])
        used.add(name)
    return image, uids, sorted(unreadable + list(set(headers) - used))


def reader_masks(xml_path: Path, uids: list[str], shape_zyx: tuple[int, int, int]) -> list:
    """One boolean mask per reader's nodule (outlined, i.e. >= 3 mm), on the slab grid."""
    slice_of = {uid: k for k, uid in enumerate(uids)}
    rows, cols = shape_zyx[1], shape_zyx[2]
    yy, xx = np.mgrid[0:rows, 0:cols]
    centres = np.column_stack([xx.ravel(), yy.ravel()])
    masks = []
    root = ET.parse(xml_path).getroot()
    for session in root.findall("l:readingSession", NS):
        for nodule in session.findall("l:unblindedReadNodule", NS):
            mask = np.zeros(shape_zyx, dtype=bool)
            for roi in nodule.findall("l:roi", NS):
                uid = roi.findtext("l:imageSOP_UID", default="", namespaces=NS).strip()
                points = [
                    (
                        float(e.findtext("l:xCoord", namespaces=NS)),
                        float(e.findtext("l:yCoord", namespaces=NS)),
                    )
                    for e in roi.findall("l:edgeMap", NS)
                ]
                if uid not in slice_of or len(points) < 3:
                    continue
                inside = Polygon(points).contains_points(centres).reshape(rows, cols)
                include = roi.findtext("l:inclusion", default="TRUE", namespaces=NS)
                if include.strip().upper() == "FALSE":
                    mask[slice_of[uid]] &= ~inside
                else:
                    mask[slice_of[uid]] |= inside
            if mask.any():
                masks.append(mask)
    return masks


def consensus_nodules(masks: list, level: float = 0.5, min_voxels: int = 10) -> list[np.ndarray]:
    """Group overlapping readers' nodules; per group, voxels marked by >= level of its readers
    (groups whose consensus has fewer than ``min_voxels`` voxels are left out)."""
    if not masks:
        return []
    union = np.any(masks, axis=0)
    labelled = sitk.ConnectedComponent(
        sitk.GetImageFromArray(union.astype(np.uint8)), True
    )  # fully connected: 26-neighbourhood
    components = sitk.GetArrayFromImage(labelled)
    count = int(components.max())
    nodules = []
    for index in range(1, count + 1):
        region = components == index
        members = [m for m in masks if (m & region).any()]
        votes = np.sum([m & region for m in members], axis=0)
        reference = votes >= max(1, int(np.ceil(level * len(members))))
        if reference.sum() >= min_voxels:
            nodules.append(reference)
    return nodules


def evaluate_slabs(predictor: Predictor, data: Path, depth="auto") -> dict:
    """Point-prompted Dice against the readers' 50 % consensus on the DICOM slabs."""
    results = []
    validation = set(predictor.manifest.validation.get("cases", []))
    training_names = [p.name for p in (data / "lidc-vois" / "image").glob("*.nii.gz")]
    for xml_path in sorted((data / "lidc-dicom-slabs").rglob("*.xml")):
        folder = xml_path.parent
        patient = folder.parents[1].name
        image, uids, refused = read_slab(folder)
        volume = volume_from_sitk([image])
        shape = volume.array.shape[1:]
        nodules = consensus_nodules(reader_masks(xml_path, uids, shape))
        for number, reference in enumerate(nodules, start=1):
            centroid_zyx = np.argwhere(reference).mean(axis=0)
            point = image.TransformContinuousIndexToPhysicalPoint(
                [float(c) for c in centroid_zyx[::-1]]
            )
            result = predictor.segment(volume, depth=depth, point=tuple(point))
            prediction = result.labels.array == 1
            results.append(
                {
                    "patient": patient,
                    "in_training": any(
                        name.startswith(patient + "_") and name[: -len(".nii.gz")] not in validation
                        for name in training_names
                    ),
                    "predicted_voxels": int(prediction.sum()),
                    "nodule": number,
                    "reference_voxels": int(reference.sum()),
                    "slices": f"{int(np.any(reference, axis=(1, 2)).sum())} of {shape[0]}",
                    "refused_slices": refused,
                    "dice": round(dice(prediction, reference), 4),
                }
            )
    scores = [r["dice"] for r in results]
    return {"nodules": results, "mean_dice": float(np.mean(scores)) if scores else None}


def main(argv: list[str]) -> int:
    """Print the evaluation as Markdown (for the model card's evaluation.md)."""
    package, data = Path(argv[0]), Path(argv[1])
    predictor = Predictor.from_manifest_path(package, device="cpu", threads=2)
    cases = list(predictor.manifest.validation.get("cases", []))
    options = [a for a in argv[2:] if a != "--rows"]
    if options and options[0] in ("centre", "offset", "edge"):  # one JSON object
        mm = float(options[1]) if len(options) > 1 else 2.5
        every = int(options[2]) if len(options) > 2 else 1
        summary = evaluate_offsets(predictor, data, cases[::every], options[0], mm)
        rows = summary.pop("rows")
        if "--rows" in argv:
            summary["rows"] = rows
        print(json.dumps(summary))
        return 0
    depth = predictor.manifest.recommended_depth
    print(
        "`scripts/evaluate_nodule.py` runs the Predictor with a point prompt, as "
        "`unetpp segment --point` does, at the recommended depth "
        f"L{depth}, with the largest-component post-processing; Dice on the input grid.\n"
    )
    if len(argv) < 3 or argv[2] != "slabs":
        crops = evaluate_crops(predictor, data, cases)
        print(
            f"- **Held-out LIDC crops** (point at each crop's centre, expert masks): mean Dice "
            f"**{crops['mean_dice']:.3f}** over {crops['cases']} crops "
            f"(median {np.median(crops['dice']):.3f}; "
            f"{sum(d >= 0.5 for d in crops['dice'])} of {crops['cases']} at >= 0.5)."
        )
    slabs = evaluate_slabs(predictor, data)
    print(
        "- **Full-resolution LIDC-IDRI DICOM slabs** (512 x 512, reference = 50 % consensus of "
        "the readers' XML outlines, point at its centroid):\n"
    )
    print(
        "| patient | patient's crops in training | nodule | reference voxels | "
        "predicted voxels | slices with nodule | Dice | slices refused |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in slabs["nodules"]:
        refused = ", ".join(r["refused_slices"]) or "-"
        print(
            f"| {r['patient']} | {'yes' if r['in_training'] else 'no'} | {r['nodule']} | "
            f"{r['reference_voxels']} | {r['predicted_voxels']} | {r['slices']} | "
            f"{r['dice']:.3f} | {refused} |"
        )
    print(
        "\nThe truncated slice of LIDC-IDRI-0003 is refused by the reader (a warning naming the "
        "file) and the slab is read from the remaining slices."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
