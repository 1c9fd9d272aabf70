"""Running the model from the panel: the Segment/Cancel button, polling the background job,
showing the result and nodule points (one run per placed point); "Export training case" is
:class:`~UNetPlusPlusLib.widget.export_control.ExportControl`'s.

A mixin of :class:`~UNetPlusPlusLib.widget.panel_widget.UNetPlusPlusPanel`, which provides
``ui``, ``logic``, ``_parameterNode``, ``_timer``, ``_points`` (a
:class:`~UNetPlusPlusLib.widget.point_queue.PointQueue`), ``currentModel()``,
``inputVolumes()``, ``inputProblem()`` and ``appendLog()``. Nodule points (which run, in
batches) are :class:`~UNetPlusPlusLib.widget.point_batch.PointBatch`'s.

Each engine error is logged once: by the job, as one of its log events (adapter/job.py); the
panel shows it in the status text and a dialog, and does not log it again.
"""

import traceback
from typing import Optional

import slicer
from slicer.i18n import tr as _

from UNetPlusPlusLib.adapter import install, panel
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.widget.click_guard import CancelGuards
from UNetPlusPlusLib.widget.export_control import ExportControl
from UNetPlusPlusLib.widget.point_batch import PointBatch
from UNetPlusPlusLib.widget.point_queue import labels_text
from UNetPlusPlusLib.widget.recorded_runs import RecordedRuns
from UNetPlusPlusLib.widget.segmented_points import segmented_ids


class RunControl(PointBatch, ExportControl, CancelGuards, RecordedRuns):
    """Starts, polls and cancels jobs; turns placed nodule points into runs."""

    def armCancelGuard(self) -> None:
        """After Segment, or a placed point, started a run from idle: the button now reads
        "Cancel"; a click within the double-click interval is not taken as Cancel."""
        if self._job is not None and not self._job.finished:
            self.cancelGuard("segment").arm()

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
            self.ui.segmentButton.toolTip = _(
                "Stop the run (and the points waiting): it writes nothing; the segments of "
                "points done before stay."
            )
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
        self.ui.segmentButton.toolTip = problem or self.segmentToolTip(manifest)
        if problem and manifest is not None:
            self.ui.statusLabel.text = problem  # say why Segment is disabled, naming the channels
        self.ui.exportButton.enabled = self.canExport()

    def segmentToolTip(self, manifest) -> str:
        """What Segment does with this model (and, for nodules, the point list)."""
        if not panel.is_prompted(manifest):
            return _("Run the model.")
        return _(
            "Segment the placed points that have no segment yet, one nodule per point (or, "
            "without such points, the nodule in the ROI)."
        )

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
        self.warmUpEngine()  # the engine starts while the user looks
        self.prepareModelsInBackground()  # the shipped models' graphs, at low priority

    def warmUpEngine(self) -> None:
        """Start the engine process now (its torch import takes 2-3 s), while the user picks
        the inputs, so the first Segment runs as fast as later ones; only once the
        dependencies are installed (never asks to install). Never raises: a process that
        cannot start is the first run's error (SegmentationLogic.warm_up)."""
        if self._dependenciesReady:
            self.logic.warmUpEngine()

    def onSegmentButton(self) -> None:
        if self._job is not None and not self._job.finished:
            if self.cancelGuard("segment").ignores():
                return  # the second click of the double-click (or a queued click) that started it
            # the user asked to stop: the queue too (not the points placed while it stops)
            self._cancelledPoints = getattr(self, "_cancelledPoints", []) + self._points.clear()
            self._job.cancel()
            self.ui.statusLabel.text = _("Cancelling...")
            return
        if not self._dependenciesReady:
            self.runGuarded(self.ensureDependencies, _("Installing the dependencies failed."))
            self.updateButtons()
            return
        self._currentPoint = None  # not a queued point: a failure has its own dialog
        if self.queuePlacedPoints():  # a nodule model: the placed points without a segment
            self.startNextPoint()
        elif not self.runGuarded(self.startRun, _("Segmentation failed to start.")):
            self.showNotStarted()
        self.armCancelGuard()  # measured from now: once the inputs are written

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
        messages; without a point, a prompted model needs an ROI). Raises UNetPlusPlusError
        when refused before it starts; the scene is then unchanged."""
        self.logic.segmentationLogic.warnings = []  # this attempt's only (showNotStarted)
        self._fittedRoi = None
        manifest = self.currentModel()
        if manifest is None:
            raise UNetPlusPlusError(_("Choose a task first."))
        p = self._parameterNode
        if panel.is_prompted(manifest) and pointRas is None and p.roi is None:
            seeds = p.noduleSeeds
            done = segmented_ids(seeds) if seeds is not None else set()
            if done:
                raise UNetPlusPlusError(
                    _(
                        "Every placed point has its nodule segment already: place a point on "
                        "another nodule, or choose an ROI around it."
                    )
                )
            raise UNetPlusPlusError(_("Place a point on the nodule or choose an ROI around it."))
        volumes = self.inputVolumes(manifest)
        released = self.releaseOtherVolumesOutput()  # another patient's node: a new one
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
        if released:
            self._job.warnings.insert(0, released)
        self.appendLog("$ " + " ".join(self._job.command))
        self.ui.progressBar.setValue(0)
        self.ui.statusLabel.text = _("Starting...")
        self._timer.start()
        self.updateButtons()

    def releaseOtherVolumesOutput(self) -> Optional[str]:
        """Once the task or the (first) input volume has changed: if the output segmentation
        belongs to another volume (adapter/segmentation_binding.py: another patient's, or
        another grid's), select "Create new segmentation" (None) and say so in the status text
        and the log; returns that message, or None. The node is left as it is; clicks on the
        same volume keep adding to the same node. Called by the panel on each parameter change
        and before each run."""
        from UNetPlusPlusLib.adapter.segmentation_binding import other_volume_binding

        p = self._parameterNode
        if p is None:
            return None
        manifest = self.currentModel()
        volume = next(iter(self.inputVolumes(manifest)), None)
        key = (getattr(manifest, "name", None), volume.GetID() if volume is not None else None)
        if key == getattr(self, "_outputCheckedFor", None):
            return None  # nothing changed: a node the user chose stays chosen
        self._outputCheckedFor = key
        output = p.outputSegmentation
        if output is None or volume is None:
            return None
        reason = other_volume_binding(output, volume)
        if reason is None:
            return None
        p.outputSegmentation = None
        message = _(
            "Output is now 'Create new segmentation': segmentation '{name}' is not for input "
            "volume '{volume}' ({reason}); it is left unchanged."
        ).format(name=output.GetName(), volume=volume.GetName(), reason=reason)
        self.appendLog(f"warning: {message}")
        self.ui.statusLabel.text = message
        return message

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
            # shown again before a later point's refusal (point_batch.pointFailedText)
            context = getattr(point, "context", None) or self.pointContext()
            self._lastResult = (context, self.ui.statusLabel.text)
            self.appendLog(self.ui.statusLabel.text)
            if node is not None:
                self.appendLog(_("Segments written to '{name}'.").format(name=node.GetName()))
            if point is not None:  # its segment is in the scene: Segment skips it while it is
                written = (job.result or {}).get("segment_ids") or []
                self._points.done(point, node, written)
            manifest = self.currentModel()
            prompted = manifest is not None and panel.is_prompted(manifest)
            if self._parameterNode is not None and prompted and self.pointStillCurrent(point):
                self.markRecordShown(node)  # the summary above says its warnings
                self._parameterNode.outputSegmentation = node  # next clicks add to this node
            self.startNextPoint()
        elif event.state == "cancelled":
            self.ui.progressBar.setValue(0)
            dropped = getattr(self, "_cancelledPoints", [])
            self._cancelledPoints = []
            batch = point is not None or self._points.segmented or self._points.refused
            if batch:  # what is in the scene now: the segments of the points done before
                text = self.cancelledText(point, dropped)
                self.appendLog(text)
            else:
                text = _("Cancelled; the scene was not changed.")
                if self._points:  # points placed since run next: the status moves on
                    self.appendLog(text)
            self.ui.statusLabel.text = text + panel.warnings_text(job.run_warnings)
            self.finishPoints(dialog=False)  # the refusals before the cancel, in the status
            self.runPlacedWhileCancelling()
        else:
            self.ui.progressBar.setValue(0)
            failed = self.failedText() if point is None else self.pointFailedText()
            self.ui.statusLabel.text = failed + (
                panel.warnings_text(job.run_warnings)  # a refused click: the input's too
            )
            # the job logged the error (once: adapter/job.py); here the status and the dialog
            if point is None:  # Segment's own run
                slicer.util.errorDisplay(event.message, windowTitle=_("UNet++ segmentation"))
            else:  # reported with the batch's others once the queue is empty
                self._points.refuse(point, event.message)
            self.startNextPoint()  # a refused point does not stop the queue
        job.release()  # its result is in the scene: no labelmap or node kept alive by the panel
        self.updateButtons()

    def runPlacedWhileCancelling(self) -> None:
        """After a cancel: the points placed while it stopped ("Cancelling...") were not part
        of what the user cancelled; they run now, as a new batch (the log says so)."""
        if not self._points:
            return
        labels = labels_text(point.label for point in self._points.pending)
        self.appendLog(_("Placed after Cancel, now run: {labels}.").format(labels=labels))
        self.carryCancelStatus()  # the cancel's status stays in the status line after theirs
        self.startNextPoint()

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
