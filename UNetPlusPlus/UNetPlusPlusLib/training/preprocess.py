"""The preprocessing cache: each case on the model's canonical grid, normalised.

Training sees exactly what inference sees: the engine's Predictor resamples a volume onto
``canonical_grid(volume, spacing)`` (identity LPS direction, model spacing) with linear
interpolation and normalises it with ``normalize(volume, manifest channels)``; this module calls
the same engine functions. Labels are resampled with nearest neighbour onto the same grid.

Each case is stored as plain ``.npy`` arrays (loaded with ``allow_pickle=False`` and memory
mapped) plus a small JSON file, under a key that changes whenever an input file, the spacing,
the normalisation or the label mapping changes, so a stale cache is never reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from ..engine.file_stamp import file_stamp
from ..engine.normalize import normalize
from ..engine.volume import LabelVolume, canonical_grid, resample_labels, resample_volume
from .cases import CaseData, read_case
from .dataset_types import CaseFiles, DatasetDescription

CACHE_VERSION = 1
MAX_FOREGROUND_POINTS = 20000


@dataclass
class PreprocessedCase:
    """A case on the model grid: image (C, z, y, x) float32, labels (z, y, x) uint8."""

    case_id: str
    patient_id: str
    image: np.ndarray
    labels: np.ndarray
    foreground: np.ndarray  # (n, 4) int32 rows (class, z, y, x), a sample of labelled voxels
    pad_values: np.ndarray  # (C,) per-channel minimum, the fill for patches beyond the volume

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        return tuple(self.labels.shape)  # type: ignore[return-value]

    def classes_present(self) -> np.ndarray:
        return np.unique(self.foreground[:, 0]) if len(self.foreground) else np.zeros(0, int)


def preprocess_case(
    case: CaseData, spacing_xyz: Sequence[float], normalizations: Sequence[dict]
) -> tuple[np.ndarray, np.ndarray]:
    """Resample a case onto its canonical grid and normalise it as the Predictor does."""
    grid = canonical_grid(case.image, spacing_xyz)
    resampled = resample_volume(case.image, grid, interpolator="linear")
    image = normalize(resampled, list(normalizations)).array
    labels = LabelVolume.on_grid(case.labels, case.image.grid)
    return image.astype(np.float32, copy=False), resample_labels(labels, grid).array


def foreground_points(labels: np.ndarray, seed: int) -> np.ndarray:
    """Up to MAX_FOREGROUND_POINTS labelled voxels per class, as (class, z, y, x) rows."""
    rng = np.random.default_rng(seed)
    rows = []
    for value in np.unique(labels):
        if value == 0:
            continue
        points = np.argwhere(labels == value)
        if len(points) > MAX_FOREGROUND_POINTS:
            points = points[rng.choice(len(points), MAX_FOREGROUND_POINTS, replace=False)]
        rows.append(np.column_stack([np.full(len(points), value), points]))
    if not rows:
        return np.zeros((0, 4), dtype=np.int32)
    return np.concatenate(rows).astype(np.int32)


def cache_key(case: CaseFiles, dataset: DatasetDescription, spacing_xyz: Sequence[float]) -> str:
    """A digest of everything the cached arrays depend on (each input file by
    :func:`~UNetPlusPlusLib.engine.file_stamp.file_stamp`: path, size, mtime, ctime, inode)."""
    files = list(case.images) + [case.label] + ([case.color_table] if case.color_table else [])
    stats = []
    for path in files:
        stats.append(file_stamp(path))
    payload = {
        "version": CACHE_VERSION,
        "files": stats,
        "spacing": [float(s) for s in spacing_xyz],
        "channels": [c.to_dict() for c in dataset.channels],
        "labels": [label.name for label in dataset.labels],
        "label_map": {k: list(v) for k, v in case.source.label_map.items()},
        "allow_empty": dataset.allow_empty,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _folder_name(case_id: str, key: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", case_id).strip("_") or "case"
    return f"{safe[:60]}-{key[:16]}"


def load_cached(folder: Path) -> Optional[PreprocessedCase]:
    """A cached case (memory-mapped), or None when the folder is incomplete."""
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    arrays = {}
    for name in ("image", "labels", "foreground"):
        arrays[name] = np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False)
    return PreprocessedCase(
        case_id=meta["case_id"],
        patient_id=meta["patient_id"],
        image=arrays["image"],
        labels=arrays["labels"],
        foreground=np.asarray(arrays["foreground"]),
        pad_values=np.asarray(meta["pad_values"], dtype=np.float32),
    )


def _write_cached(folder: Path, case: CaseFiles, image: np.ndarray, labels: np.ndarray, seed):
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
    try:
        np.save(tmp / "image.npy", np.ascontiguousarray(image, dtype=np.float32))
        np.save(tmp / "labels.npy", np.ascontiguousarray(labels, dtype=np.uint8))
        np.save(tmp / "foreground.npy", foreground_points(labels, seed))
        meta = {
            "case_id": case.case_id,
            "patient_id": case.patient_id,
            "images": [str(p) for p in case.images],
            "label": str(case.label),
            "shape_zyx": list(labels.shape),
            "pad_values": [float(image[c].min()) for c in range(image.shape[0])],
            "voxels_per_class": np.bincount(labels.ravel(), minlength=1).tolist(),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def build_cache(
    dataset: DatasetDescription,
    cases: Sequence[CaseFiles],
    spacing_xyz: Sequence[float],
    cache_dir: Path,
    log: Callable[[str], None] = print,
    write: bool = True,
) -> list[PreprocessedCase]:
    """Preprocess every case not yet cached (only when ``write``) and load them all."""
    normalizations = [c.normalization for c in dataset.channels]
    out = []
    for index, case in enumerate(cases, start=1):
        key = cache_key(case, dataset, spacing_xyz)
        folder = Path(cache_dir) / _folder_name(case.case_id, key)
        cached = load_cached(folder)
        if cached is None and write:
            log(f"preprocessing {index}/{len(cases)}: {case.case_id}")
            image, labels = preprocess_case(read_case(case, dataset), spacing_xyz, normalizations)
            if not labels.any():
                log(
                    f"warning: case '{case.case_id}' has no labelled voxel left at spacing "
                    f"{list(spacing_xyz)} mm; its patches will all be background"
                )
            _write_cached(folder, case, image, labels, seed=int(key[:8], 16))
            cached = load_cached(folder)
        if cached is None:
            raise RuntimeError(f"case {case.case_id} missing from the cache {folder}")
        out.append(cached)
    return out
