"""The dataset fingerprint: what the planner needs to know about the cases.

Per case, read once on the case's own grid (as nnU-Net's fingerprint extraction does, Isensee et
al., Nature Methods 2021): the size (x, y, z voxels), the spacing (x, y, z mm), intensity
statistics per channel inside the labelled voxels (mean, std, 0.5/50/99.5 percentiles, in the
image's units: HU for CT), the volume of each label (mL) and the extent of the labelled voxels
along the image axes (x, y, z mm), and the image-content fingerprint (case_content.py) that finds
a renamed copy of a parent model's case. The result is cached as JSON beside the preprocessed cases
under a key of the input files, so a second run (or ``--plan-only`` then the run) reads it back.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from ..engine.file_stamp import file_stamp
from .case_content import LEGACY_METHOD, CasePrint, training_print, volume_print
from .cases import read_case
from .dataset_types import CaseFiles, DatasetDescription

FINGERPRINT_VERSION = 4  # 2: the image-content fingerprint; 3: its mirror state and patches;
# 4: the training print (image, labels and spacing; --resume compares it)
MAX_INTENSITY_SAMPLES = 10000


@dataclass
class CaseFingerprint:
    """One case on its own grid."""

    case_id: str
    size_xyz: list[int]
    spacing_xyz: list[float]
    intensity: list[dict]  # per channel: mean, std, p00_5, p50, p99_5 of the labelled voxels
    label_ml: list[float]  # per model label 1..K, mL
    foreground_mm_xyz: list[float]  # extent of the labelled voxels (0 when empty)
    content: str = ""  # image print (case_content.py)
    content_slices: str = ""  # its axial slice prints, one string (case_content.py)
    content_patches: str = ""  # its in-plane patch prints, one string (case_patches.py)
    training_print: str = ""  # image print, labels and spacing (case_content.training_print)

    @property
    def size_mm_xyz(self) -> np.ndarray:
        return np.asarray(self.size_xyz, float) * np.asarray(self.spacing_xyz, float)


@dataclass
class DatasetFingerprint:
    """All cases, and the summaries the planner reads."""

    cases: list[CaseFingerprint] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    def median_spacing(self) -> tuple[float, float, float]:
        """Median spacing (x, y, z) in mm."""
        values = np.median([c.spacing_xyz for c in self.cases], axis=0)
        return tuple(float(v) for v in values)  # type: ignore[return-value]

    def case_size_mm(self, percentile: float = 50) -> np.ndarray:
        """Physical size (x, y, z) in mm of the cases, per axis percentile."""
        return np.percentile([c.size_mm_xyz for c in self.cases], percentile, axis=0)

    def foreground_mm(self, percentile: float = 90) -> np.ndarray:
        """Extent (x, y, z) in mm of the labelled voxels, per axis percentile over the cases
        that hold any; zeros when none does."""
        rows = [c.foreground_mm_xyz for c in self.cases if max(c.foreground_mm_xyz) > 0]
        if not rows:
            return np.zeros(3)
        return np.percentile(rows, percentile, axis=0)

    def summary(self) -> dict:
        """A short JSON-able summary for plan.json and the log."""
        out = {
            "cases": len(self.cases),
            "median_spacing_mm": [round(v, 3) for v in self.median_spacing()],
            "median_size_voxels": [int(v) for v in np.median([c.size_xyz for c in self.cases], 0)],
            "median_size_mm": [round(float(v), 1) for v in self.case_size_mm(50)],
            "foreground_mm_p50": [round(float(v), 1) for v in self.foreground_mm(50)],
            "foreground_mm_p90": [round(float(v), 1) for v in self.foreground_mm(90)],
        }
        volumes = np.asarray([c.label_ml for c in self.cases], float).reshape(len(self.cases), -1)
        out["label_ml_median"] = {
            name: round(float(np.median(volumes[:, i])), 3) for i, name in enumerate(self.labels)
        }
        out["intensity"] = {
            name: {
                key: round(float(np.median([c.intensity[i][key] for c in self.cases])), 2)
                for key in ("mean", "std", "p00_5", "p99_5")
            }
            for i, name in enumerate(self.channels)
        }
        return out

    def to_dict(self) -> dict:
        return {"version": FINGERPRINT_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> DatasetFingerprint:
        return cls(
            cases=[CaseFingerprint(**c) for c in data["cases"]],
            channels=list(data["channels"]),
            labels=list(data["labels"]),
        )


def case_fingerprint(
    case_id: str,
    image: np.ndarray,
    labels: np.ndarray,
    spacing_xyz: Sequence[float],
    num_labels: int,
    seed: int = 0,
) -> CaseFingerprint:
    """Fingerprint of image (C, z, y, x) and labels (z, y, x) at ``spacing_xyz`` (mm)."""
    spacing = np.asarray(spacing_xyz, float)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    counts = np.bincount(labels.ravel(), minlength=num_labels + 1)[1 : num_labels + 1]
    foreground = labels > 0
    extent = [0.0, 0.0, 0.0]
    if foreground.any():
        lo_hi = [np.flatnonzero(foreground.any(axis=tuple(a for a in range(3) if a != axis)))
                 for axis in range(3)]  # fmt: skip
        extent_zyx = [(idx[-1] - idx[0] + 1) for idx in lo_hi]
        extent = [float(e * s) for e, s in zip(extent_zyx[::-1], spacing)]
    rng = np.random.default_rng(seed)
    intensity = []
    for channel in image:
        values = channel[foreground] if foreground.any() else channel.ravel()
        if len(values) > MAX_INTENSITY_SAMPLES:
            values = values[rng.choice(len(values), MAX_INTENSITY_SAMPLES, replace=False)]
        values = values.astype(np.float64)
        p005, p50, p995 = np.percentile(values, [0.5, 50, 99.5])
        intensity.append(
            {
                "mean": float(values.mean()),
                "std": float(values.std()),
                "p00_5": float(p005),
                "p50": float(p50),
                "p99_5": float(p995),
            }
        )
    return CaseFingerprint(
        case_id=case_id,
        size_xyz=[int(v) for v in labels.shape[::-1]],
        spacing_xyz=[float(v) for v in spacing],
        intensity=intensity,
        label_ml=[round(float(c) * voxel_ml, 4) for c in counts],
        foreground_mm_xyz=[round(e, 3) for e in extent],
    )


def fingerprint_key(dataset: DatasetDescription, cases: Sequence[CaseFiles]) -> str:
    """A digest of the input files (path, size, mtime, ctime, inode: file_stamp.py), channels
    and label mapping."""
    stats = []
    for case in cases:
        files = list(case.images) + [case.label] + ([case.color_table] if case.color_table else [])
        for path in files:
            stats.append(file_stamp(path))
        stats.append({k: list(v) for k, v in case.source.label_map.items()})
    payload = {
        "version": FINGERPRINT_VERSION,
        "files": stats,
        "channels": [c.name for c in dataset.channels],
        "labels": dataset.label_names,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def dataset_fingerprint(
    dataset: DatasetDescription,
    cases: Sequence[CaseFiles],
    cache_dir: Path,
    log: Callable[[str], None] = print,
) -> DatasetFingerprint:
    """The fingerprint of ``cases``, read from ``cache_dir`` or computed and cached there.

    Raises UNetPlusPlusError (from reading a case) naming the case that cannot be read.
    """
    key = fingerprint_key(dataset, cases)
    path = Path(cache_dir) / f"fingerprint-{key[:16]}.json"
    cached = _load(path)
    if cached is not None:
        log(f"dataset fingerprint: {len(cached.cases)} cases (cached {path.name})")
        return cached
    log(f"dataset fingerprint: reading {len(cases)} case(s) once")
    result = DatasetFingerprint(
        channels=[c.name for c in dataset.channels], labels=list(dataset.label_names)
    )
    for index, case in enumerate(cases):
        data = read_case(case, dataset)
        found = case_fingerprint(
            case.case_id,
            data.image.array,
            data.labels,
            data.image.spacing,
            len(dataset.labels),
            seed=index,
        )
        printed = volume_print(data.image)
        found.content, found.content_slices = printed.image, printed.slices_text()
        found.content_patches = printed.patches_text()
        found.training_print = training_print(
            printed.image, data.labels, data.image.spacing, data.image.direction
        )
        result.cases.append(found)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(result.to_dict()), encoding="utf-8")
    os.replace(tmp, path)
    return result


def case_contents(
    dataset: DatasetDescription, cases: Sequence[CaseFiles], cache_dir: Path
) -> tuple[dict[str, CasePrint], dict[str, str]]:
    """Case id -> image-content print of ``cases``, and case id -> training print (image,
    labels, spacing), from the dataset fingerprint (a cache hit after ``make_plan``; read once
    otherwise). Raises as :func:`dataset_fingerprint`."""
    found = dataset_fingerprint(dataset, cases, cache_dir, log=lambda message: None)
    prints = {
        c.case_id: CasePrint.from_text(c.content, c.content_slices, c.content_patches)
        for c in found.cases
    }
    return prints, {c.case_id: c.training_print for c in found.cases}


def with_legacy_prints(
    dataset: DatasetDescription,
    cases: Sequence[CaseFiles],
    content: dict[str, CasePrint],
    log: Callable[[str], None],
) -> dict[str, CasePrint]:
    """``content`` with each case's LEGACY_METHOD print added (``CasePrint.legacy``), to match
    a parent model that records prints of that older method: one more read of every case, said
    in ``log``. Raises UNetPlusPlusError (from reading a case) naming the case."""
    log(
        f"the --init model records image fingerprints of an older method ({LEGACY_METHOD}): "
        f"reading the {len(cases)} case(s) once more to compute them"
    )
    out = dict(content)
    for case in cases:
        printed = volume_print(read_case(case, dataset).image, legacy=True)
        out[case.case_id] = replace(out[case.case_id], legacy=printed)
    return out


def _load(path: Path) -> Optional[DatasetFingerprint]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if data.get("version") != FINGERPRINT_VERSION:
        return None
    return DatasetFingerprint.from_dict(data)
