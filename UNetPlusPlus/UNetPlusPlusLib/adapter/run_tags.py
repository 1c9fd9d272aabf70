"""The run record on the segments the Slicer module writes: the model and the run's warnings.

Slicer's segmentation reader keeps only its own header fields of a ``.seg.nrrd``, so the
``unetpp_*`` fields of the CLI's file (``run_record.py``) do not reach the node. Each segment a
run writes carries the record instead, as the segment tag :data:`RUN_TAG` (one JSON object:
``unetpp_model``, ``unetpp_depth``, ``unetpp_warnings``, ...; ``[]`` for a run without
warnings). A tag is saved with the scene and in the ``.seg.nrrd`` Slicer writes
(``Segment0_Tags``), so a segmentation saved, passed on and opened again still says which run
made each segment and what it warned, even one node holding several runs' segments (one
nodule per click). ``|`` ends a tag in a ``.seg.nrrd``: the JSON holds it as ``\\u007c``.
"""

from __future__ import annotations

import json
from typing import Optional, Sequence

from ..run_record import RUN_TAG, header_json, runs_lines


def tag_value(record: dict) -> str:
    """``record`` as the text of :data:`RUN_TAG`: one line of JSON without ``|``."""
    return header_json(record).replace("|", "\\u007c")


def tag_run(segmentation_node, segment_ids: Sequence[str], record: dict) -> None:
    """Tag the segments ``segment_ids`` of ``segmentation_node`` with the run ``record``."""
    segmentation = segmentation_node.GetSegmentation()
    value = tag_value(record)
    for segment_id in segment_ids:
        segment = segmentation.GetSegment(segment_id)
        if segment is not None:
            segment.SetTag(RUN_TAG, value)


def segment_run(segment) -> Optional[dict]:
    """The run record of a vtkSegment, or None (not written by the module, or by an older
    version, or a damaged tag)."""
    import vtk

    text = vtk.reference("")
    if not segment.GetTag(RUN_TAG, text):
        return None
    try:
        record = json.loads(str(text))
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def recorded_runs(segmentation_node) -> list[tuple[str, dict]]:
    """(segment name, run record) of every segment of ``segmentation_node`` that has one, in
    the node's order."""
    segmentation = segmentation_node.GetSegmentation()
    runs = []
    for index in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(index)
        record = segment_run(segment)
        if record is not None:
            runs.append((segment.GetName(), record))
    return runs


def recorded_warnings_text(segmentation_node) -> str:
    """What the runs that wrote ``segmentation_node``'s segments warned, for the panel: one
    line per run ("'liver': liver-ct, depth 3; 2 warnings"), then each warning once
    (``run_record.runs_lines``), or "" when no segment has a record."""
    return "\n".join(runs_lines(recorded_runs(segmentation_node)))
