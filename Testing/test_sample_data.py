"""The module's sample data (``widget/sample_data.py``): what it registers in Slicer's Sample
Data module, the icon it points at, and checksums that match the public files.

3D Slicer cannot run here, so ``SampleData`` and ``slicer.i18n`` are stand-ins that record the
call; the parameter names are checked against Slicer's own signature (below).
"""

from __future__ import annotations

import hashlib
import re
import sys
import types
from pathlib import Path

import pytest
from UNetPlusPlusLib.widget import sample_data

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "UNetPlusPlus"

# SampleDataLogic.registerCustomSampleDataSource's parameters, read in Slicer's source
# (Modules/Scripted/SampleData/SampleData.py, Slicer/Slicer 583e9b3, August 2026).
SLICER_SOURCE_PARAMETERS = {
    "category", "sampleName", "uris", "fileNames", "nodeNames", "customDownloader",
    "thumbnailFileName", "loadFileTypes", "loadFiles", "loadFileProperties", "checksums",
    "loadFileType",
}  # fmt: skip
SHARED_FILES = {
    "Brats18_2013_11_1_": "brain-tumor/brats2018/Brats18_2013_11_1",
    "LIDC-IDRI-0141_R_1": "lung-nodule/lidc-vois/image",
}


@pytest.fixture
def registered(monkeypatch) -> tuple[list, list]:
    """registerSampleData() run against stand-ins: (categories, sources) it registered."""
    categories: list = []
    sources: list = []
    logic = types.SimpleNamespace(
        registerCustomSampleDataCategory=lambda category, title: categories.append(
            (category, title)
        ),
        registerCustomSampleDataSource=lambda **kwargs: sources.append(kwargs),
    )
    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    monkeypatch.setitem(sys.modules, "SampleData", types.SimpleNamespace(SampleDataLogic=logic))
    monkeypatch.setitem(sys.modules, "slicer.i18n", i18n)
    sample_data.registerSampleData()
    return categories, sources


def test_one_source_per_task_with_matching_lists(registered):
    categories, sources = registered
    assert categories == [("UNet++", "UNet++")]
    assert [s["sampleName"] for s in sources] == [
        "UNetPlusPlusLiverCT", "UNetPlusPlusBrainTumorMR", "UNetPlusPlusLungNoduleCT"
    ]  # fmt: skip
    for source in sources:
        assert set(source) <= SLICER_SOURCE_PARAMETERS
        assert source["category"] == "UNet++"
        assert source["thumbnailFileName"] == sample_data.ICON_PATH
        files = source["fileNames"]
        assert len(files) == len(source["uris"]) == len(source["nodeNames"])
        assert len(files) == len(source["checksums"])
        assert source["uris"] == [sample_data.SAMPLE_DATA_URL + name for name in files]
        assert all(re.fullmatch(r"SHA256:[0-9a-f]{64}", c) for c in source["checksums"])
    assert len(sources[1]["fileNames"]) == 4  # the four BraTS sequences


def test_the_icon_is_the_module_icon_that_ships_with_it():
    icon = Path(sample_data.ICON_PATH)
    assert icon == MODULE_DIR / "Resources" / "Icons" / "UNetPlusPlus.png"
    assert icon.is_file()
    cmake = (MODULE_DIR / "CMakeLists.txt").read_text(encoding="utf-8")
    assert "Resources/Icons/${MODULE_NAME}.png" in cmake


def test_checksums_are_those_of_the_public_files(shared_data):
    checked = 0
    for _sample, files in sample_data.SAMPLE_DATA:
        for file_name, _node, digest in files:
            folder = next((f for p, f in SHARED_FILES.items() if file_name.startswith(p)), None)
            path = REPO / "Resources" / "Examples" / file_name
            if folder is not None:
                path = shared_data / folder / file_name
            if path.is_file():
                assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, path
                checked += 1
    assert checked >= 1  # the example CT is in the repository
