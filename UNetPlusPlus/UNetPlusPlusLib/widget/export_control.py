"""The panel's training exports ("Export training case", "Add current case"), written in the
background: Slicer stays responsive while a case's files are compressed and written.

A mixin of :class:`~UNetPlusPlusLib.widget.panel_widget.UNetPlusPlusPanel`, which provides
``ui``, ``logic``, ``_parameterNode``, ``appendLog()``, ``updateButtons()``,
``updateTrainingButtons()`` and ``refreshCases()``. The export reads the nodes at the click
(adapter/training_export.start_training_export) and its thread writes the files; a timer polls
it, shows what it is writing, and the export buttons stay disabled until it is done. Closing
the scene does not stop it (it holds copies, no MRML); quitting Slicer waits for it to finish
(:meth:`ExportControl.finishExportBeforeQuit`; its thread is not a daemon either), so no
half-written file is left.
"""

import traceback

import slicer
from slicer.i18n import tr as _

from UNetPlusPlusLib.errors import DuplicateCaseError, UNetPlusPlusError

EXPORT_POLL_MS = 100
#: How long quitting Slicer waits for an export's write to end (s).
QUIT_WAIT_S = 120.0


class ExportControl:
    """Starts a background export, polls it, shows its result."""

    def setupExport(self) -> None:
        """The export's poll timer (stopped while no export runs)."""
        import qt  # here: run_control.py, which imports this module, is used without Qt

        self._exportJob = None
        self._exportTimer = qt.QTimer()
        self._exportTimer.setInterval(EXPORT_POLL_MS)
        self._exportTimer.connect("timeout()", self.onPollExport)

    def exportRunning(self) -> bool:
        job = getattr(self, "_exportJob", None)
        return job is not None and not job.finished

    def finishExportBeforeQuit(self, timeout: float = QUIT_WAIT_S) -> None:
        """Slicer is quitting: wait for a write under way to end (seconds), so that Python's
        exit, whatever it does with the thread, finds no half-written file; after ``timeout``
        (a hung network share), cancel it: it removes its files when its write returns."""
        job = getattr(self, "_exportJob", None)
        if job is not None and not job.wait(timeout):
            job.cancel()

    def stopExportPolling(self) -> None:
        """Module cleanup: stop polling; a write under way finishes on its own (no MRML)."""
        timer = getattr(self, "_exportTimer", None)
        if timer is not None:
            timer.stop()

    # ------------------------------------------------------------------ buttons
    def onExportButton(self) -> None:
        """Export, unless this is the second click of a double-click on it (click_guard.py)."""
        self.clickOnce(
            "export", lambda: self.runGuarded(self.exportTrainingCase, _("Export failed."))
        )

    def exportTrainingCase(self) -> None:
        manifest = self.currentModel()
        p = self._parameterNode
        channels = [c.name for c in manifest.channels] if manifest else []
        volumes = self.inputVolumes(manifest) if manifest else [p.inputVolume0]
        self.startExport(
            volumes, p.outputSegmentation, p.exportDirectory, p.caseName, channels, added=False
        )

    def startExport(self, volumes, segmentation, folder, name, channels, added: bool) -> None:
        """Start exporting ``name`` to ``folder`` (``added``: by "Add current case"). A refusal
        raises ``UNetPlusPlusError`` here; a case already in the folder is said in the status
        line, nothing written."""
        if self.exportRunning():  # the buttons are disabled: a queued click
            return
        label = self.ui.trainingStatusLabel if added else self.ui.statusLabel
        try:
            job = self.logic.startTrainingExport(volumes, segmentation, folder, name, channels)
        except DuplicateCaseError as duplicate:
            self.appendLog(str(duplicate))
            label.text = str(duplicate)
            return
        self._exportJob, self._exportShown = job, (label, folder, added)
        label.text = _("Exporting {case}...").format(case=name)
        self._exportTimer.start()
        self.updateExportButtons()

    def canExport(self) -> bool:
        """Whether the export buttons are enabled: an output segmentation, no export running."""
        p = self._parameterNode
        return p is not None and p.outputSegmentation is not None and not self.exportRunning()

    def updateExportButtons(self) -> None:
        self.ui.exportButton.enabled = self.ui.addCaseButton.enabled = self.canExport()

    # ------------------------------------------------------------------ polling
    def onPollExport(self) -> None:
        job = getattr(self, "_exportJob", None)
        if job is None:
            self._exportTimer.stop()
            return
        label, folder, added = self._exportShown
        if not job.finished:
            label.text = job.stage or label.text
            return
        self._exportTimer.stop()
        self._exportJob = None
        try:
            written = job.result()
        except UNetPlusPlusError as error:
            self.appendLog(f"error: {error}")
            label.text = str(error)
            slicer.util.errorDisplay(str(error), windowTitle=_("UNet++"))
        except Exception as error:  # a bug: its details in the log
            self.appendLog(
                "".join(traceback.format_exception(type(error), error, error.__traceback__))
            )
            slicer.util.errorDisplay(f"{_('Export failed.')}\n\n{error}", windowTitle=_("UNet++"))
        else:
            prefix = _("Added case: ") if added else _("Exported: ")
            self.appendLog(prefix + ", ".join(str(f) for f in written))
            label.text = self.exportedText(written, folder, added=added)
            if added:
                self.refreshCases()
        self.updateExportButtons()

    @staticmethod
    def exportedText(written, folder, added: bool = False) -> str:
        """The status line after an export (``added``: by "Add current case"): the files or
        case written, or what the export says of the dataset (``WrittenCase.message``: the case
        whose labels it replaced, the same image exported before with another mask, where the
        old labels are kept, other copies of the image)."""
        said = getattr(written, "message", "")
        if getattr(written, "replaced", False):
            return said
        if added:
            text = _("Added {case} to {folder}").format(case=written.case, folder=folder)
        else:
            text = _("Exported {count} files to {folder}").format(count=len(written), folder=folder)
        return f"{text}. {said}" if said else text
