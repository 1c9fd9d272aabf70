"""Typical volumes for the default models (liver CT, BraTS case, lung-nodule prompt), if present."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
TASKS = (("liver", "liver"), ("brain", "brain-tumor"), ("nodule", "lung-nodule"))
_BRATS_SUFFIXES = (
    ("t1ce", "t1ce"),
    ("t1c", "t1ce"),
    ("t1gd", "t1ce"),
    ("flair", "flair"),
    ("t2", "t2"),
    ("t1", "t1"),
)


def installed_models() -> dict[str, Path]:
    """Manifest path per task key ("liver", "brain", "nodule") among the installed models."""
    from UNetPlusPlusLib.engine.registry import list_models

    found: dict[str, Path] = {}
    for manifest in list_models():
        task = manifest.task.lower().replace("_", "-")
        for key, name in TASKS:
            if key not in found and (task == name or task.startswith(key)):
                found[key] = Path(manifest.path)
    return found


def _liver_images(manifest) -> Optional[list[str]]:
    for path in (
        SHARED_DATA / "liver" / "totalsegmentator-dataset-s0009" / "ct.nii.gz",
        REPO / "Resources" / "Examples" / "example_ct.nii.gz",
    ):
        if path.is_file():
            return [str(path)]
    return None


def _brain_images(manifest) -> Optional[list[str]]:
    cases = sorted((SHARED_DATA / "brain-tumor" / "brats2018").glob("Brats18_*"))
    if not cases:
        return None
    case = cases[0]
    images = []
    for channel in manifest.channels:
        name = channel.name.lower().replace("-", "").replace(" ", "")
        sequence = next((seq for key, seq in _BRATS_SUFFIXES if key in name), None)
        path = case / f"{case.name}_{sequence}.nii.gz"
        if sequence is None or not path.is_file():
            return None
        images.append(str(path))
    return images


def _nodule_images(manifest) -> Optional[list[str]]:
    images = sorted((SHARED_DATA / "lung-nodule" / "lidc-vois" / "image").glob("*.nii.gz"))
    return [str(images[0])] if images else None


def typical_job(key: str, manifest_path: Path, threads: int) -> Optional[dict]:
    """A ``model`` worker job for this task, or None when no typical volume is available."""
    from UNetPlusPlusLib.engine.manifest import ModelManifest

    manifest = ModelManifest.load(manifest_path)
    images = {"liver": _liver_images, "brain": _brain_images, "nodule": _nodule_images}[key](
        manifest
    )
    if images is None:
        return None
    job = {"kind": "model", "manifest": str(manifest_path), "images": images, "threads": threads}
    if key == "nodule" or (manifest.prompt or {}).get("kind") == "point":
        job["point"] = _centre_lps(images[0])
    return job


def _centre_lps(path: str) -> list[float]:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    reader.ReadImageInformation()
    centre = [(n - 1) / 2.0 for n in reader.GetSize()]
    image = sitk.Image([1, 1, 1], sitk.sitkUInt8)
    image.SetOrigin(reader.GetOrigin())
    image.SetSpacing(reader.GetSpacing())
    image.SetDirection(reader.GetDirection())
    return list(image.TransformContinuousIndexToPhysicalPoint(centre))
