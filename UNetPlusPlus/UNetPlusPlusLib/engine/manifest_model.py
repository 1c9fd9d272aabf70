"""``ModelManifest``: the contents of ``model.json``, its JSON form, loading and atomic saving.

Loading validates every field (:mod:`.manifest_schema`) and names the file and the field when
something is wrong; saving validates first and writes atomically.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from UNetPlusPlusLib.engine.manifest_schema import ManifestValidator
from UNetPlusPlusLib.engine.manifest_types import (
    FORMAT_VERSION,
    MANIFEST_FILENAME,
    WEIGHTS_FILENAME,
    ChannelSpec,
    LabelSpec,
    PathLike,
)
from UNetPlusPlusLib.errors import UNetPlusPlusError


@dataclass
class ModelManifest:
    """The contents of ``model.json``; ``path`` is where it was read from (not serialised)."""

    name: str
    task: str
    sha256: str
    network: dict
    channels: list[ChannelSpec]
    labels: list[LabelSpec]
    spacing: tuple[float, float, float]
    tile_size: tuple[int, int, int]
    overlap: float = 0.25
    depths: tuple[int, ...] = (1, 2, 3, 4)
    recommended_depth: int = 4
    description: str = ""
    weights: str = WEIGHTS_FILENAME
    prompt: Optional[dict] = None
    postprocess: dict = field(default_factory=dict)
    test_time_augmentation: dict = field(default_factory=dict)  # engine/tta.py; {} = all axes
    # {"crop_nonzero": bool} (nonzero_crop.py), {"crop_body": bool} (body_crop.py),
    # {"channel_check": bool, "channel_fingerprint": {...}} (channel_order.py),
    # {"max_nonzero_ml": float} (sanity.check_nonzero_extent)
    inference: dict = field(default_factory=dict)
    validation: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    path: Optional[Path] = field(default=None, compare=False, repr=False)

    # ----------------------------------------------------------------- reading and writing
    @classmethod
    def load(cls, path: PathLike) -> ModelManifest:
        """Read and validate a manifest (a ``model.json`` file or the folder holding one).

        ``path`` is kept absolute: a background job's process runs in another folder."""
        path = Path(path).absolute()
        if path.is_dir():
            path = path / MANIFEST_FILENAME
        if not path.is_file():
            what = "is not a regular file" if path.exists() else "does not exist"  # a FIFO
            raise UNetPlusPlusError(f"Model manifest {path} {what}.")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise UNetPlusPlusError(f"Model manifest {path} cannot be read: {exc}.") from exc
        except json.JSONDecodeError as exc:
            raise UNetPlusPlusError(
                f"Model manifest {path} is not valid JSON (line {exc.lineno}, column {exc.colno}:"
                f" {exc.msg})."
            ) from exc
        return cls.from_dict(data, path=path)

    @classmethod
    def from_dict(cls, data: Any, path: Optional[PathLike] = None) -> ModelManifest:
        """Validate a parsed manifest; errors name ``path`` (or "<dict>") and the field."""
        where = Path(path) if path is not None else None
        validator = ManifestValidator(str(path) if path is not None else "<dict>")
        return ModelManifest(**validator.manifest_fields(data), path=where)

    def to_dict(self) -> dict:
        """The JSON form, keys in the documented order; ``path`` is left out."""
        return {
            "format_version": self.format_version,
            "name": self.name,
            "task": self.task,
            "description": self.description,
            "weights": self.weights,
            "sha256": self.sha256,
            "network": copy.deepcopy(self.network),
            "channels": [c.to_dict() for c in self.channels],
            "labels": [label.to_dict() for label in self.labels],
            "spacing": list(self.spacing),
            "tile_size": list(self.tile_size),
            "overlap": self.overlap,
            "depths": list(self.depths),
            "recommended_depth": self.recommended_depth,
            "prompt": copy.deepcopy(self.prompt),
            "postprocess": copy.deepcopy(self.postprocess),
            **({"test_time_augmentation": dict(self.test_time_augmentation)}
               if self.test_time_augmentation else {}),
            **({"inference": copy.deepcopy(self.inference)} if self.inference else {}),
            "validation": copy.deepcopy(self.validation),
            "training": copy.deepcopy(self.training),
        }  # fmt: skip

    def save(self, path: PathLike) -> None:
        """Write ``model.json`` (validated first, written atomically) and remember ``path``."""
        path = Path(path)
        if path.is_dir():
            path = path / MANIFEST_FILENAME
        data = self.to_dict()
        ModelManifest.from_dict(data, path=path)  # refuse to write what could not be read back
        _atomic_write_bytes(path, manifest_text(data).encode("utf-8"))
        self.path = path

    # ------------------------------------------------------------------------- accessors
    @property
    def weights_path(self) -> Path:
        if self.path is None:
            raise ValueError(f"manifest {self.name!r} has no path; load() or save() it first")
        return self.path.parent / self.weights

    @property
    def num_classes(self) -> int:
        """Number of output classes, background included (== network ``out_channels``)."""
        return int(self.network["out_channels"])

    @property
    def in_channels(self) -> int:
        return len(self.channels)

    @property
    def tile_size_zyx(self) -> tuple[int, int, int]:
        x, y, z = self.tile_size
        return (z, y, x)

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        x, y, z = self.spacing
        return (z, y, x)

    def label_by_name(self, name: str) -> LabelSpec:
        """The label called ``name`` (case-insensitive)."""
        for label in self.labels:
            if label.name.lower() == name.lower():
                return label
        names = ", ".join(label.name for label in self.labels)
        raise UNetPlusPlusError(f"Model {self.name!r} has no label {name!r}; its labels: {names}.")

    def label_by_value(self, value: int) -> LabelSpec:
        for label in self.labels:
            if label.value == value:
                return label
        raise KeyError(value)

    def validation_for(self, depth: Union[int, str]) -> dict:
        """Validation figures recorded for ``depth`` (1..4 or "ensemble"); ``{}`` if none."""
        per_depth = self.validation.get("per_depth") or {}
        return copy.deepcopy(per_depth.get(str(depth), {}))


def manifest_text(data: dict) -> str:
    """The text of a model.json holding ``data``, as :meth:`ModelManifest.save` writes it (and
    the committed models are): two-space indents, lists of plain values on one line, a final
    newline. Scripts that edit one key of a model.json write with it, so only that key differs."""
    return _dumps(data) + "\n"


def _dumps(value: Any, indent: str = "") -> str:
    """JSON with two-space indents that keeps lists of plain values (colours, sizes) on one line."""
    inner = indent + "  "
    if isinstance(value, dict) and value:
        items = (f"{inner}{json.dumps(str(k))}: {_dumps(v, inner)}" for k, v in value.items())
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        return "[\n" + ",\n".join(inner + _dumps(v, inner) for v in value) + "\n" + indent + "]"
    return json.dumps(value)


def umask_file_mode() -> int:
    """The mode a new file gets under the process umask (0o644 under 022): ``tempfile.mkstemp``
    leaves 0o600, which made a trained model unreadable to the colleagues it is shared with."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp_name, umask_file_mode())
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
