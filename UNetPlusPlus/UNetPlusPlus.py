"""UNet++ segmentation for 3D Slicer: the scripted module.

This file keeps what Slicer looks up by name: the module class, the sample-data registration and
thin shells (``UNetPlusPlusWidget``, ``UNetPlusPlusLogic``, ``UNetPlusPlusTest``). The panel,
the parameter node, the Logic and the self-test live in ``UNetPlusPlusLib.widget``; MRML <->
engine conversion in ``UNetPlusPlusLib.adapter`` (no Qt); the engine runs in a child process
(PythonSlicer) so that Slicer never freezes.

At file scope this imports only Slicer, Qt, ctk, vtk and ``UNetPlusPlusLib`` modules that import
nothing heavy; torch and the engine are imported when first needed.
"""

import os
import sys

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleWidget
from UNetPlusPlusLib.widget.module_logic import UNetPlusPlusLogic
from UNetPlusPlusLib.widget.panel_widget import UNetPlusPlusPanel
from UNetPlusPlusLib.widget.selftest import UNetPlusPlusTest

__all__ = ["UNetPlusPlus", "UNetPlusPlusLogic", "UNetPlusPlusTest", "UNetPlusPlusWidget"]

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
        slicer.app.connect("startupCompleted()", loadTerminology)


#
# Terminology
#


def loadTerminology():
    """Load the extension's terminology context (codes Slicer's DICOM master list lacks)."""
    from UNetPlusPlusLib.widget.terminology import loadTerminologyContexts

    loadTerminologyContexts(os.path.join(os.path.dirname(__file__), "Resources", "Terminology"))


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
# UNetPlusPlusWidget
#


class UNetPlusPlusWidget(ScriptedLoadableModuleWidget):
    """Thin shell: the panel is :class:`UNetPlusPlusLib.widget.panel_widget.UNetPlusPlusPanel`."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        self.logic = None
        self.panel = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        self.logic = UNetPlusPlusLogic()
        self.panel = UNetPlusPlusPanel(
            self.logic, self.resourcePath("UI/UNetPlusPlus.ui"), lambda: self.parent.isEntered
        )
        self.panel.setup()
        self.layout.addWidget(self.panel.uiWidget)

    def cleanup(self) -> None:
        if self.panel is not None:
            self.panel.cleanup()

    def enter(self) -> None:
        self.panel.enter()

    def exit(self) -> None:
        self.panel.exit()

    def onReload(self) -> None:
        """Reload UNetPlusPlusLib too, so code edits take effect without restarting Slicer."""
        if self.panel is not None:
            self.panel.cancelJob()
        for name in [n for n in sys.modules if n.startswith("UNetPlusPlusLib")]:
            del sys.modules[name]
        ScriptedLoadableModuleWidget.onReload(self)
