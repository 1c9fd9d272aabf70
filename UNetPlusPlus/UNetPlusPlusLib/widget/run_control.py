"""Running the model from the panel: the Segment/Cancel button, polling the background job,
showing the result, nodule points (one run per placed point) and "Export training case".

A mixin of :class:`~UNetPlusPlusLib.widget.panel_widget.UNetPlusPlusPanel`, which provides
``ui``, ``logic``, ``_parameterNode``, ``_timer``, ``currentModel()``, ``inputVolumes()``,
``inputProblem()`` and ``appendLog()``.
"""

import traceback
from typing import Optional

import slicer
from slicer.i18n import tr as _

from UNetPlusPlusLib.adapter import install, panel
from UNetPlusPlusLib.errors import UNetPlusPlusError


class RunControl:
    """Starts, polls and cancels jobs; turns placed nodule points into runs."""

    # ------------------------------------------------------------------ nodule points
    def onSeedsSelected(self, node) -> None:
        self.observeSeeds(node)

    def observeSeeds(self, node) -> None:
        """Watch a point list so that each newly placed point segments one nodule."""
        if node is self._observedSeeds:
            return
        if self._observedSeeds is not None:
            self.removeObserver(
                self._observedSeeds,
                slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent,
                self.onPointPlaced,
            )
        self._observedSeeds = node
        self.ui.nodulePlaceWidget.setCurrentNode(node)
        if node is not None:
            count = node.GetNumberOfControlPoints()
            self._seenPointIds = {node.GetNthControlPointID(i) for i in range(count)}
            self.addObserver(
                node, slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent, self.onPointPlaced
            )

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
                position = [0.0, 0.0, 0.0]
                caller.GetNthControlPointPositionWorld(i, position)
                self._pendingPoints.append(position)
        if self._job is None or self._job.finished:
            self.startNextPoint()

    def startNextPoint(self) -> None:
        if not self._pendingPoints:
            return
        point = self._pendingPoints.pop(0)
        if not self.runGuarded(lambda: self.startRun(pointRas=point)):
            self._pendingPoints = []
            self.showNotStarted()

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
            self._pendingPoints = []
            self._job.cancel()
            self.ui.statusLabel.text = _("Cancelling...")
            return
        if not self._dependenciesReady:
            self.runGuarded(self.ensureDependencies, _("Installing the dependencies failed."))
            self.updateButtons()
            return
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

    def startRun(self, pointRas=None) -> None:
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
                seeds.GetNthControlPointPositionWorld(
                    seeds.GetNumberOfControlPoints() - 1, pointRas
                )
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
        job = self._job
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
        else:
            self._pendingPoints = []
            self.ui.progressBar.setValue(0)
            self.ui.statusLabel.text = _("Failed; the scene was not changed.") + (
                panel.warnings_text(job.run_warnings)  # a refused click: the input's too
            )
            self.appendLog(f"error: {event.message}")
            slicer.util.errorDisplay(event.message, windowTitle=_("UNet++ segmentation"))
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
