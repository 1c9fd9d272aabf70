"""UNet++ segmentation for 3D Slicer: the scripted module.

This file keeps what Slicer looks up by name: the module class and thin shells
(``UNetPlusPlusWidget``, ``UNetPlusPlusLogic``, ``UNetPlusPlusTest``). The panel, the parameter
node, the Logic, the self-test and the sample data live in ``UNetPlusPlusLib.widget``; MRML <->
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
from UNetPlusPlusLib.widget.sample_data import registerSampleData
from UNetPlusPlusLib.widget.selftest import UNetPlusPlusTest

__all__ = ["UNetPlusPlus", "UNetPlusPlusLogic", "UNetPlusPlusTest", "UNetPlusPlusWidget"]

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
