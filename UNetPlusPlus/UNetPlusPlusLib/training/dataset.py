"""Dataset descriptions and case discovery.

A dataset is described either by a ``dataset.json`` (see docs/TRAINING.md: channel and label file
patterns relative to DATA_DIR, a label mapping per source, a patient-id regex for the split), or,
with no description at all, by a folder of 3D Slicer exports::

    <case>.nrrd                  one channel   (or <case>_<channel>.nrrd, one file per channel)
    <case>.seg.nrrd              segmentation with segment names and terminology
    <case>-label.nrrd + .ctbl    or a labelmap with a Slicer colour table

Patterns are paths relative to DATA_DIR in which ``{case}`` stands for the case id (its first
occurrence captures it, later ones must repeat it), ``*`` for any run of characters within one
folder and ``**/`` for any number of folders.
"""

from __future__ import annotations

import copy
import json
import re
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from ..engine.manifest import ChannelSpec
from ..errors import UNetPlusPlusError

PathLike = Union[str, Path]
Selector = Union[int, str]

IMAGE_SUFFIXES = (".nrrd", ".nii.gz", ".nii", ".mha", ".mhd")
SEGMENTATION_SUFFIX = ".seg.nrrd"
LABELMAP_MARKERS = ("-label", "_label", ".label")
COLOR_TABLE_SUFFIXES = (".ctbl", ".txt", ".csv")
DEFAULT_CT_WINDOW = (-1000.0, 1000.0)
SLICER_EXPORT = "slicer-export"

# Distinct, readable colours for labels that bring none (Slicer's GenericAnatomyColors-like).
DEFAULT_COLORS = (
    (0.87, 0.56, 0.38),
    (0.50, 0.68, 0.50),
    (0.95, 0.84, 0.57),
    (0.69, 0.48, 0.40),
    (0.44, 0.72, 0.82),
    (0.85, 0.40, 0.60),
)


@dataclass
class LabelDescription:
    """One model class (its value is its position, 1..K); colour and codes go to the manifest."""

    name: str
    color: tuple[float, float, float]
    terminology: Optional[dict] = None


@dataclass
class SourceDescription:
    """A group of cases sharing file patterns and a label mapping.

    ``label_map`` maps each model label name to selectors in the label file: integers are label
    values, strings are segment (or colour-table) names or terminology codes ("SCT:10200004").
    """

    name: str
    images: list[str]
    label: str
    label_map: dict[str, list[Selector]]
    label_source: str = ""
    color_table: Optional[str] = None
    layout: str = "patterns"


@dataclass
class CaseFiles:
    """The files of one training case."""

    case_id: str
    patient_id: str
    images: list[Path]
    label: Path
    source: SourceDescription
    color_table: Optional[Path] = None


@dataclass
class DatasetDescription:
    """Everything needed to find, read and preprocess the cases of a dataset."""

    name: str
    task: str
    root: Path
    channels: list[ChannelSpec]
    labels: list[LabelDescription]
    sources: list[SourceDescription]
    description: str = ""
    patient_regex: Optional[str] = None
    validation_cases: list[str] = field(default_factory=list)
    allow_empty: bool = False
    spacing: Optional[tuple[float, float, float]] = None
    tile_size: Optional[tuple[int, int, int]] = None
    features: Optional[tuple[int, ...]] = None
    prompt: Optional[dict] = None
    postprocess: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    origin: str = ""
    notes: list[str] = field(default_factory=list)  # said in the training log (merged names)

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]

    def label_sources(self) -> str:
        """Provenance of the labels, one phrase per source ("expert", "model output", ...)."""
        seen: list[str] = []
        for source in self.sources:
            if source.label_source and source.label_source not in seen:
                seen.append(source.label_source)
        return "; ".join(seen)


def normalized_name(name: str) -> str:
    """A segment or label name compared without case, '_' or repeated spaces."""
    return " ".join(name.lower().replace("_", " ").split())


# ----------------------------------------------------------------------------- dataset.json
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


def load_dataset_json(path: PathLike, data_dir: PathLike) -> DatasetDescription:
    """Read and check a ``dataset.json``; its patterns are relative to ``data_dir``."""
    path = Path(path)
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
        try:
            re.compile(fields.string(patient, "patient_id"))
        except re.error as error:
            raise fields.fail(
                "patient_id", f"is not a valid regular expression ({error})"
            ) from error
    features = data.get("features")
    if features is not None:
        if not isinstance(features, list) or len(features) != 6:
            raise fields.fail("features", "must list six integers (f0..f4, f_final)")
        features = tuple(int(f) for f in features)
    return DatasetDescription(
        name=name,
        task=fields.string(data.get("task", name), "task"),
        root=Path(data_dir),
        channels=channels,
        labels=labels,
        sources=sources,
        description=str(data.get("description", "")),
        patient_regex=patient,
        validation_cases=[str(c) for c in data.get("validation_cases", [])],
        allow_empty=bool(data.get("allow_empty", False)),
        spacing=_optional_vector(data, "spacing", float, fields),
        tile_size=_optional_vector(data, "tile_size", int, fields),
        features=features,
        prompt=copy.deepcopy(data.get("prompt")),
        postprocess=copy.deepcopy(data.get("postprocess", {})),
        training=copy.deepcopy(data.get("training", {})),
        origin=source,
    )


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


def default_normalization(modality: str, window: Optional[Sequence[float]] = None) -> dict:
    """The manifest normalisation for a modality: a CT window, or the MR z-score."""
    if modality.upper() == "CT":
        low, high = window or DEFAULT_CT_WINDOW
        return {"kind": "ct", "window": [float(low), float(high)]}
    return {"kind": "mr"}


def select_labels(dataset: DatasetDescription, names: Sequence[str]) -> DatasetDescription:
    """Keep only the named labels (in the order given), renumbered 1..K."""
    by_name = {label.name.lower(): label for label in dataset.labels}
    chosen = []
    for name in names:
        label = by_name.get(name.strip().lower())
        if label is None:
            raise UNetPlusPlusError(
                f"Dataset '{dataset.name}' has no label {name!r}; its labels: "
                f"{', '.join(dataset.label_names)}."
            )
        chosen.append(label)
    sources = [
        replace(s, label_map={label.name: s.label_map[label.name] for label in chosen})
        for s in dataset.sources
    ]
    return replace(dataset, labels=chosen, sources=sources)


# ----------------------------------------------------------------------------- patterns
def _pattern_regex(template: str) -> re.Pattern:
    parts = re.split(r"(\{case\}|\*\*/|\*|\?)", template)
    out, seen_case = [], False
    for part in parts:
        if part == "{case}":
            out.append("(?P=case)" if seen_case else "(?P<case>[^/]+?)")
            seen_case = True
        elif part == "**/":
            out.append("(?:[^/]+/)*")
        elif part == "*":
            out.append("[^/]*")
        elif part == "?":
            out.append("[^/]")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out))


def _glob(root: Path, template: str) -> list[Path]:
    pattern = template.replace("{case}", "*")
    if not any(ch in pattern for ch in "*?["):
        path = root / pattern
        return [path] if path.exists() else []
    return sorted(root.glob(pattern))


def _resolve_one(root: Path, template: str, case_id: str, what: str) -> Optional[Path]:
    concrete = template.replace("{case}", case_id)
    matches = _glob(root, concrete)
    if len(matches) > 1:
        shown = ", ".join(str(m.relative_to(root)) for m in matches[:3])
        raise UNetPlusPlusError(
            f"Case '{case_id}': the {what} pattern '{concrete}' matches {len(matches)} files "
            f"({shown}, ...); make it match one."
        )
    return matches[0] if matches else None


def patient_id(case_id: str, regex: Optional[str]) -> str:
    """The patient a case belongs to: the regex's 'patient' group, group 1 or whole match."""
    if not regex:
        return case_id
    match = re.search(regex, case_id)
    if match is None:
        return case_id
    if "patient" in match.groupdict():
        return match.group("patient")
    return match.group(1) if match.groups() else match.group(0)


def find_cases(
    dataset: DatasetDescription, problems: Optional[list[str]] = None
) -> list[CaseFiles]:
    """Every case of the dataset, sorted by case id; missing files raise naming the case.

    With a ``problems`` list, a case with missing files is left out and its problem appended
    instead (``dataset_check`` reports them all at once).
    """
    root = dataset.root
    if not root.is_dir():
        raise UNetPlusPlusError(f"Data folder {root} does not exist.")
    cases: list[CaseFiles] = []
    for source in dataset.sources:
        if source.layout == SLICER_EXPORT:
            cases.extend(_find_slicer_cases(dataset, source, problems))
        else:
            cases.extend(_find_pattern_cases(dataset, source, problems))
    ids = [case.case_id for case in cases]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise UNetPlusPlusError(
            f"Dataset '{dataset.name}' has two cases called '{duplicates[0]}'; case ids must be "
            "unique across sources."
        )
    if not cases and not problems:
        patterns = "; ".join(s.images[0] for s in dataset.sources)
        raise UNetPlusPlusError(
            f"No training cases found in {root} (looked for {patterns}); check DATA_DIR and the "
            "dataset description."
        )
    return sorted(cases, key=lambda c: c.case_id)


def _collect(problems: Optional[list[str]], make, *args) -> Optional[CaseFiles]:
    """``make(*args)``, or None with its error appended to ``problems`` (when given)."""
    try:
        return make(*args)
    except UNetPlusPlusError as error:
        if problems is None:
            raise
        problems.append(str(error))
        return None


def _find_pattern_cases(
    dataset: DatasetDescription, source: SourceDescription, problems: Optional[list[str]] = None
) -> list:
    root = dataset.root
    first = source.images[0]
    regex = _pattern_regex(first)
    found: dict[str, Path] = {}
    for path in _glob(root, first):
        relative = path.relative_to(root).as_posix()
        match = regex.fullmatch(relative)
        if match is None:
            continue
        case_id = match.groupdict().get("case") or source.name
        found.setdefault(case_id, path)
    cases = [
        _collect(problems, _pattern_case, dataset, source, i, p) for i, p in sorted(found.items())
    ]
    return [case for case in cases if case is not None]


def _pattern_case(
    dataset: DatasetDescription, source: SourceDescription, case_id: str, first_path: Path
) -> CaseFiles:
    root = dataset.root
    images = [first_path]
    for channel, template in zip(dataset.channels[1:], source.images[1:]):
        path = _resolve_one(root, template, case_id, f"'{channel.name}' channel")
        if path is None:
            raise UNetPlusPlusError(
                f"Case '{case_id}' has {len(images)} of the {len(dataset.channels)} channels "
                f"({', '.join(c.name for c in dataset.channels)}): no file matches "
                f"'{template.replace('{case}', case_id)}' for channel '{channel.name}'."
            )
        images.append(path)
    label = _resolve_one(root, source.label, case_id, "label")
    if label is None:
        raise UNetPlusPlusError(
            f"Case '{case_id}' has no label file: nothing matches "
            f"'{source.label.replace('{case}', case_id)}' in {root}."
        )
    table = None
    if source.color_table:
        table = _resolve_one(root, source.color_table, case_id, "colour table")
        if table is None:
            raise UNetPlusPlusError(
                f"Case '{case_id}': colour table "
                f"'{source.color_table.replace('{case}', case_id)}' not found in {root}."
            )
    return CaseFiles(
        case_id=case_id,
        patient_id=patient_id(case_id, dataset.patient_regex),
        images=images,
        label=label,
        source=source,
        color_table=table,
    )


# ----------------------------------------------------------------------------- Slicer exports
def _strip_suffix(name: str, suffixes: Sequence[str]) -> Optional[str]:
    lower = name.lower()
    for suffix in sorted(suffixes, key=len, reverse=True):
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return None


def _label_files(root: Path) -> dict[str, Path]:
    """Case stem -> label file: ``<case>.seg.nrrd`` or ``<case>-label.nrrd`` (and variants)."""
    out: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        stem = _strip_suffix(path.name, (SEGMENTATION_SUFFIX,))
        if stem is None:
            base = _strip_suffix(path.name, IMAGE_SUFFIXES)
            if base is None:
                continue
            marker = next((m for m in LABELMAP_MARKERS if base.lower().endswith(m)), None)
            if marker is None:
                continue
            stem = base[: -len(marker)]
        relative = (path.parent / stem).relative_to(root).as_posix()
        if relative in out and out[relative].name.lower().endswith(SEGMENTATION_SUFFIX):
            continue  # a .seg.nrrd wins over a labelmap of the same case
        out[relative] = path
    return out


def _images_for(stem_path: Path, label: Path, other_cases: Sequence[str] = ()) -> dict:
    """Channel suffix ("" for a single channel) -> image file of one exported case.

    Files that are the image of another case (``case_1.nrrd`` beside ``case_1_b.seg.nrrd``'s
    ``case_1_b.nrrd``) are not taken as channels.
    """
    folder, stem = stem_path.parent, stem_path.name
    out: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path == label or not path.is_file():
            continue
        base = _strip_suffix(path.name, IMAGE_SUFFIXES)
        if base is None or path.name.lower().endswith(SEGMENTATION_SUFFIX):
            continue
        if any(base.lower().endswith(m) for m in LABELMAP_MARKERS) or base in other_cases:
            continue
        if base == stem:
            out[""] = path
        elif base.startswith(stem + "_"):
            out[base[len(stem) + 1 :]] = path
    return out


def _color_table_for(label: Path, stem_path: Path) -> Optional[Path]:
    base = _strip_suffix(label.name, IMAGE_SUFFIXES) or label.stem
    candidates = [label.parent / (base + s) for s in COLOR_TABLE_SUFFIXES]
    candidates += [label.parent / (base + "_ColorTable" + s) for s in COLOR_TABLE_SUFFIXES]
    candidates += [stem_path.parent / (stem_path.name + s) for s in COLOR_TABLE_SUFFIXES]
    for path in candidates:
        if path.is_file():
            return path
    tables = [p for p in label.parent.glob("*.ctbl") if p.is_file()]
    return tables[0] if len(tables) == 1 else None


def describe_slicer_export(
    data_dir: PathLike,
    labels: Optional[Sequence[str]] = None,
    channels: Optional[Sequence[ChannelSpec]] = None,
    modality: str = "auto",
    ct_window: Optional[Sequence[float]] = None,
    name: Optional[str] = None,
) -> DatasetDescription:
    """Describe a folder of Slicer exports (no dataset.json needed).

    Labels are picked by segment name (or terminology code) with ``labels``; without it, the
    segments of the first case are used. Channels are the ``<case>_<channel>`` suffixes in
    alphabetical order (FLAIR, T1, T1ce, T2 for brain MR) unless ``channels`` gives them.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise UNetPlusPlusError(f"Data folder {root} does not exist.")
    label_files = _label_files(root)
    if not label_files:
        raise UNetPlusPlusError(
            f"No Slicer exports found in {root}: expected <case>.nrrd with <case>.seg.nrrd (or "
            "<case>-label.nrrd with a colour table), or give --dataset-json."
        )
    first_stem, first_label = next(iter(sorted(label_files.items())))
    others = [Path(stem).name for stem in label_files if stem != first_stem]
    first_images = _images_for(root / first_stem, first_label, others)
    if channels is None:
        # <case>.nrrd means one channel, even beside other <case>_<suffix> files
        suffixes = [""] if "" in first_images else sorted(first_images, key=str.lower)
        if not suffixes:
            raise UNetPlusPlusError(
                f"Case '{first_stem}': no image beside {first_label.name} (expected "
                f"{first_stem}.nrrd or {first_stem}_<channel>.nrrd)."
            )
        if modality == "auto":
            modality = guess_modality(first_images[suffixes[0]])
        channels = [
            ChannelSpec(s or modality, modality, default_normalization(modality, ct_window))
            for s in suffixes
        ]
    notes = []
    if labels is None:
        labels, notes = _merge_same_names(segment_names(first_label, first_stem), first_stem)
    label_descriptions = [
        LabelDescription(n, DEFAULT_COLORS[i % len(DEFAULT_COLORS)]) for i, n in enumerate(labels)
    ]
    source = SourceDescription(
        name=SLICER_EXPORT,
        images=[c.name for c in channels],
        label="",
        label_map={n: [n] for n in labels},
        label_source="Slicer export (labels as exported)",
        layout=SLICER_EXPORT,
    )
    dataset = DatasetDescription(
        name=name or root.resolve().name or "slicer-export",
        task=name or root.resolve().name or "slicer-export",
        root=root,
        channels=list(channels),
        labels=label_descriptions,
        sources=[source],
        description=f"Slicer exports in {root}",
        origin=str(root),
        notes=notes,
    )
    _fill_label_metadata(dataset, first_label, first_stem)
    return dataset


def _merge_same_names(names: Sequence[str], case_id: str) -> tuple[list[str], list[str]]:
    """Segment names that differ only by case, '_' or spaces become one label (first spelling);
    each merge is returned as a note for the training log."""
    kept: dict[str, list[str]] = {}
    for name in names:
        kept.setdefault(normalized_name(name), []).append(name)
    notes = [
        f"segments {', '.join(repr(n) for n in group)} of case '{case_id}' differ only by case "
        f"or spacing: merged into one label {group[0]!r}"
        for group in kept.values()
        if len(group) > 1
    ]
    return [group[0] for group in kept.values()], notes


def _find_slicer_cases(
    dataset: DatasetDescription, source: SourceDescription, problems: Optional[list[str]] = None
) -> list:
    label_files = _label_files(dataset.root)
    cases = [
        _collect(problems, _slicer_case, dataset, source, stem, label, label_files)
        for stem, label in sorted(label_files.items())
    ]
    found = [case for case in cases if case is not None]
    if len(found) == len(cases):  # a case left out with a problem is reported there instead
        _warn_unpaired_images(dataset.root, found, label_files.values())
    return found


def _slicer_case(
    dataset: DatasetDescription,
    source: SourceDescription,
    stem: str,
    label: Path,
    label_files: dict[str, Path],
) -> CaseFiles:
    root = dataset.root
    single = len(dataset.channels) == 1
    others = [Path(other).name for other in label_files if other != stem]
    available = _images_for(root / stem, label, others)
    lowered = {k.lower(): v for k, v in available.items()}
    images = []
    for channel in dataset.channels:
        path = lowered.get(channel.name.lower())
        if path is None and single and len(available) == 1:
            path = next(iter(available.values()))
        if path is None:
            have = ", ".join(sorted(k or "<single image>" for k in available)) or "none"
            raise UNetPlusPlusError(
                f"Case '{stem}' has {len(images)} of the {len(dataset.channels)} channels "
                f"({', '.join(c.name for c in dataset.channels)}): no "
                f"{Path(stem).name}_{channel.name}.nrrd (images found: {have})."
            )
        images.append(path)
    if not single and "" in available and len(available) == 1:
        raise UNetPlusPlusError(
            f"Case '{stem}' has 1 image but the dataset needs {len(dataset.channels)} "
            f"channels ({', '.join(c.name for c in dataset.channels)})."
        )
    table = None
    if not label.name.lower().endswith(SEGMENTATION_SUFFIX):
        table = _color_table_for(label, root / stem)
    return CaseFiles(
        case_id=stem,
        patient_id=patient_id(stem, dataset.patient_regex),
        images=images,
        label=label,
        source=source,
        color_table=table,
    )


def _warn_unpaired_images(root: Path, cases: Sequence[CaseFiles], labels) -> None:
    """Name the images in ``root`` that no case uses (an export without its segmentation)."""
    used = {p.resolve() for case in cases for p in case.images} | {p.resolve() for p in labels}
    unpaired = [
        path.relative_to(root).as_posix()
        for path in sorted(root.rglob("*"))
        if path.is_file()
        and not path.name.startswith(".")
        and _strip_suffix(path.name, IMAGE_SUFFIXES) is not None
        and path.resolve() not in used
    ]
    if unpaired:
        warnings.warn(
            f"Skipped {len(unpaired)} image(s) in {root} without a segmentation "
            f"(<case>{SEGMENTATION_SUFFIX}): {', '.join(unpaired)}.",
            UserWarning,
            stacklevel=3,
        )


def segment_names(label_file: Path, case_id: str) -> list[str]:
    """Segment names of a .seg.nrrd (or colour-table names of a labelmap) in file order."""
    from .cases import read_label_metadata

    return [entry.name for entry in read_label_metadata(label_file, case_id, None)]


def _fill_label_metadata(dataset: DatasetDescription, label_file: Path, case_id: str) -> None:
    """Take colours and terminology of the chosen labels from the first case's segments."""
    from .cases import match_entries, read_label_metadata

    table = None
    if not label_file.name.lower().endswith(SEGMENTATION_SUFFIX):
        table = _color_table_for(label_file, dataset.root / case_id)
    entries = read_label_metadata(label_file, case_id, table)
    source = dataset.sources[0]
    for label in dataset.labels:
        matched = match_entries(entries, [label.name])
        if matched:
            entry = matched[0]
            if ":" in label.name and label.name.lower() != entry.name.lower():
                # picked by terminology code: the model label takes the segment's name
                source.label_map[entry.name] = source.label_map.pop(label.name)
                label.name = entry.name
            if entry.color is not None:
                label.color = entry.color
            if entry.terminology is not None:
                label.terminology = entry.terminology


def guess_modality(path: Path) -> str:
    """CT when the image holds Hounsfield-like air (below -500), else MR."""
    import numpy as np
    import SimpleITK as sitk

    from ..engine.volume import read_image

    image = read_image(path)
    array = sitk.GetArrayViewFromImage(image)
    return "CT" if float(np.percentile(array[:: max(1, array.shape[0] // 8)], 1)) < -500 else "MR"


def median_spacing(cases: Sequence[CaseFiles]) -> tuple[float, float, float]:
    """Median voxel spacing (x, y, z) of the cases' first channels, from their headers."""
    import numpy as np
    import SimpleITK as sitk

    spacings = []
    for case in cases:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(case.images[0]))
        try:
            reader.ReadImageInformation()
        except RuntimeError as error:
            raise UNetPlusPlusError(
                f"Case '{case.case_id}': cannot read {case.images[0]} (truncated, corrupt or "
                "not a supported image)."
            ) from error
        spacings.append(reader.GetSpacing()[:3])
    return tuple(float(v) for v in np.median(np.asarray(spacings), axis=0))  # type: ignore[return-value]
