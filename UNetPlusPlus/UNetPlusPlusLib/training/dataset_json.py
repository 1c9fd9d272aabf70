"""``dataset.json``: reading and checking a dataset description (docs/TRAINING_DATASETS.md).

Channel and label file patterns are relative to DATA_DIR, with a label mapping per source and a
patient-id regex for the split. Every problem raises :class:`UNetPlusPlusError` naming the
description file and the field.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any, Optional

from ..engine.manifest import ChannelSpec
from ..engine.network_shape import features_problem
from ..errors import UNetPlusPlusError
from ..resources import builtin_datasets_dir
from .dataset_training import check_training_defaults, foreign_format_error
from .dataset_types import (
    DEFAULT_COLORS,
    DatasetDescription,
    LabelDescription,
    PathLike,
    Selector,
    SourceDescription,
    default_normalization,
)

_DATASET_KEYS = {
    "format_version",
    "name",
    "task",
    "description",
    "channels",
    "labels",
    "sources",
    "patient_id",
    "validation_cases",
    "allow_empty",
    "spacing",
    "tile_size",
    "features",
    "prompt",
    "postprocess",
    "training",
    "notes",
}
_SOURCE_KEYS = {"name", "images", "label", "label_map", "label_source", "color_table", "notes"}


class _Fields:
    """Field checks whose errors name the description file and the field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, name: str, problem: str) -> UNetPlusPlusError:
        return UNetPlusPlusError(f"Dataset description {self.source}: '{name}' {problem}.")

    def string(self, value: Any, name: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(name, f"must be a non-empty string (got {value!r})")
        return value

    def strings(self, value: Any, name: str) -> list[str]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise self.fail(name, "must be a non-empty list of strings")
        return [self.string(v, f"{name}[{i}]") for i, v in enumerate(value)]

    def regex(self, value: Any, name: str) -> str:
        """A non-empty string that compiles as a regular expression."""
        text = self.string(value, name)
        try:
            re.compile(text)
        except re.error as error:
            raise self.fail(name, f"is not a valid regular expression ({error})") from error
        return text

    def vector3(self, value: Any, name: str, kind: type) -> tuple:
        if not isinstance(value, list) or len(value) != 3:
            raise self.fail(name, f"must be three numbers (x, y, z), got {value!r}")
        try:
            out = tuple(kind(v) for v in value)
        except (TypeError, ValueError) as error:
            raise self.fail(name, f"must be three numbers (x, y, z), got {value!r}") from error
        if min(out) <= 0:
            raise self.fail(name, f"must be positive, got {value!r}")
        return out

    def selectors(self, value: Any, name: str) -> list[Selector]:
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list) or not value:
            raise self.fail(name, "must list label values (integers) or segment names")
        for item in value:
            if isinstance(item, bool) or not isinstance(item, (int, str)):
                raise self.fail(name, f"holds {item!r}; use label values or segment names")
        return list(value)


def shipped_descriptions() -> dict[str, Path]:
    """The package's own dataset descriptions (``Resources/Datasets/*.json``) by name."""
    folder = builtin_datasets_dir()
    if folder is None:
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.json")) if p.is_file()}


def resolve_dataset_json(path: PathLike) -> Path:
    """The description file that ``--dataset-json PATH`` names.

    An existing file is itself. A bare name (``lidc-vois`` or ``lidc-vois.json``, no folder)
    that is no file here is the package's description of that name, so that a ``pip install``
    (wheel) finds the shipped descriptions outside the checkout. Raises
    :class:`UNetPlusPlusError` when neither exists, naming the shipped descriptions.
    """
    path = Path(path)
    if path.exists():
        return path
    shipped = shipped_descriptions()
    name = path.name[: -len(".json")] if path.name.endswith(".json") else path.name
    if path.parent == Path(".") and name in shipped:
        return shipped[name]
    message = f"Dataset description {path} does not exist."
    if name in shipped:
        message += (
            f" The package ships a description of that name: give --dataset-json {name} "
            f"({shipped[name]})."
        )
    elif shipped:
        message += f" The package ships these, by name: {', '.join(shipped)}."
    raise UNetPlusPlusError(message)


def load_dataset_json(path: PathLike, data_dir: PathLike) -> DatasetDescription:
    """Read and check a ``dataset.json``; its patterns are relative to ``data_dir``.

    ``path`` may name a shipped description (:func:`resolve_dataset_json`).
    """
    path = resolve_dataset_json(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise UNetPlusPlusError(f"Dataset description {path} does not exist.") from error
    except (OSError, UnicodeDecodeError) as error:
        raise UNetPlusPlusError(f"Dataset description {path} cannot be read: {error}.") from error
    except json.JSONDecodeError as error:
        raise UNetPlusPlusError(
            f"Dataset description {path} is not valid JSON (line {error.lineno}: {error.msg})."
        ) from error
    return dataset_from_dict(data, data_dir, source=str(path))


def dataset_from_dict(data: Any, data_dir: PathLike, source: str = "<dict>") -> DatasetDescription:
    """Check a parsed ``dataset.json`` and turn it into a :class:`DatasetDescription`."""
    fields = _Fields(source)
    if not isinstance(data, dict):
        raise UNetPlusPlusError(f"Dataset description {source} must hold a JSON object.")
    foreign = foreign_format_error(data, source)
    if foreign is not None:
        raise foreign
    unknown = sorted(set(data) - _DATASET_KEYS)
    if unknown:
        raise fields.fail(unknown[0], "is not a dataset field (check its spelling)")
    for key in ("name", "channels", "labels", "sources"):
        if key not in data:
            raise fields.fail(key, "is missing")
    name = fields.string(data["name"], "name")
    channels = _channels(data["channels"], fields)
    labels = _labels(data["labels"], fields)
    if not isinstance(data["sources"], list) or not data["sources"]:
        raise fields.fail("sources", "must list at least one source of cases")
    sources = [
        _source(item, i, len(channels), labels, fields) for i, item in enumerate(data["sources"])
    ]
    patient = data.get("patient_id")
    if patient is not None:
        fields.regex(patient, "patient_id")
    validation = data.get("validation_cases", [])
    if not isinstance(validation, list):  # a string's letters were taken as ids
        raise fields.fail("validation_cases", "must be a list of case or patient ids (regexes)")
    validation = [fields.regex(str(c), f"validation_cases[{i}]") for i, c in enumerate(validation)]
    training = check_training_defaults(data.get("training"), fields.fail)
    checks = _manifest_checks(source)  # the model's fields, checked as the manifest's are
    if "postprocess" in data:
        checks.postprocess(data["postprocess"], labels)
    checks.prompt(data.get("prompt"))
    features = data.get("features")
    if features is not None:
        if not isinstance(features, list) or len(features) != 6:
            raise fields.fail("features", "must list six integers (f0..f4, f_final)")
        features = tuple(checks.integer(f, f"features[{i}]", 1) for i, f in enumerate(features))
        problem = features_problem(features)  # f2..f4 of 1: the network's own refusal
        if problem is not None:
            raise fields.fail("features", problem)
    return DatasetDescription(
        name=name,
        task=fields.string(data.get("task", name), "task"),
        root=Path(data_dir),
        channels=channels,
        labels=labels,
        sources=sources,
        description=str(data.get("description", "")),
        patient_regex=patient,
        validation_cases=validation,
        allow_empty=bool(data.get("allow_empty", False)),
        spacing=_optional_vector(data, "spacing", float, fields),
        tile_size=_optional_vector(data, "tile_size", int, fields),
        features=features,
        prompt=copy.deepcopy(data.get("prompt")),
        postprocess=copy.deepcopy(data.get("postprocess", {})),
        training=training,
        origin=source,
    )


def _manifest_checks(source: str):
    """The manifest's field checks (``engine/manifest_schema.ManifestValidator``), their errors
    naming the dataset description: ``postprocess``, ``prompt`` and ``features`` are checked
    when dataset.json is read. A bad ``postprocess`` entry failed only when the trained model
    was saved, after the whole run (not an object: a traceback in the label checks)."""
    from ..engine.manifest_schema import ManifestValidator

    class _DatasetFields(ManifestValidator):
        def fail(self, field_name: str, problem: str) -> UNetPlusPlusError:
            return _Fields(self.source).fail(field_name, problem)

    return _DatasetFields(source)


def _optional_vector(data: dict, key: str, kind: type, fields: _Fields) -> Optional[tuple]:
    return None if data.get(key) is None else fields.vector3(data[key], key, kind)


def _channels(value: Any, fields: _Fields) -> list[ChannelSpec]:
    if not isinstance(value, list) or not value:
        raise fields.fail("channels", "must list at least one input channel")
    out = []
    for i, item in enumerate(value):
        where = f"channels[{i}]"
        if not isinstance(item, dict):
            raise fields.fail(where, "must be an object with name, modality and normalization")
        name = fields.string(item.get("name"), f"{where}.name")
        modality = fields.string(item.get("modality", "CT"), f"{where}.modality")
        norm = item.get("normalization") or default_normalization(modality)
        if not isinstance(norm, dict) or norm.get("kind") not in ("ct", "mr"):
            raise fields.fail(f"{where}.normalization", "must be {'kind': 'ct'|'mr', ...}")
        out.append(ChannelSpec(name, modality, copy.deepcopy(norm)))
    return out


def _labels(value: Any, fields: _Fields) -> list[LabelDescription]:
    if not isinstance(value, list) or not value:
        raise fields.fail("labels", "must list at least one label (background is implicit)")
    out = []
    for i, item in enumerate(value):
        where = f"labels[{i}]"
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict):
            raise fields.fail(where, "must be a label name or an object with a name")
        name = fields.string(item.get("name"), f"{where}.name")
        if "value" in item and item["value"] != i + 1:
            raise fields.fail(f"{where}.value", f"must be {i + 1}: classes are numbered in order")
        color = item.get("color") or DEFAULT_COLORS[i % len(DEFAULT_COLORS)]
        out.append(LabelDescription(name, tuple(float(c) for c in color), item.get("terminology")))
    if len({label.name.lower() for label in out}) != len(out):
        raise fields.fail("labels", "repeats a label name")
    return out


def _source(
    item: Any, index: int, n_channels: int, labels: list[LabelDescription], fields: _Fields
) -> SourceDescription:
    where = f"sources[{index}]"
    if not isinstance(item, dict):
        raise fields.fail(where, "must be an object with images, label and label_map")
    unknown = sorted(set(item) - _SOURCE_KEYS)
    if unknown:
        raise fields.fail(f"{where}.{unknown[0]}", "is not a source field")
    images = fields.strings(item.get("images"), f"{where}.images")
    if len(images) != n_channels:
        raise fields.fail(
            f"{where}.images", f"lists {len(images)} patterns for {n_channels} channels"
        )
    label = fields.string(item.get("label"), f"{where}.label")
    raw_map = item.get("label_map")
    if not isinstance(raw_map, dict):
        raise fields.fail(f"{where}.label_map", "must map each label name to its source values")
    names = {label.name.lower(): label.name for label in labels}
    label_map: dict[str, list[Selector]] = {}
    for key, selectors in raw_map.items():
        if key.lower() not in names:
            raise fields.fail(
                f"{where}.label_map.{key}",
                f"is not one of the labels ({', '.join(names.values())})",
            )
        label_map[names[key.lower()]] = fields.selectors(selectors, f"{where}.label_map.{key}")
    missing = [n for n in names.values() if n not in label_map]
    if missing:
        raise fields.fail(f"{where}.label_map", f"does not map the label(s) {', '.join(missing)}")
    return SourceDescription(
        name=fields.string(item.get("name", f"source{index}"), f"{where}.name"),
        images=images,
        label=label,
        label_map=label_map,
        label_source=str(item.get("label_source", "")),
        color_table=item.get("color_table"),
    )
