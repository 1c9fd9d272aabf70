"""The run record: the model and the warnings of the run, kept in the segmentation file it wrote.

A run's warnings (the liver cut by the image's edge, a thin input, a swapped channel order, ...)
reach the terminal, ``--progress-json``, ``unetpp serve`` and the Slicer panel; a file handed to
a colleague, or opened months later, must carry them too. Every segmentation ``unetpp segment``
and ``unetpp serve`` write (``-o``, ``--labelmap``) records:

- ``unetpp_version``, ``unetpp_model`` (the manifest's name), ``unetpp_model_task``,
  ``unetpp_model_sha256`` (the weights' checksum: the model's exact version) and
  ``unetpp_depth`` (the depth run: 1..4 or ``ensemble``);
- ``unetpp_warnings``: a JSON list of the warnings about the input and the result, the text
  the run said (the same as the preview's banner); ``[]`` for a run without any, so that "no
  warnings" differs from "written by an older version or another program" (no field at all);
- ``unetpp_anatomy``: when the model's anatomy check ran, a JSON object of its findings, the
  only machine-readable codes behind the warnings: ``passed``, the rules ``failed``
  (``between_lungs``, ``left_side``, ``cut_unreliable``, ...) and ``cut_sides``, the patient
  sides where the image's edge cuts the segment (``["superior"]``: the liver's dome left out).

Where, by format:

- ``.seg.nrrd``, ``.nrrd``: NRRD key/value header lines (``unetpp_warnings:=[...]``). pynrrd,
  slicerio (``read_segmentation(...)["unetpp_warnings"]``) and SimpleITK (``GetMetaData``)
  return them; the JSON is written without ``\\\\`` and ``\\n`` escapes (``\\u005c``,
  ``\\u000a`` instead), which ITK's NRRD reader would unescape. Slicer's segmentation reader
  keeps only its own keys, so the Slicer module records the run on the node instead
  (``adapter/run_attributes.py``);
- ``.mha``: MetaImage header lines ``unetpp_warnings = [...]`` before ``ElementDataFile``;
- ``.nii``, ``.nii.gz``: the NIfTI header has 80 free bytes (taken by the stamp), so a JSON
  sidecar beside it, ``<name>.json`` (``ct_labels.nii.gz`` -> ``ct_labels.json``, BIDS'
  convention), written all-or-none with the image, stamped like it, naming the image and
  its stamp (``image_sha256``), so that a sidecar left beside an image changed since is told.

The fields go into the header before the output stamp (``output_stamp.py``), which covers them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Optional, Sequence, Union

from .output_stamp import kind_of, text_header_end

PathLike = Union[str, os.PathLike]

#: Header keys of the record, in the order written.
FIELDS = (
    "unetpp_version",
    "unetpp_model",
    "unetpp_model_task",
    "unetpp_model_sha256",
    "unetpp_depth",
    "unetpp_warnings",
    "unetpp_anatomy",
)
_JSON = ("unetpp_warnings", "unetpp_anatomy")


def make_record(
    manifest, depth: Union[int, str], warnings: Sequence[str], anatomy: Optional[dict] = None
) -> dict:
    """The record of a run of ``manifest`` at ``depth`` that said ``warnings`` (texts, each
    once, in order); ``anatomy``: the result's ``info["anatomy"]`` summary, if the check ran.
    Keys: :data:`FIELDS` (``unetpp_anatomy`` only with ``anatomy``)."""
    from . import __version__

    record = {
        "unetpp_version": __version__,
        "unetpp_model": manifest.name,
        "unetpp_model_task": manifest.task,
        "unetpp_model_sha256": manifest.sha256,
        "unetpp_depth": str(depth),
        "unetpp_warnings": [str(w) for w in dict.fromkeys(warnings)],
    }
    if anatomy is not None:
        record["unetpp_anatomy"] = {
            "passed": bool(anatomy.get("passed")),
            "failed": [str(rule) for rule in anatomy.get("failed") or []],
            "cut_sides": [str(side) for side in (anatomy.get("edge") or {}).get("sides") or []],
        }
    return record


def header_json(value) -> str:
    """``value`` as one line of JSON that every NRRD reader returns unchanged: no raw
    newline, and none of the ``\\\\`` or ``\\n`` escapes ITK's reader would unescape."""
    text = json.dumps(value, ensure_ascii=True)
    escapes = {"\\": "\\u005c", "n": "\\u000a"}  # left to right: each escape is a pair
    return re.sub(r"\\(.)", lambda m: escapes.get(m.group(1), m.group(0)), text)


def _value_text(key: str, value) -> str:
    if key in _JSON:
        return header_json(value)
    return " ".join(str(value).split())  # one line, whatever a model's name holds


def add_header_fields(path: PathLike, record: dict) -> None:
    """Add the ``record`` as key/value lines to the NRRD or MHA header of the file at ``path``
    (just written, not yet stamped), through a copy renamed over it. Raises ValueError for
    another format or no header, OSError on I/O errors."""
    path = Path(path)
    at = text_header_end(path)
    if at is None:
        raise ValueError("the writer did not produce a NRRD or MetaImage header")
    separator = ":=" if kind_of(path) == "nrrd" else " = "
    lines = "".join(
        f"{key}{separator}{_value_text(key, record[key])}\n" for key in FIELDS if key in record
    )
    copy = path.with_name(path.name + ".record")
    try:
        with open(path, "rb") as source, open(copy, "wb") as out:
            out.write(source.read(at) + lines.encode("ascii", "replace"))
            shutil.copyfileobj(source, out, 1 << 20)
        shutil.copymode(path, copy)
        os.replace(copy, path)
    finally:
        if copy.exists():
            copy.unlink()


# ---------------------------------------------------------------------------- NIfTI sidecar
def sidecar_path(path: PathLike) -> Optional[Path]:
    """The record's JSON file beside the NIfTI file ``path`` (``x.nii.gz`` -> ``x.json``);
    None for a format that holds the record in its header."""
    path = Path(path)
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return path.with_name(name[: -len(suffix)] + ".json")
    return None


def write_sidecar(path: PathLike, record: dict, image: PathLike, image_sha256: str) -> None:
    """Write the record of ``image`` (its file name is kept, and its stamp ``image_sha256``)
    as the JSON object at ``path``; the output stamp goes in as its first member later."""
    content = {"image": Path(image).name, "image_sha256": image_sha256, **record}
    Path(path).write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------- reading back
def nrrd_unescape(value: str) -> str:
    """A NRRD key/value value as the format defines it: ``\\\\`` is a backslash and ``\\n`` a
    newline (Slicer's and ITK's writers escape them; pynrrd returns the text as written). The
    fields :func:`add_header_fields` writes hold neither, so they read the same either way."""
    escapes = {"\\": "\\", "n": "\n"}
    return re.sub(r"\\(.)", lambda m: escapes.get(m.group(1), m.group(0)), value)


def _header_lines(path: Path) -> list[str]:
    at = text_header_end(path)
    if at is None:
        return []
    with open(path, "rb") as handle:
        return handle.read(at).decode("ascii", "replace").splitlines()


def read_record(path: PathLike) -> Optional[dict]:
    """The record the segmentation file at ``path`` carries (its header, or its sidecar for
    NIfTI, with ``image_sha256`` then), or None when it has none (another program's file, an
    older unetpp's, or a NIfTI file without its sidecar). Raises OSError if it cannot be read
    and ValueError for a record that is not valid JSON where JSON belongs."""
    path = Path(path)
    sidecar = sidecar_path(path)
    if sidecar is not None:
        if not sidecar.is_file():
            return None
        content = json.loads(sidecar.read_text(encoding="utf-8"))
        return content if isinstance(content, dict) and "unetpp_warnings" in content else None
    separator = ":=" if kind_of(path) == "nrrd" else " = "
    record: dict = {}
    for line in _header_lines(path):
        key, found, value = line.partition(separator)
        key = key.strip()
        if found and key in FIELDS:
            value = nrrd_unescape(value) if separator == ":=" else value
            record[key] = json.loads(value) if key in _JSON else value.strip()
    return record if "unetpp_warnings" in record else None


#: The segment tag the Slicer module records a run in (adapter/run_tags.py).
RUN_TAG = "UNetPlusPlus.RunRecord"


def segment_runs(path: PathLike) -> list[tuple[str, dict]]:
    """(segment name, run record) of each segment of the ``.seg.nrrd`` at ``path`` whose
    ``Segment<N>_Tags`` hold :data:`RUN_TAG` (a file the Slicer module's result was saved to
    from Slicer), in the file's order; [] for none. A damaged tag is left out. Raises OSError
    if the file cannot be read."""
    path = Path(path)
    if kind_of(path) != "nrrd":
        return []
    fields: dict[int, dict[str, str]] = {}
    for line in _header_lines(path):
        match = re.match(r"Segment(\d+)_(Name|Tags):=(.*)$", line)
        if match:
            fields.setdefault(int(match.group(1)), {})[match.group(2)] = match.group(3)
    runs = []
    for index in sorted(fields):
        for tag in nrrd_unescape(fields[index].get("Tags", "")).split("|"):
            key, _, value = tag.partition(":")
            if key != RUN_TAG:
                continue
            try:
                record = json.loads(value)
            except ValueError:
                continue
            if isinstance(record, dict):
                runs.append((fields[index].get("Name", f"Segment{index}"), record))
    return runs


def runs_lines(runs: Sequence[tuple[str, dict]]) -> list[str]:
    """The text of segments' run records (:func:`segment_runs`, or the Slicer module's
    ``run_tags.recorded_runs``): one line per run, naming its segments, model and depth and
    how many warnings it gave ("'liver': liver-ct, depth 3; 1 warning"), then each warning
    once ("Warning: ..."); [] for no runs."""
    groups: dict[str, list[str]] = {}
    for name, record in runs:
        groups.setdefault(json.dumps(record, sort_keys=True), []).append(name)
    lines: list[str] = []
    said: list[str] = []
    for key, names in groups.items():
        record = json.loads(key)
        warnings = [str(w) for w in record.get("unetpp_warnings") or []]
        count = f"{len(warnings)} warning{'s' if len(warnings) != 1 else ''}"
        segments = ", ".join(f"'{name}'" for name in names)
        lines.append(
            f"{segments}: {record.get('unetpp_model', '?')}, depth "
            f"{record.get('unetpp_depth', '?')}; {count if warnings else 'no warnings'}"
        )
        said += [w for w in warnings if w not in said]
    return lines + [f"Warning: {w}" for w in said]
