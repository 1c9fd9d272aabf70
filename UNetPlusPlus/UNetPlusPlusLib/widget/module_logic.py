"""The module's Logic (ScriptedLoadableModuleLogic): the scripting entry point.

Its class name must stay ``UNetPlusPlusLogic``: Slicer derives the module name (and so the
parameter node's singleton tag) from it.
"""

from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic

from UNetPlusPlusLib.widget.parameter_node import UNetPlusPlusParameterNode


class UNetPlusPlusLogic(ScriptedLoadableModuleLogic):
    """Scripting entry point; the work is done by UNetPlusPlusLib.adapter.logic.

    Example (in Slicer's Python console)::

        logic = slicer.util.getModuleLogic("UNetPlusPlus")
        segmentation = logic.segment([volumeNode], "liver", depth="auto")
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self._segmentationLogic = None
        self._trainingLogic = None

    def getParameterNode(self):
        return UNetPlusPlusParameterNode(super().getParameterNode())

    @property
    def segmentationLogic(self):
        if self._segmentationLogic is None:
            from UNetPlusPlusLib.adapter.logic import SegmentationLogic

            self._segmentationLogic = SegmentationLogic()
        return self._segmentationLogic

    def shutdown(self) -> None:
        """Cancel every running job, kill its process tree and remove its working folder (and
        stop the engine's helper processes). For module cleanup, scene close and application
        exit; never blocks, safe to call twice. See SegmentationLogic.shutdown."""
        if self._segmentationLogic is not None:
            self._segmentationLogic.shutdown()
        self.shutdownTraining()

    def warmUpEngine(self) -> bool:
        """Start the persistent engine process ahead of the first run, if the dependencies
        are installed; whether one was started. See SegmentationLogic.warm_up."""
        return self.segmentationLogic.warm_up()

    def prepareModels(self, manifests) -> list:
        """Prepare the models not yet prepared in a low-priority background process, one at a
        time; the names queued. See SegmentationLogic.prepare_models."""
        return self.segmentationLogic.prepare_models(manifests)

    def prepareBuiltInModels(self) -> list:
        """prepareModels of the shipped models, once per session (again after shutdown)."""
        return self.segmentationLogic.prepare_builtins()

    def pollPreparation(self) -> list:
        """The background preparation's output lines since the last call; moves its queue."""
        return self.segmentationLogic.poll_preparation()

    @property
    def preparing(self) -> bool:
        return self.segmentationLogic.preparing

    def deviceList(self):
        """The engine's devices, or None while its process is still answering (asked in the
        background on the first call; torch is not imported here). See
        SegmentationLogic.device_list."""
        return self.segmentationLogic.device_list()

    def deviceError(self):
        """Why only the CPU is listed, or None."""
        return self.segmentationLogic.device_error()

    @property
    def trainingLogic(self):
        """Cases check, plan and background fine-tune (UNetPlusPlusLib.adapter.training_logic)."""
        if self._trainingLogic is None:
            from UNetPlusPlusLib.adapter.training_logic import TrainingLogic

            self._trainingLogic = TrainingLogic()
        return self._trainingLogic

    def shutdownTraining(self) -> None:
        """Kill a running training's process tree and remove its working folder (no install)."""
        if self._trainingLogic is not None:
            self._trainingLogic.shutdown()

    def availableModels(self) -> list:
        return self.segmentationLogic.available_models()

    def segment(self, volumeNodes, model, **kwargs):
        """Blocking run in this process; see SegmentationLogic.segment for the arguments."""
        return self.segmentationLogic.segment(volumeNodes, model, **kwargs)

    def checkInputs(self, volumeNodes, model) -> list:
        """Input sanity checks before a run: warnings, or UNetPlusPlusError. See check_inputs."""
        return self.segmentationLogic.check_inputs(volumeNodes, model)

    def startJob(self, volumeNodes, model, **kwargs):
        """Background run; poll the returned job. See SegmentationLogic.start_job."""
        return self.segmentationLogic.start_job(volumeNodes, model, **kwargs)

    def fitRoiToVolume(self, roiNode, volumeNode) -> None:
        """Make the markups ROI hold the whole volume (see UNetPlusPlusLib.adapter.roi)."""
        from UNetPlusPlusLib.adapter.roi import fit_roi_to_volume

        fit_roi_to_volume(roiNode, volumeNode)

    def exportTrainingCase(self, volumeNodes, segmentationNode, outDir, caseName, channelNames=()):
        return self.segmentationLogic.export_training_case(
            volumeNodes, segmentationNode, outDir, caseName, channelNames
        )

    def startTrainingExport(self, volumeNodes, segmentationNode, outDir, caseName, channelNames=()):
        """The export, its files written in a thread; returns the running job (poll it)."""
        return self.segmentationLogic.start_training_export(
            volumeNodes, segmentationNode, outDir, caseName, channelNames
        )
