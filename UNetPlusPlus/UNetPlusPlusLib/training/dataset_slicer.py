"""Case discovery for a folder of 3D Slicer exports (no ``dataset.json`` needed)::

<case>.nrrd                  one channel   (or <case>_<channel>.nrrd, one file per channel)
<case>.seg.nrrd              segmentation with segment names and terminology
<case>-label.nrrd + .ctbl    or a labelmap with a Slicer colour table
"""

from __future__ import annotations

import bisect
import warnings
from pathlib import Path
from typing import Collection, Optional, Sequence

from ..engine.manifest import ChannelSpec
from ..errors import UNetPlusPlusError
from .cases import no_segments_error
from .dataset_images import guess_dataset_modality, spread_sample
from .dataset_labels import merge_same_names, segment_names
from .dataset_types import (
    COLOR_TABLE_SUFFIXES,
    DEFAULT_COLORS,
    IMAGE_SUFFIXES,
    LABELMAP_MARKERS,
    SEGMENTATION_SUFFIX,
    SLICER_EXPORT,
    CaseFiles,
    DatasetDescription,
    LabelDescription,
    PathLike,
    SourceDescription,
    collect_case,
    default_normalization,
    normalized_name,
    patient_id,
)
from .label_selectors import SegmentName, match_entries, selector_value


def _strip_suffix(name: str, suffixes: Sequence[str]) -> Optional[str]:
    lower = name.lower()
    for suffix in sorted(suffixes, key=len, reverse=True):
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return None


def case_label_files(root: Path, shadowed: Optional[list[Path]] = None) -> dict[str, Path]:
    """The label file of each case that training finds in the folder ``root``, by case name.

    Label files are ``<case>.seg.nrrd`` and labelmaps ``<case>-label.nrrd`` (``_label`` and
    ``.label`` too, with any of :data:`.dataset_types.IMAGE_SUFFIXES`); a ``.seg.nrrd`` wins
    over a labelmap of the same case. A case name is the label file's path from ``root``
    without that ending, '/'-separated (``case001``, ``sub/case001``). Sub-folders are
    searched; hidden folders and files (a name starting with '.', e.g. ``.replaced/``) are
    not. {} for a folder without label files (or no folder). ``shadowed``, when given, gets
    the labelmaps that a ``.seg.nrrd`` of the same case wins over."""
    out: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or _hidden(path, root):
            continue
        stem = _strip_suffix(path.name, (SEGMENTATION_SUFFIX,)) or _labelmap_stem(path.name)
        if stem is None:
            continue
        relative = (path.parent / stem).relative_to(root).as_posix()
        if relative in out and out[relative].name.lower().endswith(SEGMENTATION_SUFFIX):
            if shadowed is not None:
                shadowed.append(path)
            continue  # a .seg.nrrd wins over a labelmap of the same case
        if relative in out and shadowed is not None:
            shadowed.append(out[relative])
        out[relative] = path
    return out


def _labelmap_stem(name: str) -> Optional[str]:
    """``case`` of a labelmap file name (``case-label.nrrd``, ``case_label.nii.gz``), else None."""
    base = _strip_suffix(name, IMAGE_SUFFIXES)
    if base is None:
        return None
    marker = next((m for m in LABELMAP_MARKERS if base.lower().endswith(m)), None)
    return None if marker is None else base[: -len(marker)]


def _hidden(path: Path, root: Path) -> bool:
    """Whether ``path`` or a folder above it (below ``root``) starts with '.': not read as a
    case (``.replaced/`` holds the labels an export replaced)."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def images_for(
    stem_path: Path,
    label: Path,
    other_cases: Collection[str] = (),
    listing: Optional[Sequence[Path]] = None,
) -> dict:
    """Channel suffix ("" for a single channel) -> image file of one exported case.

    Files that are the image of another case (``case_1.nrrd`` beside ``case_1_b.seg.nrrd``'s
    ``case_1_b.nrrd``) are not taken as channels. ``listing``: the files of the case's folder
    when the caller listed it once for many cases (``adapter/case_records.py``), sorted; None
    lists it here.
    """
    folder, stem = stem_path.parent, stem_path.name
    if listing is None:
        listing = sorted(path for path in folder.iterdir() if path.is_file())
    out: dict[str, Path] = {}
    for path in listing:
        if path == label or not path.name.startswith(stem):  # the others cannot be
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


def case_images(root: Path, label_files: dict[str, Path]) -> dict[str, dict[str, Path]]:
    """:func:`images_for` of every case of :func:`case_label_files` (case name -> channel
    suffix -> image), listing each folder once (once per case, 200 cases took 1.5 s of CPU).
    The other cases whose images are not a case's channels are those of its own folder."""
    by_folder: dict[str, list[str]] = {}
    for stem in label_files:
        by_folder.setdefault(Path(stem).parent.as_posix(), []).append(stem)
    out: dict[str, dict[str, Path]] = {}
    for stems in by_folder.values():
        folder = (root / stems[0]).parent
        listing = sorted((p for p in folder.iterdir() if p.is_file()), key=lambda p: p.name)
        files = [p.name for p in listing]
        names = {Path(stem).name for stem in stems}
        for stem in stems:
            name = Path(stem).name
            start = end = bisect.bisect_left(files, name)  # the files named name...
            while end < len(files) and files[end].startswith(name):
                end += 1
            out[stem] = images_for(
                folder / name, label_files[stem], names - {name}, listing[start:end]
            )
    return out


def _others(stem: str, label_files: dict[str, Path]) -> list[str]:
    """The names of the other cases in ``stem``'s folder (their images are no channel of it)."""
    parent = Path(stem).parent
    return [Path(o).name for o in label_files if o != stem and Path(o).parent == parent]


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


def _guess_modality(root: Path, label_files: dict, suffix: str) -> str:
    """CT or MR from the ``suffix`` channel of up to 5 cases spread over the folder (sorted
    by name; the first one alone had decided: a label map exported as ``a.nrrd`` made a CT
    dataset 'MR' and every real CT was refused as an MR without background)."""
    images = []
    for stem in spread_sample(sorted(label_files)):
        image = images_for(root / stem, label_files[stem], _others(stem, label_files)).get(suffix)
        if image is not None:
            images.append((Path(stem).name, image))
    return guess_dataset_modality(images)


def export_images(data_dir: PathLike, modality: bool = False) -> tuple[list[str], Optional[str]]:
    """The channel suffixes of the first case of a Slicer-export folder (``[""]`` for one
    ``<case>.nrrd``; [] without exports or images), from the file names, and with ``modality``
    CT or MR guessed from its first channel in up to 5 cases (None without it, or undecided):
    what the cases hold, whatever channels a ``--init`` model names."""
    root = Path(data_dir)
    label_files = case_label_files(root) if root.is_dir() else {}
    if not label_files:
        return [], None
    stem, label = next(iter(sorted(label_files.items())))
    images = images_for(root / stem, label, _others(stem, label_files))
    suffixes = [""] if "" in images else sorted(images, key=str.lower)
    if not modality or not suffixes:
        return suffixes, None
    try:
        return suffixes, _guess_modality(root, label_files, suffixes[0])
    except UNetPlusPlusError:  # unreadable or split evenly: the dataset check says why
        return suffixes, None


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
    label_files = case_label_files(root)
    if not label_files:
        raise _no_exports_error(root)
    first_stem, first_label = next(iter(sorted(label_files.items())))
    first_images = images_for(root / first_stem, first_label, _others(first_stem, label_files))
    if channels is None:
        # <case>.nrrd means one channel, even beside other <case>_<suffix> files
        suffixes = [""] if "" in first_images else sorted(first_images, key=str.lower)
        if not suffixes:
            raise UNetPlusPlusError(
                f"Case '{first_stem}': no image beside {first_label.name} (expected "
                f"{first_stem}.nrrd or {first_stem}_<channel>.nrrd)."
            )
        if modality == "auto":
            modality = _guess_modality(root, label_files, suffixes[0])
        channels = [
            ChannelSpec(s or modality, modality, default_normalization(modality, ct_window))
            for s in suffixes
        ]
    notes = []
    learn = False
    picked = labels is not None  # typed: a number is a label value (label_selectors.py)
    if labels is None:
        if first_label.name.lower().endswith(SEGMENTATION_SUFFIX):
            labels = segment_names(first_label, first_stem)
            if not labels:
                raise no_segments_error(first_label, first_stem)
        else:  # the check pass learns every case's values, reading each once (label_learning.py)
            labels = []
            learn = True
        if not labels and not learn:
            raise UNetPlusPlusError(
                f"Case '{first_stem}': {first_label.name} holds no segment or label value to "
                "learn (no segment, or all voxels 0); fix the export, or name the labels with "
                "--labels."
            )
        labels, notes = merge_same_names(labels, first_stem)
    label_descriptions = [
        LabelDescription(n, DEFAULT_COLORS[i % len(DEFAULT_COLORS)]) for i, n in enumerate(labels)
    ]
    source = SourceDescription(
        name=SLICER_EXPORT,
        images=[c.name for c in channels],
        label="",
        label_map={n: [n if picked else SegmentName(n)] for n in labels},
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
        learn_label_values=learn,
    )
    _fill_label_metadata(dataset, first_label, first_stem)
    return dataset


def find_slicer_cases(
    dataset: DatasetDescription, source: SourceDescription, problems: Optional[list[str]] = None
) -> list:
    """The cases of a Slicer-export folder (with ``problems``: those refused are left out and
    said there); warns about a case with two label files, and, when no case is refused, about
    images that no case uses."""
    shadowed: list[Path] = []
    label_files = case_label_files(dataset.root, shadowed)
    images = case_images(dataset.root, label_files)
    cases = [
        collect_case(problems, _slicer_case, dataset, source, stem, label, images[stem])
        for stem, label in sorted(label_files.items())
    ]
    found = [case for case in cases if case is not None]
    for path in shadowed:
        stem = (path.parent / (_labelmap_stem(path.name) or "")).relative_to(dataset.root)
        warnings.warn(
            f"Case '{stem.as_posix()}' has two label files: training reads "
            f"{label_files[stem.as_posix()].name}, not {path.name}; remove or rename the one "
            "that does not hold the case's labels.",
            UserWarning,
            stacklevel=3,
        )
    if len(found) == len(cases):  # a case left out with a problem is reported there instead
        _warn_unpaired_images(dataset.root, found, [*label_files.values(), *shadowed])
    return found


def _slicer_case(
    dataset: DatasetDescription,
    source: SourceDescription,
    stem: str,
    label: Path,
    available: dict[str, Path],
) -> CaseFiles:
    """The files of case ``stem`` (``available``: its images by channel suffix)."""
    root = dataset.root
    single = len(dataset.channels) == 1
    if not available:  # named as the files to add, not after a channel (a guessed modality)
        name = Path(stem).name
        raise UNetPlusPlusError(
            f"Case '{stem}': no image beside {label.name} (expected {name}.nrrd or "
            f"{name}_<channel>.nrrd)."
        )
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
        and not _hidden(path, root)
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


def _fill_label_metadata(dataset: DatasetDescription, label_file: Path, case_id: str) -> None:
    """Take names, colours and terminology of the chosen labels from the first case's segments
    (or colour table). A label picked by terminology code or by number (label value) takes the
    name of the segment it picks there ('label N' when none names the value); a selector that
    the first case refuses keeps its name (the dataset check reports it, per case)."""
    from .cases import read_label_metadata

    if not dataset.labels:
        return
    table = None
    if not label_file.name.lower().endswith(SEGMENTATION_SUFFIX):
        table = _color_table_for(label_file, dataset.root / case_id)
    entries = read_label_metadata(label_file, case_id, table)
    source = dataset.sources[0]
    for label in list(dataset.labels):
        selectors = source.label_map[label.name]
        value = selector_value(selectors[0]) if len(selectors) == 1 else None
        if value is not None:
            matched = [e for e in entries if e.value == value]
            if len(matched) != 1 or any(
                normalized_name(e.name) == normalized_name(label.name) and e.value != value
                for e in entries
            ):  # ambiguous or not named: refused or said per case by the check
                matched = []
            name = matched[0].name if matched else f"label {value}"
        else:
            matched = match_entries(entries, selectors)
            name = label.name
            if matched and ":" in name and name.lower() != matched[0].name.lower():
                name = matched[0].name  # picked by terminology code
        if name != label.name:
            source.label_map[name] = source.label_map.pop(label.name)
            label.name = name
        if matched:
            entry = matched[0]
            if entry.color is not None:
                label.color = entry.color
            if entry.terminology is not None:
                label.terminology = entry.terminology


def _no_exports_error(root: Path) -> UNetPlusPlusError:
    """The error for a data folder without Slicer exports. A dataset.json in it (a Decathlon
    download: ``Task03_Liver/dataset.json``) is named, as its own format when it is a Decathlon
    or nnU-Net one; before, the user was sent to --dataset-json to learn that only then."""
    description = root / "dataset.json"
    hint = "or give --dataset-json"
    if description.is_file():
        import json

        from .dataset_training import foreign_format_error

        try:
            data = json.loads(description.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        foreign = foreign_format_error(data, str(description)) if isinstance(data, dict) else None
        if foreign is not None:
            return foreign
        hint = f"or give --dataset-json {description} to read the description there"
    return UNetPlusPlusError(
        f"No Slicer exports found in {root}: expected <case>.nrrd with <case>.seg.nrrd (or "
        f"<case>-label.nrrd, with an optional colour table <case>-label.ctbl), {hint}."
    )
