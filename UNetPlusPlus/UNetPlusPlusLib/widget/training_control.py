"""The panel's "Train / fine-tune" section: cases, add the current case, plan, train/cancel.

A mixin of :class:`~UNetPlusPlusLib.widget.panel_widget.UNetPlusPlusPanel`. The work is done by
``logic.trainingLogic`` (UNetPlusPlusLib.adapter.training_logic) in a background process polled
by a ``qt.QTimer``, as segmentation is; this file only binds the widgets and shows progress.
"""

import qt
import slicer
from slicer.i18n import tr as _

from UNetPlusPlusLib.adapter.training_cases import cases_summary, next_case_name
from UNetPlusPlusLib.adapter.training_panel import (
    channel_check_args,
    epoch_text,
    plan_text,
    strict_labels_args,
)
from UNetPlusPlusLib.widget.click_guard import CancelGuards

TRAINING_POLL_MS = 250


class TrainingControl(CancelGuards):
    """Cases folder check, "Add current case", plan, Train / Cancel, progress and install."""

    def setupTraining(self) -> None:
        """Connect the section's widgets and start its poll timer (stopped while idle)."""
        self._trainingJob = None
        self._trainingTimer = qt.QTimer()
        self._trainingTimer.setInterval(TRAINING_POLL_MS)
        self._trainingTimer.connect("timeout()", self.onPollTraining)
        self.ui.trainingProgressBar.setValue(0)
        self.ui.addCaseButton.connect("clicked(bool)", self.onAddCaseButton)
        self.ui.planButton.connect("clicked(bool)", self.onPlanButton)
        self.ui.trainButton.connect("clicked(bool)", self.onTrainButton)
        # the cases folder is bound to the parameter node: a change refreshes the count through
        # onParameterNodeModified -> refreshCases

    def trainingRunning(self) -> bool:
        return self._trainingJob is not None and not self._trainingJob.finished

    def stopTraining(self) -> None:
        """Scene close, module cleanup, application exit: kill the training tree, no install."""
        self._trainingTimer.stop()
        self.logic.shutdownTraining()
        self._trainingJob = None
        self.updateTrainingButtons()

    # ------------------------------------------------------------------ cases
    def trainingParent(self):
        """The model a fine-tune starts from (None: from scratch)."""
        if self._parameterNode is None or self._parameterNode.trainFromScratch:
            return None
        return self.currentModel()

    def refreshCases(self) -> None:
        if self._parameterNode is None:
            return
        folder = self._parameterNode.trainingDirectory
        found = self.logic.trainingLogic.check_cases(folder, self.trainingParent())
        self.ui.trainingCasesLabel.text = cases_summary(found)
        self._usableCases = found.usable
        self.updateTrainingButtons()

    def onAddCaseButton(self) -> None:
        """Add the case, unless this is the second click of a double-click on the button."""
        self.clickOnce(
            "addCase", lambda: self.runGuarded(self.addCurrentCase, _("Adding the case failed."))
        )

    def addCurrentCase(self) -> None:
        """Export the current volume(s) and output segmentation as the next numbered case."""
        manifest = self.currentModel()
        p = self._parameterNode
        channels = [c.name for c in manifest.channels] if manifest else []
        volumes = self.inputVolumes(manifest) if manifest else [p.inputVolume0]
        name = next_case_name(p.trainingDirectory)
        self.startExport(
            volumes, p.outputSegmentation, p.trainingDirectory, name, channels, added=True
        )  # the status line and the cases count follow when it is written (export_control.py)

    # ------------------------------------------------------------------ plan and train
    def updateTrainingButtons(self) -> None:
        running = self.trainingRunning()
        planning = running and self._trainingJob.plan_only
        self.ui.trainButton.text = _("Cancel") if running and not planning else _("Train")
        usable = getattr(self, "_usableCases", 0) > 0 and self._parameterNode is not None
        self.ui.trainButton.enabled = (running and not planning) or (not running and usable)
        self.ui.planButton.enabled = usable and not running
        self.ui.addCaseButton.enabled = self.canExport()  # not while an export runs

    def onPlanButton(self) -> None:
        self.runGuarded(lambda: self.startTraining(planOnly=True), _("Planning failed."))

    def onTrainButton(self) -> None:
        """Train, or Cancel while training (not the second click of the double-click that
        started it: widget/click_guard.py)."""
        if self.trainingRunning():
            if self.cancelGuard("train").ignores():
                return
            self._trainingJob.cancel()
            self.ui.trainingStatusLabel.text = _("Cancelling...")
            return
        self.runGuarded(self.startTraining, _("Training failed to start."))
        if self.trainingRunning():  # the button reads "Cancel" from now
            self.cancelGuard("train").arm()

    def startTraining(self, planOnly: bool = False) -> None:
        p = self._parameterNode
        parent = self.trainingParent()
        if parent is None and not p.trainFromScratch:
            self.ui.trainingStatusLabel.text = _("Select a model to fine-tune, or 'From scratch'.")
            return
        # from scratch too, no --labels: the trainer learns every segment of the cases by its
        # name (the panel passed the first case's names, and two or more of them were refused
        # as "unrecognized arguments"; a segment named "1" would now mean label value 1)
        labels: list = []
        self._trainingJob = self.logic.trainingLogic.start(
            p.trainingDirectory, parent, time_budget=p.trainingBudget, device=p.device,
            labels=labels, plan_only=planOnly, on_success=self.onModelInstalled,
            extra_args=channel_check_args(p.trainingChannelCheck)
            + strict_labels_args(p.trainingStrictLabels),
        )  # fmt: skip
        self.ui.trainingProgressBar.setValue(0)
        self.ui.trainingStatusLabel.text = _("Measuring this machine...") if planOnly else ""
        self.appendLog(" ".join(self._trainingJob.command))
        self._trainingTimer.start()
        self.updateTrainingButtons()

    def onPollTraining(self) -> None:
        job = self._trainingJob
        if job is None:
            self._trainingTimer.stop()
            return
        for event in job.poll():
            if event.kind == "progress":
                self.ui.trainingProgressBar.setValue(int(100 * event.fraction))
                self.ui.trainingStatusLabel.text = event.message or epoch_text(job.latest)
            elif event.kind == "log":
                self.appendLog(event.message)
            elif event.kind == "finished":
                self.onTrainingFinished(job, event)

    def onTrainingFinished(self, job, event) -> None:
        self._trainingTimer.stop()
        if job.plan_only and event.state == "succeeded":
            self.ui.trainingPlanLabel.text = plan_text(job.log)
            self.ui.trainingStatusLabel.text = ""
        else:
            self.ui.trainingStatusLabel.text = event.message
        if event.state == "succeeded" and not job.plan_only:
            self.ui.trainingProgressBar.setValue(100)
        if event.state == "failed":
            slicer.util.errorDisplay(event.message, windowTitle=_("UNet++ training"))
        self.updateTrainingButtons()

    def onModelInstalled(self, manifest) -> None:
        """The new model is installed: list it and select it, so 'Segment' uses it next."""
        self.appendLog(_("Installed model: ") + f"{manifest.name} ({manifest.path})")
        self.refreshModels()
        self.prepareModelsInBackground([manifest])  # its graphs, before its first Segment
        if self._parameterNode is not None:
            self._parameterNode.task = manifest.name
