"""Run the input sanity checks (engine/sanity.py) on every real volume the shipped models take.

No false refusals: the liver CTs, every LIDC crop and DICOM slab, every BraTS case of
``../shared/data`` must pass with no error and no warning. Prints the count and any finding.

    python scripts/check_real_inputs.py ../shared/data
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.manifest import ModelManifest
from UNetPlusPlusLib.engine.sanity import check_volume

MODELS = (
    Path(__file__).resolve().parents[1]
    / "UNetPlusPlus"
    / "UNetPlusPlusLib"
    / "Resources"
    / "Models"
)
BRATS = ("FLAIR", "T1", "T1ce", "T2")


def inputs(data: Path):
    """(task, channel files) of every real input in the shared data."""
    liver = data / "liver"
    examples = liver / "totalsegmentator-examples"
    for path in [
        examples / "example_ct.nii.gz",
        examples / "example_ct_sm.nii.gz",
        examples / "example_ct_dicom",
        liver / "totalsegmentator-dataset-s0009" / "ct.nii.gz",
        *sorted((liver / "lits-partial").glob("*_ct.nii.gz")),
        liver / "dcmqi-liver" / "ct-3slice",
    ]:
        yield "liver", [path]
    nodules = data / "lung-nodule"
    for path in sorted((nodules / "lidc-vois" / "image").glob("*.nii.gz")):
        yield "lung-nodule", [path]
    for path in sorted((nodules / "lidc-dicom-slabs").iterdir()):
        if path.is_dir():
            yield "lung-nodule", [path]
    for case in sorted((data / "brain-tumor" / "brats2018").glob("Brats18_*")):
        yield (
            "brain-tumor",
            [case / f"{case.name}_{s}.nii.gz" for s in ("flair", "t1", "t1ce", "t2")],
        )
    hg = data / "brain-tumor" / "brats2012-HG0001" / "BRATS_HG0001_"
    yield "brain-tumor", [Path(f"{hg}{s}.mha") for s in ("FLAIR", "T1", "T1C", "T2")]


def main(data: Path) -> int:
    modalities = {
        task: [c.modality for c in ModelManifest.load(MODELS / task / "model.json").channels]
        for task in ("liver", "lung-nodule", "brain-tumor")
    }
    checked, findings = 0, []
    for task, paths in inputs(data):
        names = BRATS if task == "brain-tumor" else ("CT",)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # skipped unreadable DICOM slices
                found = check_volume(read_volume(paths, names), modalities[task])
        except Exception as error:  # noqa: BLE001 - report every refusal
            found = [f"refused: {error}"]
        checked += 1
        findings += [f"{paths[0]}: {f}" for f in found]
    print(f"checked {checked} volumes; refusals or warnings: {len(findings)}")
    print("\n".join(findings))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")))
