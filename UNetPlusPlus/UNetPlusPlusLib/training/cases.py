"""Reading one training case: its channels and its label file, mapped onto the model classes.

Label files are Slicer ``.seg.nrrd`` segmentations (segment names and terminology read with
slicerio), labelmaps with a Slicer colour table (``.ctbl``/``.txt``/``.csv``), or plain labelmaps
whose values the dataset description maps. Every problem raises :class:`UNetPlusPlusError`
naming the case and what is wrong: an unreadable file, a missing segment, image and label
geometry that do not match, the wrong number of channels, an empty label.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..engine.image_read import read_labelmap, read_volume
from ..engine.volume import Grid, LabelVolume, Volume, resample_labels
from ..errors import UNetPlusPlusError
from ..segfile import terminology_from_slicerio
from .dataset_types import (
    SEGMENTATION_SUFFIX,
    CaseFiles,
    DatasetDescription,
    normalized_name,
)
from .label_learning import learn_values
from .label_selectors import labelmap_values, segment_selection, selector_value
from .label_selectors import match_entries as match_entries  # bench/benchlib uses it here


@dataclass
class LabelEntry:
    """A segment of a .seg.nrrd or an entry of a colour table."""

    name: str
    value: int
    layer: int = 0
    color: Optional[tuple[float, float, float]] = None
    terminology: Optional[dict] = None


@dataclass
class CaseData:
    """A case on its own grid: the image channels and the model-class label map (uint8)."""

    case_id: str
    image: Volume
    labels: np.ndarray
    warnings: list[str] = field(default_factory=list)  # e.g. a class lost to overlap


# ----------------------------------------------------------------------------- metadata
def read_label_metadata(
    label_file: Path, case_id: str, color_table: Optional[Path]
) -> list[LabelEntry]:
    """Segments of a .seg.nrrd, or the colour-table entries of a labelmap ([] without one)."""
    if label_file.name.lower().endswith(SEGMENTATION_SUFFIX):
        segmentation = _read_segmentation(label_file, case_id, skip_voxels=True)
        return _segment_entries(segmentation)
    return read_color_table(color_table, case_id) if color_table is not None else []


def no_segments_error(label_file: Path, case_id: str) -> UNetPlusPlusError:
    """The error for a ``.seg.nrrd`` without segments, most often a plain labelmap saved under
    the ``.seg.nrrd`` name (its header has no ``Segment<N>_`` fields)."""
    stem = label_file.name[: -len(SEGMENTATION_SUFFIX)]
    return UNetPlusPlusError(
        f"Case '{case_id}': {label_file.name} has no segments (no Segment<N>_ fields in its "
        "header: a labelmap saved under the .seg.nrrd name, or an empty Slicer segmentation); "
        f"save the segmentation from Slicer, or rename a labelmap to {stem}-label.nrrd so its "
        "label values are learnt."
    )


def _read_segmentation(path: Path, case_id: str, skip_voxels: bool = False) -> dict:
    import slicerio

    if not path.is_file():
        raise UNetPlusPlusError(f"Case '{case_id}': segmentation {path} does not exist.")
    try:
        return slicerio.read_segmentation(str(path), skip_voxels=skip_voxels)
    except Exception as error:  # noqa: BLE001 - pynrrd raises many types for a bad file
        raise UNetPlusPlusError(
            f"Case '{case_id}': cannot read segmentation {path} (truncated, corrupt or not a "
            f"Slicer .seg.nrrd: {error})."
        ) from error


def _segment_entries(segmentation: dict) -> list[LabelEntry]:
    entries = []
    for index, segment in enumerate(segmentation.get("segments", [])):
        color = segment.get("color")
        terminology = segment.get("terminology")
        entries.append(
            LabelEntry(
                name=str(segment.get("name", segment.get("id", f"Segment_{index + 1}"))),
                value=int(segment.get("labelValue", 1)),
                layer=int(segment.get("layer", 0)),
                color=tuple(float(c) for c in color[:3]) if color else None,
                terminology=terminology_from_slicerio(terminology) if terminology else None,
            )
        )
    return entries


def read_color_table(path: Path, case_id: str = "") -> list[LabelEntry]:
    """A Slicer colour table: ``.ctbl``/``.txt`` ("value name r g b a") or ``.csv``."""
    where = f"Case '{case_id}': " if case_id else ""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise UNetPlusPlusError(f"{where}cannot read colour table {path} ({error}).") from error
    if path.suffix.lower() == ".csv":
        return _csv_color_table(text)
    entries = []
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        try:
            value = int(parts[0])
            rgb = tuple(int(v) / 255.0 for v in parts[2:5])
        except (ValueError, IndexError) as error:
            raise UNetPlusPlusError(
                f"{where}colour table {path} has a malformed line: {line.strip()!r}."
            ) from error
        if value != 0:
            entries.append(LabelEntry(parts[1].replace("_", " "), value, 0, rgb or None))
    return entries


def _csv_color_table(text: str) -> list[LabelEntry]:
    entries = []
    for row in csv.DictReader(text.splitlines()):
        value = int(row.get("LabelValue", 0) or 0)
        if value == 0:
            continue
        rgb = None
        if row.get("Color_R"):
            rgb = tuple(int(row[f"Color_{c}"]) / 255.0 for c in "RGB")
        terminology = None
        if row.get("Category") and row.get("Type"):
            parts = {k: row[k].split("^") for k in ("Category", "Type")}
            if all(len(p) == 3 for p in parts.values()):
                terminology = {
                    key.lower(): {"scheme": p[0], "code": p[1], "meaning": p[2]}
                    for key, p in parts.items()
                }
        entries.append(LabelEntry(row.get("Name") or f"label {value}", value, 0, rgb, terminology))
    return entries


# ----------------------------------------------------------------------------- reading a case
def read_case(case: CaseFiles, dataset: DatasetDescription) -> CaseData:
    """Read a case's channels and label file; labels are model classes 1..K on the image grid."""
    names = [c.name for c in dataset.channels]
    if len(case.images) != len(names):
        raise UNetPlusPlusError(
            f"Case '{case.case_id}' has {len(case.images)} image(s) but the dataset needs "
            f"{len(names)} channels ({', '.join(names)})."
        )
    try:
        image = read_volume(case.images, names)
    except UNetPlusPlusError as error:
        raise UNetPlusPlusError(f"Case '{case.case_id}': {error}") from error
    warnings: list[str] = []
    raw = None
    if case.label.name.lower().endswith(SEGMENTATION_SUFFIX):
        labels, grid = _labels_from_segmentation(case, dataset, warnings)
    else:
        labels, grid, raw = _labels_from_labelmap(case, dataset, warnings)
    labels = _align_to_image(labels, grid, image.grid, case, warnings)
    if not labels.any() and not dataset.allow_empty:
        held = ""
        if raw is not None:  # a 0/1 mask among 0/255 ones: say what the file does hold
            values = np.flatnonzero(np.bincount(raw.ravel()))
            held = f"; the file holds the value(s) {', '.join(map(str, values[:12]))}"
            held += " ..." if len(values) > 12 else ""
        raise UNetPlusPlusError(
            f"Case '{case.case_id}': the label {case.label.name} holds no voxel of "
            f"{', '.join(dataset.label_names) or 'any label'} (empty label{held}); fix the export "
            "or leave the case out."
        )
    return CaseData(case.case_id, image, labels, warnings)


def _labels_from_segmentation(
    case: CaseFiles, dataset: DatasetDescription, warnings: Optional[list] = None
):
    """Model classes from a .seg.nrrd; a class that loses most of its voxels to a later,
    overlapping segment (later labels win) is reported in ``warnings``."""
    segmentation = _read_segmentation(case.label, case.case_id)
    voxels = segmentation.get("voxels")
    if voxels is None or voxels.ndim not in (3, 4):
        raise UNetPlusPlusError(
            f"Case '{case.case_id}': segmentation {case.label.name} holds no 3D voxel data."
        )
    layers = voxels if voxels.ndim == 4 else voxels[np.newaxis]
    entries = _segment_entries(segmentation)
    out = np.zeros(layers.shape[1:], dtype=np.uint8)
    selected: dict[int, int] = {}
    if not entries:
        raise no_segments_error(case.label, case.case_id)
    for value, label in enumerate(dataset.labels, start=1):
        selectors = case.source.label_map[label.name]
        matched, loose = segment_selection(selectors, entries, layers[0], case.case_id, case.label)
        mask = np.zeros(out.shape, dtype=bool)
        for entry in matched:
            mask |= layers[entry.layer] == entry.value
        for number in loose:
            mask |= layers[0] == number
        out[mask] = value
        selected[value] = int(mask.sum())
        if warnings is not None:
            warnings += _other_segment(case, label.name, selectors, matched)
    if warnings is not None:
        warnings += _overlap_losses(case, dataset, out, selected)
        numbers = {s for selectors in case.source.label_map.values() for s in selectors}
        warnings += _unnamed_values(case, layers, entries, numbers)
    matrix = np.asarray(segmentation["ijkToLPS"], dtype=np.float64)
    spacing = np.linalg.norm(matrix[:3, :3], axis=0)
    grid = Grid(out.shape, spacing, matrix[:3, 3], matrix[:3, :3] / spacing)
    return np.ascontiguousarray(out.transpose(2, 1, 0)), grid  # (x, y, z) -> (z, y, x)


def _unnamed_values(case: CaseFiles, layers: np.ndarray, entries, numbers: set) -> list[str]:
    """A warning per layer of a .seg.nrrd holding non-zero values that no segment names (nor
    a numeric --labels selector, layer 0): Slicer shows no segment for them, and training takes
    them as background."""
    warnings = []
    for layer, voxels in enumerate(layers):
        named = {e.value for e in entries if e.layer == layer} | {0}
        named |= {selector_value(n) for n in numbers} - {None} if layer == 0 else set()
        if voxels.dtype == np.uint8:  # a bincount: 10x faster than np.unique's sort
            counts = np.bincount(voxels.ravel(), minlength=256)
            values = np.flatnonzero(counts)
            counts = counts[values]
        else:
            values, counts = np.unique(voxels, return_counts=True)
        unnamed = [(int(v), int(n)) for v, n in zip(values, counts) if int(v) not in named]
        if unnamed:
            said = ", ".join(f"{n} of value {v}" for v, n in unnamed[:5])
            warnings.append(
                f"Case '{case.case_id}': {case.label.name} holds voxels that no segment names "
                f"({said}{', ...' if len(unnamed) > 5 else ''}; layer {layer}): they are taken "
                "as background. Check the segmentation in Slicer (a labelmap edited or merged "
                "outside it?)."
            )
    return warnings


#: A class keeping less than this share of its segment's voxels (overlap) is warned about.
OVERLAP_KEEP_FRACTION = 0.5


def _overlap_losses(
    case: CaseFiles, dataset: DatasetDescription, out: np.ndarray, selected: dict[int, int]
) -> list[str]:
    warnings = []
    for value, label in enumerate(dataset.labels, start=1):
        total = selected.get(value, 0)
        kept = int((out == value).sum()) if total else 0
        if total and kept < OVERLAP_KEEP_FRACTION * total:
            later = ", ".join(repr(other.name) for other in dataset.labels[value:])
            warnings.append(
                f"Case '{case.case_id}': segments overlap in {case.label.name}; class "
                f"'{label.name}' keeps {kept} of its {total} voxels (the rest goes to the later "
                f"label(s) {later}); list inner structures last (--labels) or remove the overlap."
            )
    return warnings


def _labels_from_labelmap(
    case: CaseFiles, dataset: DatasetDescription, warnings: Optional[list] = None
):
    try:
        labelmap = read_labelmap(case.label)
    except UNetPlusPlusError as error:
        raise UNetPlusPlusError(f"Case '{case.case_id}': {error}") from error
    entries = read_color_table(case.color_table, case.case_id) if case.color_table else []
    array = labelmap.array
    # a lookup table from label value to class (later labels win), applied in one pass
    table = np.zeros(int(array.max()) + 1 if array.size else 1, dtype=np.uint8)
    where = _table_where(case)
    for value, label in enumerate(dataset.labels, start=1):
        selectors = case.source.label_map[label.name]
        numbers = labelmap_values(selectors, entries, case.case_id, where)
        table[[n for n in numbers if 0 <= n < table.size]] = value
    if dataset.learn_label_values:  # no --labels: this case's values no label selects yet
        learn_values(case, dataset, entries, array, table, warnings)
    return table[array], labelmap.grid, array


def _table_where(case: CaseFiles) -> str:
    """How messages name the colour table of a labelmap case (or its absence)."""
    if case.color_table:
        return f"the colour table {case.color_table.name}"
    return f"{case.label.name}, which has no colour table"


def check_label_names(case: CaseFiles, dataset: DatasetDescription) -> list[str]:
    """The segment names of ``case``'s label file (colour-table names for a labelmap), after
    :func:`read_case`'s refusals that its header alone shows: a ``.seg.nrrd`` that cannot be
    read or has no segments, a label picked by name or terminology code that the file lacks
    (same rules and messages: :mod:`.label_selectors`). Reads the header and colour table,
    never the voxels; a label picked by number is left to :func:`read_case` (voxels may hold
    it). Raises UNetPlusPlusError naming the case."""
    if case.label.name.lower().endswith(SEGMENTATION_SUFFIX):
        entries = _segment_entries(_read_segmentation(case.label, case.case_id, True))
        if not entries:
            raise no_segments_error(case.label, case.case_id)
    else:
        entries = read_color_table(case.color_table, case.case_id) if case.color_table else []
    for label in dataset.labels:
        selectors = case.source.label_map[label.name]
        if any(selector_value(s) is not None for s in selectors):
            continue  # a number: what it picks may be voxels that no segment names
        if case.label.name.lower().endswith(SEGMENTATION_SUFFIX):
            segment_selection(selectors, entries, np.zeros(0), case.case_id, case.label)
        else:
            labelmap_values(selectors, entries, case.case_id, _table_where(case))
    return [entry.name for entry in entries]


def _other_segment(case: CaseFiles, name: str, selectors, matched) -> list[str]:
    """A warning when a number picks, in this case, a segment named otherwise than the model
    label (named after the first case's segment of that value): label values of .seg.nrrd
    files are not the same structure in every file."""
    if not any(isinstance(s, str) and selector_value(s) is not None for s in selectors):
        return []
    others = [e.name for e in matched if normalized_name(e.name) != normalized_name(name)]
    if not others or name.lower().startswith("label "):
        return []
    return [
        f"Case '{case.case_id}': the label value that selects '{name}' is segment "
        f"{others[0]!r} in {case.label.name}; a number selects the same label value in every "
        "case: check that it is the same structure, or pick the segments by name with --labels."
    ]


def _align_to_image(
    labels: np.ndarray,
    grid: Grid,
    image: Grid,
    case: CaseFiles,
    warnings: Optional[list] = None,
) -> np.ndarray:
    """The (z, y, x) label map on the image grid.

    Accepted: the same grid; a sub-box of it (Slicer crops segmentations to their extent); the
    same voxels stored in another axis order or with flipped axes (for example a NIfTI label of
    a DICOM series). Then every label voxel centre is an image voxel centre and nearest-neighbour
    resampling copies the labels exactly; labelled voxels outside the image are left out, with
    a warning in ``warnings`` giving their count. Anything else (a finer or coarser grid, as a
    segmentation with Slicer's oversampling, a shift by a fraction of a voxel, another
    direction) is a geometry mismatch: UNetPlusPlusError naming the case and both grids.
    """
    if grid.isclose(image):
        return labels
    steps = np.linalg.inv(image.direction * np.asarray(image.spacing))
    mapping = steps @ (grid.direction * np.asarray(grid.spacing))  # label axis -> image index
    offset = image.physical_to_index(grid.origin)
    magnitudes = np.abs(mapping)
    permutation = np.allclose(magnitudes, np.round(magnitudes), atol=1e-3) and np.array_equal(
        np.round(magnitudes).sum(axis=0), np.ones(3)
    )
    permutation = permutation and np.array_equal(np.round(magnitudes).sum(axis=1), np.ones(3))
    if permutation and np.allclose(offset, np.round(offset), atol=1e-2):
        aligned = resample_labels(LabelVolume.on_grid(labels, grid), image).array
        dropped = int(np.count_nonzero(labels)) - int(np.count_nonzero(aligned))
        if dropped > 0 and warnings is not None:  # the same voxels: only those outside go
            warnings.append(
                f"Case '{case.case_id}': {dropped} labelled voxel(s) of {case.label.name} lie "
                f"outside its image {case.images[0].name} (the segmentation extends beyond "
                "the image) and are left out; check that the segmentation belongs to this image."
            )
        return aligned
    raise UNetPlusPlusError(
        f"Case '{case.case_id}': the geometry of the label {case.label.name} does not match its "
        f"image {case.images[0].name} (label size {grid.size_xyz}, spacing "
        f"{_fmt(grid.spacing)}, origin {_fmt(grid.origin)}; image size {image.size_xyz}, spacing "
        f"{_fmt(image.spacing)}, origin {_fmt(image.origin)}); export the segmentation with the "
        "image as its reference geometry."
    )


def _fmt(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"
