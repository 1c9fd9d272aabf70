#!/usr/bin/env python
"""Wall and CPU seconds of each step of a cold `unetpp segment` before the tiles, in-process
and one after the other (no background import): imports, reading, each input check, ``import
torch``, the Predictor (issue 14, what the `load` stage is made of).

    PYTHONPATH=$PWD/UNetPlusPlus python scripts/measure_cold_stages.py brain|liver

``brain``: the BraTS case Brats18_2013_11_1 (4 channels) with the brain-tumour model;
``liver``: the bench's 512x512x300 CT (``bench/benchlib/e2e.py``, ``ct_512``; made by a first
``python -m benchlib.e2e --cases liver_512``) with the liver model.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

START = (time.perf_counter(), time.process_time())
marks: list[tuple[str, float, float]] = []


def mark(name: str) -> None:
    marks.append((name, time.perf_counter(), time.process_time()))


def main(case: str) -> None:
    from UNetPlusPlusLib.engine import runtime_env

    runtime_env.apply()
    import numpy as np
    import SimpleITK  # noqa: F401 - timed

    mark("import numpy, SimpleITK")
    from UNetPlusPlusLib.engine import sanity
    from UNetPlusPlusLib.engine.bias_field import check_bias_field
    from UNetPlusPlusLib.engine.image_read import read_volume
    from UNetPlusPlusLib.engine.manifest import ModelManifest
    from UNetPlusPlusLib.engine.mr_outliers import outlier_warnings

    models = Path(__file__).resolve().parents[1] / "UNetPlusPlus/UNetPlusPlusLib/Resources/Models"
    if case == "brain":
        base = Path(__file__).resolve().parents[2] / "shared/data/brain-tumor/brats2018"
        stem = base / "Brats18_2013_11_1" / "Brats18_2013_11_1"
        paths = [f"{stem}_{s}.nii.gz" for s in ("flair", "t1", "t1ce", "t2")]
        manifest = ModelManifest.load(models / "brain-tumor" / "model.json")
    else:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        paths = [str(cache / "unetpp" / "bench" / "lits0_512x512x300.nii.gz")]
        manifest = ModelManifest.load(models / "liver" / "model.json")
    mark("manifest")
    volume = read_volume(paths, channel_names=[c.name for c in manifest.channels])
    mark("read_volume")
    sanity.check_volume(volume, [c.modality for c in manifest.channels])
    mark("check_volume (header, finite, intensities)")
    sanity.check_orientation(manifest, volume)
    mark("check_orientation (CT front-back)")
    arrays = list(volume.array)
    image_ml = sanity.image_volume_ml(np.shape(arrays[0]), volume.spacing)
    sanity.check_model_samples(manifest, sanity.channel_samples(arrays), True, image_ml)
    mark("check_model_samples (MR)")
    check_bias_field(manifest, arrays, volume.spacing)
    mark("check_bias_field (MR)")
    outlier_warnings(manifest, arrays)
    mark("outlier_warnings (MR)")
    import torch  # noqa: F401 - timed

    mark("import torch")
    from UNetPlusPlusLib.engine.predictor import Predictor

    mark("import the predictor")
    Predictor(manifest, device="cpu", threads=2)
    mark("Predictor()")
    before = START
    for name, wall, cpu in marks:
        print(f"{name:44s} wall {wall - before[0]:6.3f} s  cpu {cpu - before[1]:6.3f} s")
        before = (wall, cpu)
    total_wall, total_cpu = before[0] - START[0], before[1] - START[1]
    load = os.getloadavg()[0]
    print(f"{'total':44s} wall {total_wall:6.3f} s  cpu {total_cpu:6.3f} s  (load {load:.2f})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "brain")
