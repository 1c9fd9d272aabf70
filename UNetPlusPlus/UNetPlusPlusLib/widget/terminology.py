"""Load the extension's terminology contexts into Slicer's Terminologies logic.

Some codes of the shipped models are not in Slicer's default context (the DICOM master list
lacks the NCIt brain lesion types of DICOM CID 7168), so Slicer's terminology selector would show
no match for those segments. The extension ships them in its own context file(s),
``Resources/Terminology/*.term.json``, loaded here when Slicer has started.
"""

import glob
import logging
import os

import slicer


def loadTerminologyContexts(folder: str) -> list:
    """Load every ``*.term.json`` in ``folder``; return the context names loaded.

    Uses ``vtkSlicerTerminologiesModuleLogic::LoadTerminologyFromFile`` (Slicer 5.8 and later:
    it returns the file's ``SegmentationCategoryTypeContextName``, or "" on failure). A missing
    Terminologies module or an unreadable file is logged, never raised: segments still get their
    codes, only the selector cannot show them.
    """
    module = getattr(slicer.modules, "terminologies", None)
    if module is None:
        logging.warning("UNet++: the Terminologies module is not loaded; codes stay unlisted.")
        return []
    logic = module.logic()
    names = []
    for path in sorted(glob.glob(os.path.join(folder, "*.term.json"))):
        name = logic.LoadTerminologyFromFile(path)
        if name:
            names.append(name)
        else:
            logging.warning("UNet++: could not load the terminology context %s", path)
    return names
