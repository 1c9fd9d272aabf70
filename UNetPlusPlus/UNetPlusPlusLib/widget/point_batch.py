"""Nodule points in the panel: one run per placed point, in batches (widget/point_queue.py).

A mixin of :class:`~UNetPlusPlusLib.widget.run_control.RunControl` (see it for what the panel
provides). Which points run:

- "Segment each new point automatically" (``interactive``) on: each point placed from then on
  is queued and runs once the run before it ends. Points placed while it was off are
  landmarks: turning it on does not run them.
- Segment (:meth:`queuePlacedPoints`): the placed points of the list that have no segment
  (:func:`~UNetPlusPlusLib.widget.segmented_points.segmented_ids`: never had, or their segment was
  deleted since), in list order.

A point runs with the task and input volumes it was queued for; one whose turn comes after
either changed is not run: the status and the log name it, and it stays placed.

A point whose run fails (the engine refuses a click in the air; the Logic one off the image,
before its run starts) does not stop the queue; the next one runs. Each refusal is logged
once, when it happens; once the queue is empty the status text lists them ("Not segmented:
Point 'F-2' (2 of 3) at ... mm RAS lies in the air ...") after the status of the last result,
which stays (:meth:`PointBatch.pointFailedText`), and one error dialog shows them all:
one to acknowledge per batch, not one per refused point, and none while other points still
run. Cancel empties the queue; the status
says which points were segmented and kept and which were not (:meth:`cancelledText`). Points
placed while the cancel completes ("Cancelling...") were not cancelled: they run after it
(run_control.py, ``runPlacedWhileCancelling``), and the status line still says what the cancel
kept once they are done (:meth:`carryCancelStatus`).
"""

from functools import partial
from typing import Optional

import slicer
from slicer.i18n import tr as _

from UNetPlusPlusLib.adapter import panel
from UNetPlusPlusLib.errors import PointRefusedError
from UNetPlusPlusLib.widget.point_queue import RunContext, cancel_text, labels_text
from UNetPlusPlusLib.widget.segmented_points import keep_segmented, segmented_ids


class PointBatch:
    """Turns placed nodule points into runs and reports each batch."""

    def onSeedsSelected(self, node) -> None:
        self.observeSeeds(node)

    def observeSeeds(self, node) -> None:
        """Watch a point list: with ``interactive``, each newly placed point segments one
        nodule; each deleted one leaves the queue and its segmented record."""
        if node is self._observedSeeds:
            return
        events = (
            (slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent, self.onPointPlaced),
            (slicer.vtkMRMLMarkupsNode.PointRemovedEvent, self.onPointRemoved),
            (slicer.vtkMRMLMarkupsNode.PointPositionUndefinedEvent, self.onPointUnplaced),
        )
        if self._observedSeeds is not None:
            for event, method in events:
                self.removeObserver(self._observedSeeds, event, method)
        self._observedSeeds = node
        self.ui.nodulePlaceWidget.setCurrentNode(node)
        if node is not None:
            count = node.GetNumberOfControlPoints()
            self._seenPointIds = {node.GetNthControlPointID(i) for i in range(count)}
            keep_segmented(node, self._seenPointIds)  # deleted while not watched
            for event, method in events:
                self.addObserver(node, event, method)

    def onPointRemoved(self, caller, event) -> None:
        """A point deleted: forget its ID (Slicer gives a point placed next the ID and label of
        the last one if that was deleted: it is a new point) and drop it from the queue if its
        run has not started, saying so in the log."""
        count = caller.GetNumberOfControlPoints()
        present = {caller.GetNthControlPointID(i) for i in range(count)}
        self._seenPointIds &= present
        keep_segmented(caller, present)
        self._points.drop_missing(caller, present, self.appendLog)

    def onPointUnplaced(self, caller, event) -> None:
        """A point's position cleared (the point list's "unset position"): placing it again is
        a new click; Slicer keeps its ID."""
        count = caller.GetNumberOfControlPoints()
        placed = caller.PositionDefined
        defined = {
            caller.GetNthControlPointID(i)
            for i in range(count)
            if caller.GetNthControlPointPositionStatus(i) == placed
        }
        self._seenPointIds &= defined
        keep_segmented(caller, defined)

    def onPointPlaced(self, caller, event) -> None:
        """Each newly placed point is remembered; with ``interactive`` and a prompted model it
        is queued too (the others are landmarks: Segment runs them on request)."""
        manifest = self.currentModel()
        p = self._parameterNode
        auto = bool(p and p.interactive and manifest and panel.is_prompted(manifest))
        context = self.pointContext() if auto else None
        for i in range(caller.GetNumberOfControlPoints()):
            pointId = caller.GetNthControlPointID(i)
            defined = caller.GetNthControlPointPositionStatus(i) == caller.PositionDefined
            if defined and pointId not in self._seenPointIds:
                self._seenPointIds.add(pointId)
                if auto:  # read again when its run starts (moved, deleted)
                    self._points.add(caller, i, context)
        if auto and (self._job is None or self._job.finished):
            self.startNextPoint()
            self.armCancelGuard()  # a click on "Segment" as it turns into Cancel: not a Cancel

    def pointContext(self) -> RunContext:
        """The task and input volumes the panel would run with now."""
        manifest = self.currentModel()
        volumes = self.inputVolumes(manifest) if manifest is not None else []
        return RunContext(
            manifest.name if manifest is not None else "",
            tuple(v.GetID() if v is not None else "" for v in volumes),
            tuple(v.GetName() if v is not None else "" for v in volumes),
        )

    def queuePlacedPoints(self) -> int:
        """Segment with a prompted model: queue every placed point of the point list that has
        no segment yet, for the task and volumes now; returns how many are waiting."""
        manifest, p = self.currentModel(), self._parameterNode
        seeds = p.noduleSeeds if p is not None else None
        if manifest is None or not panel.is_prompted(manifest) or seeds is None:
            return 0
        done, context = segmented_ids(seeds), self.pointContext()
        for i in range(seeds.GetNumberOfControlPoints()):
            pointId = seeds.GetNthControlPointID(i)
            placed = seeds.GetNthControlPointPositionStatus(i) == seeds.PositionDefined
            if placed and pointId not in done:
                self._seenPointIds.add(pointId)
                self._points.add(seeds, i, context)
        return len(self._points)

    def startNextPoint(self) -> None:
        """Start the run of the next queued point that still exists, where it is now; with
        none left, report the batch (:meth:`finishPoints`). A point refused before its start
        (off the image: PointRefusedError) is refused as the engine's refusals are, and the
        next one runs; another refused start (the inputs, the engine: the same for every
        point) drops the rest of the queue, naming it."""
        point = self._points.next(self.appendLog, self.pointContext())
        while point is not None:
            refused: list = []
            self._currentPoint = point
            if not self.runGuarded(partial(self.startPointRun, point, refused)):
                break
            if not refused:
                return
            self._currentPoint = None
            self.appendLog(f"error: {refused[0]}")
            self.ui.progressBar.setValue(0)
            self.ui.statusLabel.text = self.pointFailedText()
            self._points.refuse(point, refused[0])
            point = self._points.next(self.appendLog, self.pointContext())
        if point is None:
            self.finishPoints()
            return
        self._currentPoint = None
        dropped = [point.label, *self._points.clear()]
        self.showNotStarted()
        text = self.notRunText(dropped, _("click Segment to run them once this is solved"))
        self.appendLog(text)
        self.ui.statusLabel.text += "\n" + text
        self.finishPoints(dialog=False)  # the refusal had its dialog

    def startPointRun(self, point, refused: list) -> None:
        """Start ``point``'s run; its refusal before the start (PointRefusedError) goes into
        ``refused`` (its message), not out as an error."""
        try:
            self.startRun(point.position, point.name)
        except PointRefusedError as error:
            refused.append(str(error))

    @staticmethod
    def notRunText(labels, advice: str) -> str:
        """ "Not run: 'F-2', 'F-3'; <advice>." for points dropped before their run."""
        return _("Not run: {labels}; {advice}.").format(labels=labels_text(labels), advice=advice)

    def cancelledText(self, point, dropped: list) -> str:
        """The status line of a batch cancelled while ``point`` (a PointRun, or None) ran and
        ``dropped`` waited: which points were segmented and kept, refused, not run."""
        notRun = ([point.label] if point is not None else []) + list(dropped)
        points = self._points
        text = cancel_text(points.segmented, points.refused_labels, notRun)
        if notRun or points.refused_labels:
            text += "\n" + _("The points not segmented stay placed; Segment runs them.")
        return text

    def failedText(self) -> str:
        """The status line of a failed run: in a batch after points were segmented, it says
        that their segments stay."""
        if not self._points.segmented:
            return _("Failed; the scene was not changed.")
        return _(
            "Failed; nothing was written for this point. Kept: the segments of {labels}."
        ).format(labels=labels_text(self._points.segmented))

    def pointFailedText(self) -> str:
        """The status line of a point's failed run: the status of the last result first, when
        it is for the task and volumes now (its segments stay in the scene, and its figures
        and warnings stay shown), then :meth:`failedText`; the refusal's reason follows
        (:meth:`finishPoints`)."""
        last = getattr(self, "_lastResult", None)  # (RunContext, status text), run_control.py
        shown = f"{last[1]}\n" if last and last[1] and last[0] == self.pointContext() else ""
        return shown + self.failedText()

    def finishPoints(self, dialog: bool = True) -> None:
        """After the last queued point: add the batch's refused points and the points not run
        for another task or volume to the status text (and the log), then the status of the
        batch cancelled before it (:meth:`carryCancelStatus`), and show the refused in one
        error dialog (``dialog``)."""
        end = self._points.finish()
        if end.stale:
            text = _(
                "Not run: {labels}; {reason} since they were placed. They stay placed: choose "
                "the task and volume they were placed for and click Segment to segment them."
            ).format(labels=labels_text(end.stale), reason=end.stale_reason)
            self.appendLog(text)
            self.ui.statusLabel.text += "\n" + text
        if end.refused:
            self.ui.statusLabel.text += "".join(
                f"\n{_('Not segmented')}: {line}" for line in end.refused
            )
        carried, self._cancelStatus = getattr(self, "_cancelStatus", ""), ""
        if carried:
            self.ui.statusLabel.text += "\n" + carried
        if not end.refused or not dialog:
            return
        text = end.refused[0]
        if end.started > 1:
            header = _("{refused} of {started} points were not segmented:")
            header = header.format(refused=len(end.refused), started=end.started)
            text = "\n\n".join([header, *end.refused])
        slicer.util.errorDisplay(text, windowTitle=_("UNet++ segmentation"))

    def carryCancelStatus(self) -> None:
        """Keep the status of a cancelled batch (what was segmented and kept, refused, not run)
        while the points placed during the cancel run: the status line then says it again
        after theirs (:meth:`finishPoints`), not only the log."""
        self._cancelStatus = self.ui.statusLabel.text

    def pointStillCurrent(self, point: Optional[object]) -> bool:
        """Whether the panel's task and volumes are still those ``point`` ran for (its output
        node then receives the next clicks)."""
        context = getattr(point, "context", None)
        return context is None or context == self.pointContext()
