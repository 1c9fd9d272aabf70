"""The module's self-test (Slicer's "Reload and Test"): segments the liver sample in process and
as a background job and checks names, terminology and voxel alignment against the manifest."""

import time

import slicer
import vtk
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest

from UNetPlusPlusLib.adapter import install
from UNetPlusPlusLib.widget.module_logic import UNetPlusPlusLogic
from UNetPlusPlusLib.widget.sample_data import registerSampleData


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
