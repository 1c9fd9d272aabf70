"""UNet++ segmentation for 3D Slicer: the scripted module (Module, parameter node, Widget, Logic,
Test).

The Widget is thin: it binds the .ui to a parameter node, installs dependencies at first use,
starts and cancels background jobs and shows their progress. The work happens in
``UNetPlusPlusLib.adapter`` (MRML <-> engine, no Qt) and the engine (``UNetPlusPlusLib.engine``),
which runs in a child process (PythonSlicer) so that Slicer never freezes.

At file scope this imports only Slicer, Qt, ctk, vtk and ``UNetPlusPlusLib`` modules that import
nothing heavy; torch and the engine are imported when first needed.
"""

import logging
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Annotated, Optional

import qt
import slicer
import vtk
from slicer import (
    vtkMRMLMarkupsFiducialNode,
    vtkMRMLMarkupsROINode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
)
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin
from UNetPlusPlusLib.adapter import install, panel
from UNetPlusPlusLib.errors import UNetPlusPlusError

#: How many input-volume selectors the panel has (the brain tumour model needs four).
MAX_CHANNELS = 4
POLL_INTERVAL_MS = 100

# Sample data: one case per task. The files are the public cases named in NOTICE; the URLs are
# the project's GitHub release assets (placeholder repository until hosting exists, see
# README.md, "In 3D Slicer"), and the checksums are those of the files they serve.
SAMPLE_DATA_URL = (
    "https://github.com/unetplusplus-slicer/SlicerUNetPlusPlus/releases/download/sample-data/"
)
SAMPLE_DATA = (
    # (sample name, [(file name, node name, SHA256), ...])
    (
        "UNetPlusPlusLiverCT",
        [
            (
                "example_ct.nii.gz",
                "LiverCT",
                "dbd3ae6d614d1d7ef3a46925c30c70038ed52da6b37fdd6afdc7b9b71387e3e1",
            ),
        ],
    ),
    (
        "UNetPlusPlusBrainTumorMR",
        [
            (
                f"Brats18_2013_11_1_{sequence}.nii.gz",
                f"Brats18_2013_11_1_{sequence}",
                digest,
            )
            for sequence, digest in (
                ("flair", "c26b62ff38b5b351d702dbfcd2265a8a0651729b38c9cfdddcfb057117a47c28"),
                ("t1", "6d9eb122c6dc83c7b970441e78adc4bcadcca33afdf157163b0d96ed2452c676"),
                ("t1ce", "a6e6f7762aa1f07e5534528c949e716ffe1690fdef680e4402cf93ef91f6d48b"),
                ("t2", "64c8320ed9fd2c38d0a65ced45c71cec8cb2cf327658bb96c099d5d64964dd30"),
            )
        ],
    ),
    (
        "UNetPlusPlusLungNoduleCT",
        [
            (
                "LIDC-IDRI-0141_R_1.nii.gz",
                "LIDC-IDRI-0141_R_1",
                "8a4b886e1865f0aaf81f754fc9caf5e7d66f0dd4a89269d6107288de85dfa445",
            ),
        ],
    ),
)


#
# UNetPlusPlus
#


class UNetPlusPlus(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("UNet++")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["UNet++ for 3D Slicer contributors"]
        self.parent.helpText = _("""
Segment the liver (CT), brain tumours (multi-sequence MR) and lung nodules (CT, one click per
nodule) with 3D UNet++ models. Choose the task, the input volume(s) and the depth, then click
<b>Segment</b>: shallower depths (L1, L2) are faster, L4 and the ensemble are more accurate.
The result is a segmentation with standard terminology that you can correct in Segment Editor
and export as a new training case.
See the <a href="https://github.com/unetplusplus-slicer/SlicerUNetPlusPlus#readme">documentation</a>.
<br><br>If you use it, please cite:<br>
Z. Zhou, M. M. Rahman Siddiquee, N. Tajbakhsh, J. Liang. UNet++: Redesigning Skip Connections
to Exploit Multiscale Features in Image Segmentation. IEEE Transactions on Medical Imaging
39(6):1856-1867, 2020 (arXiv:1912.05074).<br>
Z. Zhou, M. M. Rahman Siddiquee, N. Tajbakhsh, J. Liang. UNet++: A Nested U-Net Architecture for
Medical Image Segmentation. DLMIA 2018, LNCS 11045:3-11 (arXiv:1807.10165).
""")
        self.parent.acknowledgementText = _("""
UNet++ was designed by Zongwei Zhou, Md Mahfuzur Rahman Siddiquee, Nima Tajbakhsh and Jianming
Liang. Sample data: TotalSegmentator examples (Wasserthal et al., Radiology: AI 2023), BraTS 2018
(Menze et al., IEEE TMI 2015; Bakas et al., Sci. Data 2017) and LIDC-IDRI (Armato et al., Med.
Phys. 2011, CC BY 3.0). The module follows the 3D Slicer scripted module template; the background
process design follows the established Slicer AI extensions.
""")
        slicer.app.connect("startupCompleted()", registerSampleData)


#
# Sample data
#


def registerSampleData():
    """One SampleData entry per task, checked by SHA256 after download."""
    import SampleData

    iconPath = os.path.join(os.path.dirname(__file__), "Resources", "Icons", "UNetPlusPlus.png")
    category = "UNet++"
    if hasattr(SampleData.SampleDataLogic, "registerCustomSampleDataCategory"):
        SampleData.SampleDataLogic.registerCustomSampleDataCategory(category, title=_("UNet++"))
    for sampleName, files in SAMPLE_DATA:
        SampleData.SampleDataLogic.registerCustomSampleDataSource(
            category=category,
            sampleName=sampleName,
            thumbnailFileName=iconPath,
            uris=[SAMPLE_DATA_URL + fileName for fileName, _node, _digest in files],
            fileNames=[fileName for fileName, _node, _digest in files],
            nodeNames=[nodeName for _file, nodeName, _digest in files],
            checksums=[f"SHA256:{digest}" for _file, _node, digest in files],
        )


#
# UNetPlusPlusParameterNode
#


@parameterNodeWrapper
class UNetPlusPlusParameterNode:
    """The panel's state, saved with the scene.

    task - name of the model package (``model.json`` "name"); the task selector is filled from
        the installed manifests, so it is synchronised by the Widget rather than bound.
    depth - "auto", "1".."4" or "ensemble".
    device - "auto", "cpu" or "cuda:N" (synchronised by the Widget: the GPUs vary by machine).
    inputVolume0..3 - one volume per model channel, in the manifest's channel order.
    roi - optional box that restricts inference.
    noduleSeeds - point list for prompted (lung nodule) models; each point is one nodule.
    interactive - segment each newly placed point at once.
    outputSegmentation - where results go; None creates a new segmentation.
    replaceExisting - replace segments of the same name in outputSegmentation (else a new node).
    exportDirectory, caseName - where "Export training case" writes.
    """

    task: str = ""
    depth: Annotated[str, Choice(list(panel.DEPTH_CHOICES))] = "auto"
    device: str = "auto"
    inputVolume0: vtkMRMLScalarVolumeNode
    inputVolume1: vtkMRMLScalarVolumeNode
    inputVolume2: vtkMRMLScalarVolumeNode
    inputVolume3: vtkMRMLScalarVolumeNode
    roi: vtkMRMLMarkupsROINode
    noduleSeeds: vtkMRMLMarkupsFiducialNode
    interactive: bool = True
    outputSegmentation: vtkMRMLSegmentationNode
    replaceExisting: bool = False
    exportDirectory: Path = Path.home() / "UNetPlusPlus-training"
    caseName: str = "case001"


#
# UNetPlusPlusWidget
#


class UNetPlusPlusWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._models = []  # manifests, in task-selector order
        self._job = None
        self._pendingPoints = []  # RAS points waiting for a nodule run
        self._seenPointIds = set()
        self._observedSeeds = None
        self._updating = False
        self._dependenciesReady = False

    # ------------------------------------------------------------------ set-up
    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/UNetPlusPlus.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = UNetPlusPlusLogic()

        self._inputLabels = [getattr(self.ui, f"inputVolumeLabel{i}") for i in range(MAX_CHANNELS)]
        self._inputSelectors = [
            getattr(self.ui, f"inputVolumeSelector{i}") for i in range(MAX_CHANNELS)
        ]
        self.ui.nodulePlaceWidget.placeMultipleMarkups = (
            slicer.qSlicerMarkupsPlaceWidget.ForcePlaceMultipleMarkups
        )
        self.ui.progressBar.setValue(0)

        self._timer = qt.QTimer()
        self._timer.setInterval(POLL_INTERVAL_MS)
        self._timer.connect("timeout()", self.onPollJob)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.NodeAddedEvent, self.onNodeAdded)

        self.ui.taskSelector.connect("currentIndexChanged(int)", self.onTaskSelected)
        self.ui.deviceSelector.connect("currentIndexChanged(int)", self.onDeviceSelected)
        self.ui.noduleSeedSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onSeedsSelected)
        self.ui.segmentButton.connect("clicked(bool)", self.onSegmentButton)
        self.ui.exportButton.connect("clicked(bool)", self.onExportButton)

        self._dependenciesReady = install.dependencies_ready()
        self.refreshDevices()
        self.refreshModels()
        self.initializeParameterNode()

    def cleanup(self) -> None:
        if self._job is not None and not self._job.finished:
            self._job.cancel()
        self._timer.stop()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(
                self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified
            )

    def onReload(self) -> None:
        """Reload UNetPlusPlusLib too, so code edits take effect without restarting Slicer."""
        if self._job is not None and not self._job.finished:
            self._job.cancel()
        for name in [n for n in sys.modules if n.startswith("UNetPlusPlusLib")]:
            del sys.modules[name]
        ScriptedLoadableModuleWidget.onReload(self)

    def onSceneStartClose(self, caller, event) -> None:
        if self._job is not None and not self._job.finished:
            self._job.cancel()
        self._pendingPoints = []
        self.observeSeeds(None)
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

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
            self.observeSeeds(self._parameterNode.noduleSeeds)
            self.updateButtons()
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
        """Fill the task selector from the installed model manifests."""
        combo = self.ui.taskSelector
        wasBlocked = combo.blockSignals(True)
        combo.clear()
        self._models = []
        if self._dependenciesReady:
            try:
                self._models = self.logic.availableModels()
            except UNetPlusPlusError as error:
                self.appendLog(f"error: {error}")
        for manifest in self._models:
            combo.addItem(f"{panel.task_title(manifest)} - {manifest.name}", manifest.name)
        if not self._models:
            text = (
                _("No model installed (see Troubleshooting)")
                if self._dependenciesReady
                else _("Click 'Install dependencies' to list the models")
            )
            combo.addItem(text, "")
        combo.blockSignals(wasBlocked)
        if self._parameterNode is not None:
            self.selectInstalledTask()
            self.onParameterNodeModified()

    def refreshDevices(self) -> None:
        """auto, CPU and every CUDA GPU by name (when torch is installed)."""
        combo = self.ui.deviceSelector
        wasBlocked = combo.blockSignals(True)
        combo.clear()
        combo.addItem(_("auto (GPU if available)"), "auto")
        combo.addItem(_("CPU"), "cpu")
        if install.torch_installed():
            try:
                import torch

                for index in range(torch.cuda.device_count()):
                    name = torch.cuda.get_device_name(index)
                    combo.addItem(f"GPU {index}: {name}", f"cuda:{index}")
            except Exception as error:  # a broken CUDA setup must not break the panel
                self.appendLog(f"warning: cannot list CUDA devices ({error})")
        combo.blockSignals(wasBlocked)

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
            self.autoFillInputs()

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

    def autoFillInputs(self) -> None:
        """Fill empty channel selectors from volume names (flair, t1, t1ce, t2, ...)."""
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
            if getattr(self._parameterNode, field) is not None:
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
        missing = self.missingInputs(manifest)
        self.ui.segmentButton.text = _("Segment")
        self.ui.segmentButton.enabled = manifest is not None and not missing
        self.ui.segmentButton.toolTip = (
            _("Select: ") + ", ".join(missing) if missing else _("Run the model.")
        )
        self.ui.exportButton.enabled = self._parameterNode.outputSegmentation is not None

    def missingInputs(self, manifest) -> list:
        if manifest is None:
            return [_("a task")]
        missing = []
        for i, channel in enumerate(manifest.channels[:MAX_CHANNELS]):
            if getattr(self._parameterNode, f"inputVolume{i}") is None:
                missing.append(channel.name)
        return missing

    def inputVolumes(self, manifest) -> list:
        return [
            getattr(self._parameterNode, f"inputVolume{i}")
            for i in range(min(len(manifest.channels), MAX_CHANNELS))
        ]

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
        self.runGuarded(self.startRun, _("Segmentation failed to start."))

    def startRun(self, pointRas=None) -> None:
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
        self._job = self.logic.startJob(
            self.inputVolumes(manifest),
            manifest,
            depth=p.depth,
            device=p.device,
            roi_node=p.roi,
            point_ras=pointRas,
            output_node=p.outputSegmentation,
            replace_existing=p.replaceExisting,
        )
        self.appendLog("$ " + " ".join(self._job.command))
        self.ui.progressBar.setValue(0)
        self.ui.statusLabel.text = _("Starting...")
        self._timer.start()
        self.updateButtons()

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
            self.ui.statusLabel.text = _("Cancelled; the scene was not changed.")
        else:
            self._pendingPoints = []
            self.ui.progressBar.setValue(0)
            self.ui.statusLabel.text = _("Failed; the scene was not changed.")
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
        )

    @staticmethod
    def showResult(node) -> None:
        if node is None:
            return
        node.CreateDefaultDisplayNodes()
        node.GetDisplayNode().SetVisibility(True)
        node.CreateClosedSurfaceRepresentation()

    def appendLog(self, text: str) -> None:
        logging.info(text)
        if hasattr(self, "ui"):
            self.ui.logTextEdit.appendPlainText(text)

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


#
# UNetPlusPlusLogic
#


class UNetPlusPlusLogic(ScriptedLoadableModuleLogic):
    """Scripting entry point; the work is done by UNetPlusPlusLib.adapter.logic.

    Example (in Slicer's Python console)::

        logic = slicer.util.getModuleLogic("UNetPlusPlus")
        segmentation = logic.segment([volumeNode], "liver", depth="auto")
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self._segmentationLogic = None

    def getParameterNode(self):
        return UNetPlusPlusParameterNode(super().getParameterNode())

    @property
    def segmentationLogic(self):
        if self._segmentationLogic is None:
            from UNetPlusPlusLib.adapter.logic import SegmentationLogic

            self._segmentationLogic = SegmentationLogic()
        return self._segmentationLogic

    def availableModels(self) -> list:
        return self.segmentationLogic.available_models()

    def segment(self, volumeNodes, model, **kwargs):
        """Blocking run in this process; see SegmentationLogic.segment for the arguments."""
        return self.segmentationLogic.segment(volumeNodes, model, **kwargs)

    def startJob(self, volumeNodes, model, **kwargs):
        """Background run; poll the returned job. See SegmentationLogic.start_job."""
        return self.segmentationLogic.start_job(volumeNodes, model, **kwargs)

    def exportTrainingCase(self, volumeNodes, segmentationNode, outDir, caseName, channelNames=()):
        return self.segmentationLogic.export_training_case(
            volumeNodes, segmentationNode, outDir, caseName, channelNames
        )


#
# UNetPlusPlusTest
#


class UNetPlusPlusTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer: loads the sample data, segments it (in process and in the background),
    and checks the segments against the model manifest."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_LiverBlocking()
        self.setUp()
        self.test_LiverBackgroundJob()

    def _liverModelAndVolume(self):
        """(logic, liver manifest, sample volume), or None when the test cannot run here."""
        if not install.dependencies_ready():
            self.delayDisplay("Skipped: PyTorch and the engine's packages are not installed.")
            return None
        logic = UNetPlusPlusLogic()
        models = {m.task: m for m in logic.availableModels()}
        if "liver" not in models:
            self.delayDisplay("Skipped: no liver model is installed.")
            return None
        import SampleData

        registerSampleData()
        volume = SampleData.downloadSample("UNetPlusPlusLiverCT")
        self.assertIsNotNone(volume)
        return logic, models["liver"], volume

    def _checkSegments(self, segmentationNode, manifest, volume):
        from UNetPlusPlusLib.adapter.geometry import image_to_world_matrix, world_ijk_to_ras

        segmentation = segmentationNode.GetSegmentation()
        names = [
            segmentation.GetNthSegment(i).GetName()
            for i in range(segmentation.GetNumberOfSegments())
        ]
        self.assertEqual(names, [label.name for label in manifest.labels])
        for label in manifest.labels:
            segmentId = segmentation.GetSegmentIdBySegmentName(label.name)
            segment = segmentation.GetSegment(segmentId)
            if label.terminology:
                terminology = vtk.reference("")
                segment.GetTag(segment.GetTerminologyEntryTagName(), terminology)
                self.assertIn(label.terminology["type"]["code"], str(terminology))
            voxels = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentId, volume)
            self.assertGreater(int(voxels.sum()), 1000, f"segment {label.name} is (nearly) empty")
            labelmap = segment.GetRepresentation(
                slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()
            )
            self.assertTrue(
                (abs(image_to_world_matrix(labelmap) - world_ijk_to_ras(volume)) < 1e-4).all()
            )

    def test_LiverBlocking(self):
        self.delayDisplay("Liver: blocking logic call")
        prepared = self._liverModelAndVolume()
        if prepared is None:
            return
        logic, manifest, volume = prepared
        nodesBefore = slicer.mrmlScene.GetNumberOfNodes()
        segmentationNode = logic.segment([volume], manifest, depth=1, device="auto")
        self.assertGreater(slicer.mrmlScene.GetNumberOfNodes(), nodesBefore)
        self._checkSegments(segmentationNode, manifest, volume)
        self.delayDisplay("Test passed")

    def test_LiverBackgroundJob(self):
        self.delayDisplay("Liver: background job (PythonSlicer child process)")
        prepared = self._liverModelAndVolume()
        if prepared is None:
            return
        logic, manifest, volume = prepared
        job = logic.startJob([volume], manifest, depth=1, device="auto")
        while not job.finished:
            job.poll()
            slicer.app.processEvents()
            time.sleep(0.05)
        self.assertEqual(job.state, "succeeded", job.error)
        self._checkSegments(job.output, manifest, volume)
        self.delayDisplay("Test passed")
