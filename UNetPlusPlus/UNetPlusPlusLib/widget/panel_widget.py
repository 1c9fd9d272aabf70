"""The module panel: set-up and lifecycle, the parameter node, the task and device selectors, the
model-dependent parts of the panel and the input selectors."""

import logging
from typing import Callable, Optional

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode
from slicer.i18n import tr as _
from slicer.util import VTKObservationMixin

from UNetPlusPlusLib.adapter import install, panel
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.widget.click_guard import act_once_on_double_click
from UNetPlusPlusLib.widget.input_watch import InputWatch
from UNetPlusPlusLib.widget.parameter_node import MAX_CHANNELS, UNetPlusPlusParameterNode
from UNetPlusPlusLib.widget.point_queue import PointQueue
from UNetPlusPlusLib.widget.prepare_control import PrepareControl
from UNetPlusPlusLib.widget.run_control import RunControl
from UNetPlusPlusLib.widget.training_control import TrainingControl

POLL_INTERVAL_MS = 100


class UNetPlusPlusPanel(
    RunControl, TrainingControl, PrepareControl, InputWatch, VTKObservationMixin
):
    """The module panel: owns the widgets loaded from the ``.ui`` and the parameter node.

    The module's ScriptedLoadableModuleWidget shell (UNetPlusPlus.py) creates it in ``setup()``
    and forwards ``cleanup``, ``enter`` and ``exit``. Running and nodule points are in
    :class:`~UNetPlusPlusLib.widget.run_control.RunControl`, the exports (in the background)
    in :class:`~UNetPlusPlusLib.widget.export_control.ExportControl`; the "Train / fine-tune"
    section in :class:`~UNetPlusPlusLib.widget.training_control.TrainingControl`; the input
    volume's grid is watched by :class:`~UNetPlusPlusLib.widget.input_watch.InputWatch`; the
    runs a chosen output segmentation records are shown by RunControl's
    :class:`~UNetPlusPlusLib.widget.recorded_runs.RecordedRuns`; models prepared in the
    background by :class:`~UNetPlusPlusLib.widget.prepare_control.PrepareControl`.
    """

    def __init__(self, logic, uiPath: str, isEntered: Callable[[], bool]) -> None:
        """``logic``: the module's UNetPlusPlusLogic; ``uiPath``: the ``.ui`` file;
        ``isEntered``: whether the module is the one shown (Slicer's ``parent.isEntered``)."""
        VTKObservationMixin.__init__(self)
        self.logic = logic
        self._uiPath = uiPath
        self._isEntered = isEntered
        self.uiWidget = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._models = []  # manifests, in task-selector order
        self._job = None
        self._points = PointQueue()  # placed points waiting for their nodule run
        self._currentPoint = None  # the queued point whose run is going (point_queue.PointRun)
        self._seenPointIds = set()
        self._observedSeeds = None
        self._fittedRoi = None  # the warning of an ROI fitted to the volume by the last start
        self._lastResult = None  # (RunContext, status text) of the last result (run_control.py)
        self._outputCheckedFor = None  # (task, volume ID) the output node was last checked for
        self._updating = False
        self._dependenciesReady = False

    # ------------------------------------------------------------------ set-up
    def setup(self) -> None:
        """Load the ``.ui`` (into ``self.uiWidget``), connect it and fill the selectors."""
        uiWidget = slicer.util.loadUI(self._uiPath)
        self.uiWidget = uiWidget
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self._inputLabels = [getattr(self.ui, f"inputVolumeLabel{i}") for i in range(MAX_CHANNELS)]
        self._inputSelectors = [
            getattr(self.ui, f"inputVolumeSelector{i}") for i in range(MAX_CHANNELS)
        ]
        self.ui.nodulePlaceWidget.placeMultipleMarkups = (
            slicer.qSlicerMarkupsPlaceWidget.ForcePlaceMultipleMarkups
        )
        self.guardToggles()
        self.ui.progressBar.setValue(0)

        self._timer = qt.QTimer()
        self._timer.setInterval(POLL_INTERVAL_MS)
        self._timer.connect("timeout()", self.onPollJob)
        self._deviceTimer = qt.QTimer()
        self._deviceTimer.setInterval(POLL_INTERVAL_MS)
        self._deviceTimer.connect("timeout()", self.onPollDevices)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.NodeAddedEvent, self.onNodeAdded)
        slicer.app.connect("aboutToQuit()", self.onAboutToQuit)

        self.ui.taskSelector.connect("currentIndexChanged(int)", self.onTaskSelected)
        self.ui.deviceSelector.connect("currentIndexChanged(int)", self.onDeviceSelected)
        self.ui.noduleSeedSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onSeedsSelected)
        self.ui.segmentButton.connect("clicked(bool)", self.onSegmentButton)
        self.ui.fitRoiButton.connect("clicked(bool)", self.onFitRoiButton)
        self.ui.exportButton.connect("clicked(bool)", self.onExportButton)
        self.setupExport()
        self.setupTraining()
        self.setupPreparation()

        self._dependenciesReady = install.dependencies_ready()
        self.refreshDevices()
        self.refreshModels()
        self.initializeParameterNode()

    def guardToggles(self) -> None:
        """A double-click on a toggle of the prompt sections (the "Place" buttons of the nodule
        points and the ROI, "Segment each new point automatically") toggles it once, not on
        and off again (click_guard.act_once_on_double_click)."""
        toggles = [
            self.ui.nodulePlaceWidget.placeButton(),
            self.ui.roiPlaceWidget.placeButton(),
            self.ui.interactiveCheckBox,
        ]
        self._toggleFilters = [act_once_on_double_click(toggle) for toggle in toggles]

    def cancelJob(self) -> None:
        """Cancel the running job, if any."""
        if self._job is not None and not self._job.finished:
            self._job.cancel()

    def cleanup(self) -> None:
        self.cancelJob()
        self.shutdownLogic()
        self._timer.stop()
        self._deviceTimer.stop()
        self.stopExportPolling()  # an export's thread finishes its files (no MRML)
        self.stopPreparationTimer()
        self.watchInputVolume(None)
        self.removeObservers()
        slicer.app.disconnect("aboutToQuit()", self.onAboutToQuit)

    def shutdownLogic(self) -> None:
        """Stop running jobs and remove their working folders (patient images): called on module
        cleanup, scene close and application exit. Never blocks."""
        shutdown = getattr(self.logic, "shutdown", None)  # UNetPlusPlusLogic.shutdown (issue 10)
        if shutdown is not None:
            shutdown()
        self.stopTraining()  # the training process tree too (issue 12): nothing installed

    def onAboutToQuit(self) -> None:
        self._points.clear()
        self.cancelJob()
        self.shutdownLogic()
        self.finishExportBeforeQuit()  # the case's files written whole (seconds)

    def enter(self) -> None:
        self.initializeParameterNode()
        self.warmUpEngine()
        self.prepareModelsInBackground()  # the shipped models, once (prepare_control.py)

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(
                self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified
            )

    def onSceneStartClose(self, caller, event) -> None:
        self.cancelJob()
        self.shutdownLogic()
        self._points.clear()
        self.observeSeeds(None)
        self.watchInputVolume(None)
        self._outputCheckedFor = None  # node IDs repeat in the next scene: check it afresh
        self._lastResult = None  # nor is the last result's status that of the next scene
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self._isEntered():
            self.initializeParameterNode()
            self.prepareModelsInBackground()  # again, if the scene close killed it

    # ------------------------------------------------------------------ parameter node
    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        self.selectInstalledTask()
        self.autoFillInputs()

    def selectInstalledTask(self) -> None:
        """Keep the saved task if its model is installed, else take the first model."""
        names = [m.name for m in self._models]
        if self._parameterNode is not None and names and self._parameterNode.task not in names:
            self._parameterNode.task = names[0]

    def setParameterNode(self, inputParameterNode: Optional[UNetPlusPlusParameterNode]) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(
                self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified
            )
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # Widgets with a "SlicerParameterName" property in the .ui are bound here.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(
                self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified
            )
            self.onParameterNodeModified()

    def onParameterNodeModified(self, caller=None, event=None) -> None:
        """Synchronise the unbound selectors (task, device) and the model-dependent parts."""
        if self._parameterNode is None or self._updating:
            return
        self._updating = True
        try:
            self._selectByData(self.ui.taskSelector, self._parameterNode.task)
            self._selectByData(self.ui.deviceSelector, self._parameterNode.device)
            self.updateModelDependentGui()
            self.releaseOtherVolumesOutput()  # a new volume: not another patient's output
            self.showRecordedRuns()  # a segmentation chosen: its runs' warnings (run_tags.py)
            # the same volume cropped in place later: checked when it happens
            self.watchInputVolume(next(iter(self.inputVolumes(self.currentModel())), None))
            self.observeSeeds(self._parameterNode.noduleSeeds)
            self.ui.roiPlaceWidget.setCurrentNode(self._parameterNode.roi)
            self.updateButtons()
            self.refreshCases()
        finally:
            self._updating = False

    @staticmethod
    def _selectByData(combo, data) -> None:
        index = combo.findData(data)
        if index >= 0 and combo.currentIndex != index:
            wasBlocked = combo.blockSignals(True)
            combo.currentIndex = index
            combo.blockSignals(wasBlocked)

    # ------------------------------------------------------------------ models and devices
    def refreshModels(self) -> None:
        """Fill the task selector from the installed model manifests (a fine-tuned model comes
        right after the one it came from)."""
        combo = self.ui.taskSelector
        wasBlocked = combo.blockSignals(True)
        combo.clear()
        self._models = []
        failed = None  # why the models could not be listed (a UNETPP_MODELS entry: no folder)
        if self._dependenciesReady:
            try:
                self._models = self.logic.availableModels()
            except UNetPlusPlusError as error:
                failed = str(error)
                self.appendLog(f"error: {error}")
        for manifest in self._models:
            combo.addItem(f"{panel.task_title(manifest)} - {manifest.name}", manifest.name)
        if not self._models:
            if failed:  # not "No model installed": the shipped models are there
                text = _("Models could not be listed (see the status below)")
            elif self._dependenciesReady:
                text = _("No model installed (see Troubleshooting)")
            else:
                text = _("Click 'Install dependencies' to list the models")
            combo.addItem(text, "")
        combo.blockSignals(wasBlocked)
        if failed:
            self.ui.statusLabel.text = failed
        if self._parameterNode is not None:
            self.selectInstalledTask()
            self.onParameterNodeModified()

    def refreshDevices(self) -> None:
        """auto, CPU and every GPU the engine lists. The engine's own process is asked, in the
        background (torch is never imported into Slicer); the selector is refilled when it
        answers."""
        devices = None
        if self._dependenciesReady:
            devices = self.logic.deviceList()
            if devices is None and not self._deviceTimer.isActive():
                self._deviceTimer.start()
        combo = self.ui.deviceSelector
        wasBlocked = combo.blockSignals(True)
        combo.clear()
        for text, device in panel.device_choices(devices):
            combo.addItem(_("auto (GPU if available)") if device == "auto" else text, device)
        if self._parameterNode is not None:
            self._selectByData(combo, self._parameterNode.device)
        combo.blockSignals(wasBlocked)

    def onPollDevices(self) -> None:
        if self.logic.deviceList() is None:
            return
        self._deviceTimer.stop()
        if self.logic.deviceError():
            self.appendLog(f"warning: {self.logic.deviceError()}")
        self.refreshDevices()

    def currentModel(self):
        if self._parameterNode is None:
            return None
        for manifest in self._models:
            if manifest.name == self._parameterNode.task:
                return manifest
        return None

    def onTaskSelected(self, index: int) -> None:
        if self._parameterNode is not None and not self._updating:
            self._parameterNode.task = self.ui.taskSelector.itemData(index) or ""
            self.autoFillInputs(taskChanged=True)

    def onDeviceSelected(self, index: int) -> None:
        if self._parameterNode is not None and not self._updating:
            self._parameterNode.device = self.ui.deviceSelector.itemData(index) or "auto"

    def updateModelDependentGui(self) -> None:
        """Channel selectors, depth item texts, nodule section and description for the model."""
        manifest = self.currentModel()
        channels = [c.name for c in manifest.channels] if manifest else ["Volume"]
        if len(channels) > MAX_CHANNELS:
            self.appendLog(f"error: the model needs {len(channels)} inputs; the panel has four.")
        for i, (label, selector) in enumerate(zip(self._inputLabels, self._inputSelectors)):
            visible = i < len(channels)
            label.setVisible(visible)
            selector.setVisible(visible)
            if visible:
                label.text = f"{channels[i]}:" if len(channels) > 1 else _("Input volume:")
        self.ui.modelDescriptionLabel.text = panel.model_summary(manifest) if manifest else ""
        prompted = manifest is not None and panel.is_prompted(manifest)
        self.ui.noduleCollapsibleButton.setVisible(prompted)
        self.updateDepthItems(manifest)

    def updateDepthItems(self, manifest) -> None:
        """Label each depth with its validation Dice and time; disable depths the model lacks."""
        combo = self.ui.depthSelector
        model = combo.model()
        for index, choice in enumerate(panel.DEPTH_CHOICES):
            if index >= combo.count:
                break
            if manifest is None:
                combo.setItemText(index, choice if not choice.isdigit() else f"L{choice}")
                continue
            combo.setItemText(index, panel.depth_item_text(manifest, choice))
            combo.setItemData(index, panel.depth_tooltip(manifest, choice), qt.Qt.ToolTipRole)
            item = model.item(index) if hasattr(model, "item") else None
            if item is not None:
                item.setEnabled(panel.depth_available(manifest, choice))
        if manifest is not None and not panel.depth_available(manifest, self._parameterNode.depth):
            self._parameterNode.depth = "auto"

    def autoFillInputs(self, taskChanged: bool = False) -> None:
        """Fill empty channel selectors from volume names (flair, t1, t1ce, t2, ...). After
        the user chose another task (``taskChanged``), a selector also takes the volume whose
        name designates its channel when its volume's name does not (the CT chosen for the
        liver is not left as "FLAIR" of the brain tumour model beside a volume named flair)."""
        if self._parameterNode is None:
            return
        manifest = self.currentModel()
        volumes = slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")
        volumes = [v for v in volumes if not v.IsA("vtkMRMLLabelMapVolumeNode")]
        if not volumes:
            return
        channels = [c.name for c in manifest.channels] if manifest else ["Volume"]
        matches = panel.match_channels(channels, [v.GetName() for v in volumes])
        for i in range(min(len(channels), MAX_CHANNELS)):
            field = f"inputVolume{i}"
            chosen = getattr(self._parameterNode, field)
            stale = (
                taskChanged
                and chosen is not None
                and matches[i] is not None
                and panel.channel_of_volume(chosen.GetName(), channels) != i
            )
            if chosen is not None and not stale:
                continue
            if matches[i] is not None:
                setattr(self._parameterNode, field, volumes[matches[i]])
            elif len(channels) == 1:
                setattr(self._parameterNode, field, volumes[-1])

    @vtk.calldata_type(vtk.VTK_OBJECT)
    def onNodeAdded(self, caller, event, node) -> None:
        if isinstance(node, vtkMRMLScalarVolumeNode):
            # The volume's name is set just after it is added: look once the event is done.
            qt.QTimer.singleShot(0, self.autoFillInputs)

    def inputProblem(self, manifest) -> Optional[str]:
        """Why Segment cannot run with the chosen inputs (naming the channels), or None."""
        if manifest is None:
            return _("Choose a task first.")
        channels = [c.name for c in manifest.channels]
        if len(channels) > MAX_CHANNELS:
            return _("The model needs {count} inputs; the panel has four.").format(
                count=len(channels)
            )
        return panel.channel_input_problem(channels, self.inputVolumes(manifest))

    # ------------------------------------------------------------------ ROI
    def onFitRoiButton(self) -> None:
        self.runGuarded(self.fitRoiToVolume, _("Fitting the ROI failed."))

    def fitRoiToVolume(self) -> None:
        """Set the ROI (a new one if none is selected) to the first input volume's box."""
        volume = next((v for v in self.inputVolumes(self.currentModel()) if v is not None), None)
        if volume is None:
            raise UNetPlusPlusError(_("Choose the input volume first; the ROI is fitted to it."))
        roi = self._parameterNode.roi
        if roi is None:
            roi = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsROINode", _("UNet++ ROI"))
            roi.CreateDefaultDisplayNodes()
            self._parameterNode.roi = roi
        self.logic.fitRoiToVolume(roi, volume)

    def inputVolumes(self, manifest) -> list:
        if manifest is None:
            return [self._parameterNode.inputVolume0]
        return [
            getattr(self._parameterNode, f"inputVolume{i}")
            for i in range(min(len(manifest.channels), MAX_CHANNELS))
        ]

    def appendLog(self, text: str) -> None:
        logging.info(text)
        if hasattr(self, "ui"):
            self.ui.logTextEdit.appendPlainText(text)
