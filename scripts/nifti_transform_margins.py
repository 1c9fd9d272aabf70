"""How far apart the sform and qform of every NIfTI file under a folder place the image
(engine/nifti_transforms.py): the false alarms of the disagreement warning (must be none on
real data) and the margin to its thresholds.

    PYTHONPATH=$PWD/UNetPlusPlus python scripts/nifti_transform_margins.py ../shared/data
"""

from __future__ import annotations

import argparse
import gzip
from collections import Counter
from pathlib import Path

from UNetPlusPlusLib.engine.nifti_transforms import (
    disagreement,
    header_transforms,
    transform_warning,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    files = sorted(p for p in args.folder.rglob("*") if p.name.endswith((".nii", ".nii.gz")))
    codes: Counter = Counter()
    corner, angle, both = 0.0, 0.0, 0
    warned = []
    for path in files:
        opener = gzip.open if path.name.endswith(".gz") else open
        try:
            with opener(path, "rb") as stream:
                header = stream.read(348)
        except OSError as error:
            print(f"unreadable {path}: {error}")
            continue
        transforms = header_transforms(header)
        if transforms is None:
            codes["not NIfTI-1"] += 1
            continue
        codes[(transforms.qform_code, transforms.sform_code)] += 1
        if transforms.qform_code > 0 and transforms.sform_code > 0:
            found = disagreement(transforms)
            corner, angle, both = max(corner, found.corner_mm), max(angle, found.degrees), both + 1
        if transform_warning(header, str(path)):
            warned.append(str(path))
    print(f"{len(files)} NIfTI files; (qform_code, sform_code): {dict(codes)}")
    print(
        f"both transforms set in {both}: largest corner distance {corner:.2e} mm, largest "
        f"angle {angle:.2e} degrees"
    )
    print(f"warned: {len(warned)}")
    for name in warned:
        print("  " + name)


if __name__ == "__main__":
    main()
