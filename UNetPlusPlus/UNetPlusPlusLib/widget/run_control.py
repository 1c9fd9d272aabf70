"""Running the model from the panel: the Segment/Cancel button, polling the background job,
showing the result, nodule points (one run per placed point) and "Export training case".

A mixin of :class:`~UNetPlusPlusLib.widget.panel_widget.UNetPlusPlusPanel`, which provides
``ui``, ``logic``, ``_parameterNode``, ``_timer``, ``_points`` (a
:class:`~UNetPlusPlusLib.widget.point_queue.PointQueue`), ``currentModel()``,
``inputVolumes()``, ``inputProblem()`` and ``appendLog()``.

Queued points: a point whose run fails (the engine refuses a click in the air or off the image)
does not stop the queue; the next one runs. Each refusal is logged when it happens; once the
queue is empty the status text lists them ("Not segmented: Point 'F-2' (2 of 3) at ... mm RAS
lies in the air ...") and one error dialog shows them all: one to acknowledge per batch, not
one per refused point, and none while other points still run. Cancel empties the queue.
"""

import traceback
from functools import partial
from typing import Optional

import slicer
from slicer.i18n import tr as _

from UNetPlusPlusLib.adapter import install, panel
from UNetPlusPlusLib.adapter.input_checks import point_name
from UNetPlusPlusLib.errors import UNetPlusPlusError


class RunControl:
    """Starts, polls and cancels jobs; turns placed nodule points into runs."""

    # ------------------------------------------------------------------ nodule points
    def onSeedsSelected(self, node) -> None:
        self.observeSeeds(node)

    def observeSeeds(self, node) -> None:
        """Watch a point list so that each newly placed point segments one nodule, and each
        deleted one leaves the queue."""
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
            for event, method in events:
                self.addObserver(node, event, method)

    def onPointRemoved(self, caller, event) -> None:
        """A point deleted: forget its ID (Slicer gives a point placed next the ID and label of
        the last one if that was deleted: it is a new point, to segment) and drop it from the
        queue if its run has not started, saying so in the log."""
        count = caller.GetNumberOfControlPoints()
        present = {caller.GetNthControlPointID(i) for i in range(count)}
        self._seenPointIds &= present
        self._points.drop_missing(caller, present, self.appendLog)

    def onPointUnplaced(self, caller, event) -> None:
        """A point's position cleared (the point list's "unset position"): placing it again is
        a new click, to segment; Slicer keeps its ID."""
        count = caller.GetNumberOfControlPoints()
        placed = caller.PositionDefined
        defined = {
            caller.GetNthControlPointID(i)
            for i in range(count)
            if caller.GetNthControlPointPositionStatus(i) == placed
        }
        self._seenPointIds &= defined

    def onPointPlaced(self, caller, event) -> None:
        manifest = self.currentModel()
        if not (self._parameterNode and self._parameterNode.interactive and manifest):
            return
        if not panel.is_prompted(manifest):
            return
        for i in range(caller.GetNumberOfControlPoints()):
            pointId = caller.GetNthControlPointID(i)
            defined = caller.GetNthControlPointPositionStatus(i) == caller.PositionDefined
            if defined and pointId not in self._seenPointIds:
                self._seenPointIds.add(pointId)
                self._points.add(caller, i)  # read again when its run starts (moved, deleted)
        if self._job is None or self._job.finished:
            self.startNextPoint()

    def startNextPoint(self) -> None:
        """Start the run of the next queued point that still exists, where it is now; with
        none left, report the batch's refusals (:meth:`finishPoints`). A start refused (the
        inputs, the engine: the same for every point) drops the rest of the queue, naming it."""
        point = self._points.next(self.appendLog)
        if point is None:
            self.finishPoints()
            return
        self._currentPoint = point
        if self.runGuarded(partial(self.startRun, point.position, point.name)):
            return
        self._currentPoint = None
        dropped = self._points.clear()
        self.showNotStarted()
        if dropped:
            text = self.notRunText(dropped, _("place them again once this is solved"))
            self.appendLog(text)
            self.ui.statusLabel.text += "\n" + text
        self.finishPoints(dialog=False)  # the refusal had its dialog

    @staticmethod
    def notRunText(labels, advice: str = "") -> str:
        """ "Not run: 'F-2', 'F-3'; <advice>." for queued points dropped before their run
        (default advice: cancelled, place them again to segment them)."""
        advice = advice or _("cancelled; place them again to segment them")
        names = ", ".join(f"'{label}'" for label in labels)
        return _("Not run: {labels}; {advice}.").format(labels=names, advice=advice)

    def finishPoints(self, dialog: bool = True) -> None:
        """After the last queued point: add the batch's refused points to the status text, and
        show them in one error dialog (``dialog``)."""
        refused, started = self._points.finish()
        if not refused:
            return
        self.ui.statusLabel.text += "".join(f"\n{_('Not segmented')}: {line}" for line in refused)
        if not dialog:
            return
        text = refused[0]
        if started > 1:
            header = _("{refused} of {started} points were not segmented:")
            header = header.format(refused=len(refused), started=started)
            text = "\n\n".join([header, *refused])
        slicer.util.errorDisplay(text, windowTitle=_("UNet++ segmentation"))

    def runGuarded(self, action, failure: str = "") -> bool:
        """Run ``action``; show a user error as its one-sentence message, a bug with details."""
        try:
            action()
            return True
        except UNetPlusPlusError as error:
            self.appendLog(f"error: {error}")
            slicer.util.errorDisplay(str(error), windowTitle=_("UNet++"))
        except Exception as error:
            self.appendLog(traceback.format_exc())
            failure = failure or _("The action failed.")
            slicer.util.errorDisplay(f"{failure}\n\n{error}", windowTitle=_("UNet++"))
        self.updateButtons()
        return False

    # ------------------------------------------------------------------ running
    def updateButtons(self) -> None:
        if self._parameterNode is None:
            self.ui.segmentButton.enabled = False
            return
        running = self._job is not None and not self._job.finished
        if running:
            self.ui.segmentButton.text = _("Cancel")
            self.ui.segmentButton.enabled = True
            self.ui.segmentButton.toolTip = _("Stop the run; the scene is left as it was.")
            return
        if not self._dependenciesReady:
            self.ui.segmentButton.text = _("Install dependencies")
            self.ui.segmentButton.enabled = True
            self.ui.segmentButton.toolTip = _(
                "Install PyTorch (through the PyTorch extension) and the engine's Python "
                "packages; you are asked before anything is installed."
            )
            return
        manifest = self.currentModel()
        problem = self.inputProblem(manifest)
        self.ui.segmentButton.text = _("Segment")
        self.ui.segmentButton.enabled = problem is None
        self.ui.segmentButton.toolTip = problem or _("Run the model.")
        if problem and manifest is not None:
            self.ui.statusLabel.text = problem  # say why Segment is disabled, naming the channels
        self.ui.exportButton.enabled = self._parameterNode.outputSegmentation is not None

    def ensureDependencies(self) -> None:
        """Install torch and the engine's packages at first use, after the user agrees."""
        if self._dependenciesReady:
            return
        try:
            install.ensure_dependencies(
                confirm=slicer.util.confirmOkCancelDisplay, log=self.appendLog
            )
        finally:
            self._dependenciesReady = install.dependencies_ready()
        self.refreshDevices()
        self.refreshModels()

    def onSegmentButton(self) -> None:
        if self._job is not None and not self._job.finished:
            self._cancelledPoints = self._points.clear()  # the user asked to stop: the queue too
            if self._cancelledPoints:
                self.appendLog(self.notRunText(self._cancelledPoints))
            self._job.cancel()
            self.ui.statusLabel.text = _("Cancelling...")
            return
        if not self._dependenciesReady:
            self.runGuarded(self.ensureDependencies, _("Installing the dependencies failed."))
            self.updateButtons()
            return
        self._currentPoint = None  # not a queued point: a failure has its own dialog
        if not self.runGuarded(self.startRun, _("Segmentation failed to start.")):
            self.showNotStarted()

    def showNotStarted(self) -> None:
        """After a run was refused before it started: say so in the status text, with the
        warnings its input checks had found (the Logic's ``warnings``)."""
        warnings = [self._fittedRoi] if self._fittedRoi else []
        warnings += self.logic.segmentationLogic.warnings
        self.ui.statusLabel.text = _("Not started; nothing was written.") + (
            panel.warnings_text(warnings)
        )

    def startRun(self, pointRas=None, pointName: Optional[str] = None) -> None:
        """Start a background run (a click at ``pointRas``, RAS mm, named ``pointName`` in
        messages; default: the last point of the list, for a prompted model). Raises
        UNetPlusPlusError when refused before it starts; the scene is then unchanged."""
        self.logic.segmentationLogic.warnings = []  # this attempt's only (showNotStarted)
        self._fittedRoi = None
        manifest = self.currentModel()
        if manifest is None:
            raise UNetPlusPlusError(_("Choose a task first."))
        p = self._parameterNode
        if panel.is_prompted(manifest) and pointRas is None:
            seeds = p.noduleSeeds
            if seeds is not None and seeds.GetNumberOfControlPoints() > 0:
                pointRas = [0.0, 0.0, 0.0]
                last = seeds.GetNumberOfControlPoints() - 1
                seeds.GetNthControlPointPositionWorld(last, pointRas)
                pointName = point_name(seeds, last)
            elif p.roi is None:
                raise UNetPlusPlusError(
                    _("Place a point on the nodule or choose an ROI around it.")
                )
        volumes = self.inputVolumes(manifest)
        self._fittedRoi = self.fitEmptyRoi(volumes)  # a warning, or None
        self.logic.segmentationLogic.channel_check = bool(p.channelCheck)
        try:
            self._job = self.logic.startJob(
                volumes,
                manifest,
                depth=p.depth,
                device=p.device,
                roi_node=p.roi,
                point_ras=pointRas,
                output_node=p.outputSegmentation,
                replace_existing=p.replaceExisting,
                tta=p.tta,
                point_name=pointName,
            )
        except Exception:  # refused: the scene stays as it was, the ROI too
            if self._fittedRoi:
                self.unfitRoi()
                self._fittedRoi = None
            raise
        if self._fittedRoi:  # shown with the run's other warnings, first
            self._job.warnings.insert(0, self._fittedRoi)
        self.appendLog("$ " + " ".join(self._job.command))
        self.ui.progressBar.setValue(0)
        self.ui.statusLabel.text = _("Starting...")
        self._timer.start()
        self.updateButtons()

    def fitEmptyRoi(self, volumeNodes) -> Optional[str]:
        """An ROI selected but never placed (no size) is fitted to the volume, with a warning, so
        that Segment does not stop at "ROI is empty". Returns that warning (logged), or None."""
        from UNetPlusPlusLib.adapter.roi import fit_if_empty, roi_state

        roi = self._parameterNode.roi
        before = roi_state(roi) if roi is not None else None
        if not (volumeNodes and fit_if_empty(roi, volumeNodes[0])):
            return None
        self._roiBeforeFit = (roi, before)  # put back by unfitRoi if the start is refused
        warning = _(
            "ROI '{name}' had not been placed; it now holds the whole volume. Drag its handles "
            "to restrict the next run."
        ).format(name=roi.GetName())
        self.appendLog(f"warning: {warning}")
        return warning

    def unfitRoi(self) -> None:
        """Undo :meth:`fitEmptyRoi` (a Segment refused before it started changes nothing)."""
        from UNetPlusPlusLib.adapter.roi import restore_roi

        saved, self._roiBeforeFit = getattr(self, "_roiBeforeFit", None), None
        if saved is not None:
            restore_roi(*saved)
            self.appendLog(_("ROI '{name}' is back as it was.").format(name=saved[0].GetName()))

    def onPollJob(self) -> None:
        if self._job is None:
            self._timer.stop()
            return
        try:
            events = self._job.poll()
        except Exception:  # a bug: report it, and never leave the panel stuck in "running"
            self._timer.stop()
            self.appendLog(traceback.format_exc())
            self.updateButtons()
            slicer.util.errorDisplay(_("Internal error while reading the result; see the log."))
            return
        for event in events:
            if event.kind == "progress":
                text, percent = panel.progress_text(event.stage, event.done, event.total)
                self.ui.progressBar.setValue(percent)
                self.ui.statusLabel.text = text
            elif event.kind == "log":
                self.appendLog(event.message)
            elif event.kind == "finished":
                self.onJobFinished(event)

    def onJobFinished(self, event) -> None:
        self._timer.stop()
        job, point, self._currentPoint = self._job, self._currentPoint, None
        self.updateButtons()
        if event.state == "succeeded":
            node = job.output
            self.showResult(node)
            self.ui.progressBar.setValue(100)
            self.ui.statusLabel.text = self.resultSummary(job)
            self.appendLog(self.ui.statusLabel.text)
            if node is not None:
                self.appendLog(_("Segments written to '{name}'.").format(name=node.GetName()))
            manifest = self.currentModel()
            if self._parameterNode is not None and manifest and panel.is_prompted(manifest):
                self._parameterNode.outputSegmentation = node  # next clicks add to this node
            self.startNextPoint()
        elif event.state == "cancelled":
            self.ui.progressBar.setValue(0)
            self.ui.statusLabel.text = _("Cancelled; the scene was not changed.") + (
                panel.warnings_text(job.run_warnings)  # those known before the cancel
            )
            self._points.clear()  # also a cancel not asked with the button (scene close)
            dropped, self._cancelledPoints = getattr(self, "_cancelledPoints", []), []
            if dropped:  # still in the point list, without a segment: say which
                self.ui.statusLabel.text += "\n" + self.notRunText(dropped)
            self.finishPoints(dialog=False)  # the refusals before the cancel, in the status
        else:
            self.ui.progressBar.setValue(0)
            self.ui.statusLabel.text = _("Failed; the scene was not changed.") + (
                panel.warnings_text(job.run_warnings)  # a refused click: the input's too
            )
            self.appendLog(f"error: {event.message}")
            if point is None:  # Segment's own run
                slicer.util.errorDisplay(event.message, windowTitle=_("UNet++ segmentation"))
            else:  # reported with the batch's others once the queue is empty
                self._points.refuse(point, event.message)
            self.startNextPoint()  # a refused point does not stop the queue
        self.updateButtons()

    @staticmethod
    def resultSummary(job) -> str:
        info = job.result or {}
        volumes = ", ".join(f"{k} {v:.1f} ml" for k, v in (info.get("volumes_ml") or {}).items())
        seconds = info.get("seconds")
        timing = f" in {seconds:.1f} s" if isinstance(seconds, (int, float)) else ""
        return _("Done: depth {depth} on {device}{timing}. {volumes}").format(
            depth=info.get("depth", "?"),
            device=info.get("device", "?"),
            timing=timing,
            volumes=volumes,
        ) + panel.warnings_text(job.run_warnings)  # the Slicer side's and the engine's, once

    @staticmethod
    def showResult(node) -> None:
        if node is None:
            return
        node.CreateDefaultDisplayNodes()
        node.GetDisplayNode().SetVisibility(True)
        node.CreateClosedSurfaceRepresentation()

    # ------------------------------------------------------------------ export
    def onExportButton(self) -> None:
        self.runGuarded(self.exportTrainingCase, _("Export failed."))

    def exportTrainingCase(self) -> None:
        manifest = self.currentModel()
        p = self._parameterNode
        channels = [c.name for c in manifest.channels] if manifest else []
        volumes = self.inputVolumes(manifest) if manifest else [p.inputVolume0]
        with slicer.util.WaitCursor():
            written = self.logic.exportTrainingCase(
                volumes, p.outputSegmentation, p.exportDirectory, p.caseName, channels
            )
        self.appendLog(_("Exported: ") + ", ".join(str(f) for f in written))
        self.ui.statusLabel.text = _("Exported {count} files to {folder}").format(
            count=len(written), folder=p.exportDirectory
        )
