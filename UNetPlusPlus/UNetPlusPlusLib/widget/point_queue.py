"""The nodule points waiting for their run in the panel (one run per placed point), what one
batch of runs did (widget/point_batch.py), and which points of a point list have their segment
already. MRML only, no Qt.

A queued point is kept by its point list and its control point ID, not by its position: a
point moved before its run starts runs where it is then, and one deleted before (its point list
removed from the scene, or the point unplaced) is skipped with a log line (the panel drops
it when Slicer says so, ``PointRemovedEvent``: Slicer gives the next point placed the ID of the
last one if that was deleted). A point whose run fails (a click in the air, off the image)
does not stop the queue: its message is kept, and the batch's refusals are reported together
once the queue is empty (:meth:`PointQueue.finish`).

A point belongs to the task and input volumes it was placed for (:class:`RunContext`): when
its turn comes and the panel's task or input volume has changed since, it is not run (its
segment would come from another model, or lie on another image); the batch reports it, and
the point stays placed for Segment to run later.

The points of a list that have their segment are recorded on the list itself, saved with the
scene (widget/segmented_points.py).

Slicer API used (checked in Slicer's source, Libs/MRML/Core/vtkMRMLMarkupsNode.cxx and
vtkMRMLNode.cxx): ``GetNthControlPointIndexByID`` (-1 for an ID no longer in the list),
``GetNthControlPointPositionStatus``, ``GetNthControlPointPositionWorld``,
``GetNthControlPointLabel``, ``GetNthControlPointID``; ``vtkMRMLNode::GetScene`` (None once
the node is removed from its scene).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Sequence

from UNetPlusPlusLib.adapter.input_checks import point_name
from UNetPlusPlusLib.widget.segmented_points import mark_segmented


@dataclass(frozen=True)
class RunContext:
    """What a point was placed for: the task (model name) and the input volumes' node IDs;
    ``names``: the volumes' names, for messages (not compared)."""

    task: str
    volumes: tuple[str, ...]
    names: tuple[str, ...] = field(default=(), compare=False)

    def change(self, now: RunContext) -> str:
        """How ``now`` differs from this context, e.g. "the task is now 'liver-ct' (was
        'lung-nodule')"; "" when it does not."""
        if now.task != self.task:
            return f"the task is now {_shown(now.task)} (was {_shown(self.task)})"
        if now.volumes != self.volumes:
            then = ", ".join(map(_shown, self.names or ("",)))
            changed = ", ".join(map(_shown, now.names or ("",)))
            return f"the input volume is now {changed} (was {then})"
        return ""


def _shown(name: str) -> str:
    """``'name'``, or ``none`` when nothing is chosen (the volume removed, no task): the status
    said "the input volume is now '' (was 'chest')"."""
    return f"'{name}'" if name else "none"


@dataclass
class QueuedPoint:
    """A placed point waiting for its run: its point list, control point ID, label (for
    messages once it is deleted) and the context it was placed for."""

    node: Any  # vtkMRMLMarkupsNode
    point_id: str
    label: str
    context: Optional[RunContext] = None


@dataclass
class PointRun:
    """What a queued point's run needs, read when it starts."""

    position: list[float]  # RAS mm, world (after the list's transform)
    name: str  # how messages name it, e.g. "Point 'F-2' (2 of 3)" (input_checks.point_name)
    label: str = ""  # its label, e.g. "F-2"
    node: Any = None  # its point list
    point_id: str = ""
    context: Optional[RunContext] = None


@dataclass
class BatchEnd:
    """What a batch of point runs did: ``refused`` (one line per refused point, naming it),
    the labels of the points ``segmented``, of those ``refused_labels``, of those ``stale``
    (not run: the task or volume changed, ``stale_reason``), and how many runs ``started``."""

    refused: list[str]
    started: int
    segmented: list[str]
    refused_labels: list[str]
    stale: list[str]
    stale_reason: str


@dataclass
class PointQueue:
    """Points in placing order, and the batch they run in (since the last :meth:`finish`):
    ``started`` runs, ``segmented`` labels, ``refused`` lines, ``stale`` labels."""

    pending: list[QueuedPoint] = field(default_factory=list)
    started: int = 0
    refused: list[str] = field(default_factory=list)
    refused_labels: list[str] = field(default_factory=list)
    segmented: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    stale_reason: str = ""

    def __len__(self) -> int:
        return len(self.pending)

    def add(self, node, index: int, context: Optional[RunContext] = None) -> None:
        """Queue control point ``index`` of ``node`` (a markups node), placed for ``context``,
        unless it waits already (unplaced and placed again before its run: it runs once, where
        it is then)."""
        point_id, label = node.GetNthControlPointID(index), node.GetNthControlPointLabel(index)
        if any(p.node is node and p.point_id == point_id for p in self.pending):
            return
        self.pending.append(QueuedPoint(node, point_id, label, context))

    def clear(self) -> list[str]:
        """Drop every waiting point (Cancel, scene close); returns their labels."""
        dropped, self.pending = self.pending, []
        return [point.label for point in dropped]

    def drop_missing(self, node, present: set, log: Callable[[str], None]) -> None:
        """Drop the waiting points of ``node`` whose IDs are not in ``present`` (deleted),
        saying so through ``log``: a point placed later may get a deleted one's ID."""
        for point in [p for p in self.pending if p.node is node and p.point_id not in present]:
            self.pending.remove(point)
            log(f"Point '{point.label}' was deleted before its run started; skipped.")

    def next(
        self, log: Callable[[str], None], context: Optional[RunContext] = None
    ) -> Optional[PointRun]:
        """The next point that still exists and was placed for ``context`` (the panel's task
        and volumes now), at its current position. Each deleted or unplaced one before it is
        dropped, and each placed for another context is kept in ``stale``, saying so through
        ``log``. None when none is left."""
        while self.pending:
            point = self.pending.pop(0)
            node = point.node
            index = node.GetNthControlPointIndexByID(point.point_id) if node.GetScene() else -1
            if index < 0 or node.GetNthControlPointPositionStatus(index) != node.PositionDefined:
                what = "deleted" if index < 0 else "unplaced"
                log(f"Point '{point.label}' was {what} before its run started; skipped.")
                continue
            change = point.context.change(context) if point.context and context else ""
            if change:
                self.stale.append(point.label)
                self.stale_reason = self.stale_reason or change
                log(f"Point '{point.label}' not run: {change} since it was placed.")
                continue
            position = [0.0, 0.0, 0.0]
            node.GetNthControlPointPositionWorld(index, position)
            self.started += 1
            name = point_name(node, index)
            return PointRun(position, name, point.label, node, point.point_id, point.context)
        return None

    def refuse(self, run: PointRun, message: str) -> str:
        """Keep the reason why ``run`` failed; returns its line, naming the point (the
        engine's refusals of a click name it already)."""
        line = message if message.startswith(run.name) else f"{run.name}: {message}"
        self.refused.append(line)
        self.refused_labels.append(run.label)
        return line

    def done(self, run: PointRun, output=None, segment_ids: Sequence[str] = ()) -> None:
        """``run`` succeeded: its segments ``segment_ids`` are in ``output`` (a segmentation
        node); recorded on its point list."""
        self.segmented.append(run.label)
        if run.node is not None:
            mark_segmented(run.node, [run.point_id], output, segment_ids)

    def finish(self) -> BatchEnd:
        """What the batch did; starts a new batch."""
        end = BatchEnd(
            self.refused, self.started, self.segmented, self.refused_labels, self.stale,
            self.stale_reason,
        )  # fmt: skip
        self.refused, self.started, self.segmented = [], 0, []
        self.refused_labels, self.stale, self.stale_reason = [], [], ""
        return end


def labels_text(labels: Iterable[str]) -> str:
    """ "'F-2', 'F-3'" """
    return ", ".join(f"'{label}'" for label in labels)


def cancel_text(segmented: list[str], refused: list[str], not_run: list[str]) -> str:
    """The status of a batch cancelled after ``segmented`` points had their segment written
    (kept), ``refused`` were refused and ``not_run`` were not (the one cancelled among them),
    e.g. "Cancelled: 2 of 5 points were segmented and kept ('F-1', 'F-2'); 3 not run ('F-3',
    'F-4', 'F-5')."."""
    total = len(segmented) + len(refused) + len(not_run)
    if segmented:
        verb = "was" if len(segmented) == 1 else "were"
        parts = [
            f"Cancelled: {len(segmented)} of {total} points {verb} segmented and kept "
            f"({labels_text(segmented)})"
        ]
    else:
        parts = [f"Cancelled; the scene was not changed: none of {total} points was segmented"]
    if refused:
        parts.append(f"{len(refused)} refused ({labels_text(refused)})")
    if not_run:
        parts.append(f"{len(not_run)} not run ({labels_text(not_run)})")
    return "; ".join(parts) + "."
