"""The module's sample data in Slicer's Sample Data module: one case per task.

The files are the public cases named in NOTICE; the URLs are the project's GitHub release assets
(placeholder repository until hosting exists, see README.md, "In 3D Slicer"), and the checksums
are those of the files they serve. The module file registers them once Slicer has started; the
self-test registers them again before it downloads the liver case.

Slicer and its SampleData module are imported by :func:`registerSampleData` only, so the table
below can be read (and checked) without Slicer.
"""

import os

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

#: The module's icon, the samples' thumbnail: ``<module folder>/Resources/Icons/UNetPlusPlus.png``.
#: Slicer's build copies the scripts and the resources with their paths relative to the module's
#: source folder (UNetPlusPlus/CMakeLists.txt), so this holds in the source tree and installed.
ICON_PATH = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "Resources",
    "Icons",
    "UNetPlusPlus.png",
)


def registerSampleData() -> None:
    """Register one SampleData entry per task in the "UNet++" category, each file checked by
    SHA256 after download (``SampleDataLogic.registerCustomSampleDataSource``).

    Runs inside Slicer only (imports ``SampleData`` and ``slicer.i18n``). The category's title is
    set where Slicer has ``registerCustomSampleDataCategory`` (recent releases).
    """
    import SampleData
    from slicer.i18n import tr as _

    category = "UNet++"
    logic = SampleData.SampleDataLogic
    if hasattr(logic, "registerCustomSampleDataCategory"):
        logic.registerCustomSampleDataCategory(category, title=_("UNet++"))
    for sampleName, files in SAMPLE_DATA:
        logic.registerCustomSampleDataSource(
            category=category,
            sampleName=sampleName,
            thumbnailFileName=ICON_PATH,
            uris=[SAMPLE_DATA_URL + fileName for fileName, _node, _digest in files],
            fileNames=[fileName for fileName, _node, _digest in files],
            nodeNames=[nodeName for _file, nodeName, _digest in files],
            checksums=[f"SHA256:{digest}" for _file, _node, digest in files],
        )
