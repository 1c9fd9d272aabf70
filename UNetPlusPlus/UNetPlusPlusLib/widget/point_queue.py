"""The nodule points waiting for their run in the panel (one run per placed point), and what
the runs of one batch of points refused (widget/run_control.py). MRML only, no Qt.

A queued point is kept by its point list and its control point ID, not by its position: a
point moved before its run starts runs where it is then, and one deleted before (its point list
removed from the scene, or the point unplaced) is skipped with a log line (the panel drops
it when Slicer says so, ``PointRemovedEvent``: Slicer gives the next point placed the ID of the
last one if that was deleted). A point whose run
fails (a click in the air, off the image) does not stop the queue: its message is kept, and
the batch's refusals are reported together once the queue is empty (:meth:`PointQueue.finish`).

Slicer API used (checked in Slicer's source, Modules/Loadable/Markups/MRML/vtkMRMLMarkupsNode):
``GetNthControlPointIndexByID`` (-1 for an ID no longer in the list),
``GetNthControlPointPositionStatus``, ``GetNthControlPointPositionWorld``,
``GetNthControlPointLabel``, ``GetNthControlPointID``; ``vtkMRMLNode::GetScene`` (None once
the node is removed from its scene).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from UNetPlusPlusLib.adapter.input_checks import point_name


@dataclass
class QueuedPoint:
    """A placed point waiting for its run: its point list, control point ID and label (for
    messages once it is deleted)."""

    node: Any  # vtkMRMLMarkupsNode
    point_id: str
    label: str


@dataclass
class PointRun:
    """What a queued point's run needs, read when it starts."""

    position: list[float]  # RAS mm, world (after the list's transform)
    name: str  # how messages name it, e.g. "Point 'F-2' (2 of 3)" (input_checks.point_name)


@dataclass
class PointQueue:
    """Points in placing order; ``started``: runs started since the last :meth:`finish`;
    ``refused``: one line per point of those whose run failed."""

    pending: list[QueuedPoint] = field(default_factory=list)
    started: int = 0
    refused: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.pending)

    def add(self, node, index: int) -> None:
        """Queue control point ``index`` of ``node`` (a markups node), unless it waits already
        (unplaced and placed again before its run: it runs once, where it is then)."""
        point_id, label = node.GetNthControlPointID(index), node.GetNthControlPointLabel(index)
        if any(p.node is node and p.point_id == point_id for p in self.pending):
            return
        self.pending.append(QueuedPoint(node, point_id, label))

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

    def next(self, log: Callable[[str], None]) -> Optional[PointRun]:
        """The next point that still exists, at its current position; each deleted or
        unplaced one before it is dropped, saying so through ``log``. None when none is left."""
        while self.pending:
            point = self.pending.pop(0)
            node = point.node
            index = node.GetNthControlPointIndexByID(point.point_id) if node.GetScene() else -1
            if index < 0 or node.GetNthControlPointPositionStatus(index) != node.PositionDefined:
                what = "deleted" if index < 0 else "unplaced"
                log(f"Point '{point.label}' was {what} before its run started; skipped.")
                continue
            position = [0.0, 0.0, 0.0]
            node.GetNthControlPointPositionWorld(index, position)
            self.started += 1
            return PointRun(position, point_name(node, index))
        return None

    def refuse(self, run: PointRun, message: str) -> str:
        """Keep the reason why ``run`` failed; returns its line, naming the point (the
        engine's refusals of a click name it already)."""
        line = message if message.startswith(run.name) else f"{run.name}: {message}"
        self.refused.append(line)
        return line

    def finish(self) -> tuple[list[str], int]:
        """The batch's refusals and how many runs it started; starts a new batch."""
        refused, started = self.refused, self.started
        self.refused, self.started = [], 0
        return refused, started
