"""`unetpp review FILE...`: what a segmentation file records of the run that wrote it.

Prints, per file, the model (name, task, weights' checksum), the depth, the warnings the run
gave (``run_record.py``: "no warnings" is said only when the file records an empty list) and
whether the file is unchanged since (its output stamp, ``output_stamp.py``). A file without a
record was written by another program or an older unetpp, or saved again from Slicer (whose
segmentation writer keeps only its own header fields): that is said, never "no warnings".
A ``.seg.nrrd`` the Slicer module's result was saved to from Slicer has no such fields, but
its segments' tags record their runs (``adapter/run_tags.py``): those are shown instead.
``--json`` prints one JSON list instead: ``[{"file", "stamp", "record"}, ...]`` (and
``segment_runs``: ``[{"segment", "record"}]`` for a file saved from Slicer).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional

from .errors import UNetPlusPlusError
from .output_stamp import stamp_of, stamp_state
from .run_record import read_record, runs_lines, segment_runs, sidecar_path

#: The formats a run record is read from.
REVIEW_SUFFIXES = (".seg.nrrd", ".nrrd", ".mha", ".nii.gz", ".nii")

_STAMP_TEXT = {
    "valid": "unchanged since unetpp wrote it",
    "changed": "changed since unetpp wrote it (the record describes the run's result, not "
    "the edits)",
    "none": "no unetpp output stamp",
}


def review_file(path: Path) -> dict:
    """``{"file", "stamp", "record", "sidecar_matches", "segment_runs"}`` for the segmentation
    at ``path``: ``stamp`` is ``output_stamp.stamp_state``'s, ``record`` the run record or
    None, ``sidecar_matches`` (NIfTI only) whether the sidecar names the image's current
    stamp, ``segment_runs`` (a ``.seg.nrrd`` saved from Slicer) its segments' run records.
    Raises UNetPlusPlusError for a missing or unreadable file, another format or a damaged
    record."""
    if not path.name.lower().endswith(REVIEW_SUFFIXES):
        raise UNetPlusPlusError(
            f"{path}: unetpp review reads segmentations ({', '.join(REVIEW_SUFFIXES)})."
        )
    if not path.is_file():
        raise UNetPlusPlusError(f"Segmentation not found: {path}.")
    try:
        state = stamp_state(path)
        record = read_record(path)
        image_stamp = stamp_of(path) if record and "image_sha256" in record else None
        runs = segment_runs(path) if record is None else []
    except OSError as error:
        raise UNetPlusPlusError(f"Cannot read {path}: {error.strerror or error}.") from None
    except ValueError as error:
        where = sidecar_path(path) or path
        raise UNetPlusPlusError(f"The run record in {where} is damaged ({error}).") from None
    review = {"file": str(path), "stamp": state, "record": record}
    if runs:  # saved from Slicer: the module's segment tags (adapter/run_tags.py)
        review["segment_runs"] = [{"segment": name, "record": run} for name, run in runs]
    if record and "image_sha256" in record:
        review["sidecar_matches"] = state == "valid" and image_stamp == record["image_sha256"]
    return review


def review_lines(review: dict) -> list[str]:
    """The text of one :func:`review_file` answer, one line each."""
    record: Optional[dict] = review["record"]
    name = review["file"]
    runs = [(run["segment"], run["record"]) for run in review.get("segment_runs", [])]
    if record is None and runs:
        lines = [
            f"{name}: saved by Slicer; its segments record the UNet++ runs that wrote them "
            f"(the segments may have been edited since); {_STAMP_TEXT[review['stamp']]}."
        ]
        return lines + [f"  {line[0].lower()}{line[1:]}" for line in runs_lines(runs)]
    if record is None:
        sidecar = sidecar_path(name)
        where = f" (no {sidecar.name} beside it)" if sidecar is not None else ""
        return [
            f"{name}: no unetpp run record{where}: written by another program or an older "
            "unetpp, or saved again from Slicer; its warnings, if any, are not known; "
            f"{_STAMP_TEXT[review['stamp']]}."
        ]
    weights = str(record.get("unetpp_model_sha256") or "")[:12]
    lines = [
        f"{name}: segmented by unetpp {record.get('unetpp_version', '?')} with model "
        f"{record.get('unetpp_model', '?')} (task {record.get('unetpp_model_task', '?')}, "
        f"weights {weights or '?'}) at depth {record.get('unetpp_depth', '?')}; "
        f"{_STAMP_TEXT[review['stamp']]}."
    ]
    if review.get("sidecar_matches") is False:
        lines.append(
            f"  its record ({sidecar_path(name).name}) was written for another version of "
            "this file: the image has changed since."
        )
    warnings = record.get("unetpp_warnings") or []
    anatomy = record.get("unetpp_anatomy") or {}
    if anatomy.get("failed"):
        lines.append(f"  anatomy check failed: {', '.join(anatomy['failed'])}")
    if anatomy.get("cut_sides"):
        lines.append(f"  cut by the image's edge: {', '.join(anatomy['cut_sides'])}")
    if not warnings:
        lines.append("  the run gave no warnings.")
    else:
        count = len(warnings)
        lines.append(f"  the run gave {count} warning{'s' if count > 1 else ''}:")
        lines += [f"  warning: {text}" for text in warnings]
    return lines


def run_review(args: argparse.Namespace, progress) -> dict:
    """Print the review of every file of ``args.files`` (text, or JSON with ``--json``);
    every file is checked before anything is printed. Raises UNetPlusPlusError."""
    reviews = [review_file(Path(name).expanduser()) for name in args.files]
    if args.json:
        print(json.dumps(reviews), flush=True)
        return {}
    for review in reviews:
        print("\n".join(review_lines(review)))
    return {}


def add_review_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "review", help="show the model and the warnings a segmentation file records"
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help=".seg.nrrd, .nrrd, .mha, .nii.gz")
    parser.add_argument("--json", action="store_true", help="one JSON list on stdout")
    parser.set_defaults(handler=run_review)
