"""Peak memory of a validation during training: the one-pass and the per-depth forms, for K
validation cases of the shipped liver model's configuration (features 8..128, 48^3 tiles, 2
classes, 3 mm) on the shared liver cases' grids at 3 mm (synthetic voxels: the memory depends
on the shapes only).

Each (mode, K) runs in a fresh process; the figure is the growth of the peak resident set
(``ru_maxrss``) during ``evaluate_depths`` over the process's size just before it.

    python scripts/measure_validation_memory.py            # every mode and K
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from types import SimpleNamespace

#: (z, y, x) at 3 mm: LiTS 0 and 1, the TotalSegmentator example CT, the DICOM example, s0009.
SHAPES = [(108, 120, 120), (108, 115, 115), (112, 101, 122), (13, 167, 167), (92, 60, 60)]


def _one(mode: str, count: int) -> dict:
    import numpy as np
    import torch
    from UNetPlusPlusLib.engine.network import UNetPlusPlus3D
    from UNetPlusPlusLib.training.validation import evaluate_depths

    torch.manual_seed(0)
    model = UNetPlusPlus3D(1, 2, (8, 16, 32, 64, 128, 8))
    rng = np.random.default_rng(0)
    cases = [
        SimpleNamespace(image=rng.random((1, *s), dtype=np.float32), labels=np.zeros(s, np.uint8))
        for s in SHAPES[:count]
    ]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    results = evaluate_depths(
        model, cases, ["liver"], (48, 48, 48), 0.25, torch.device("cpu"), timed=mode == "each"
    )
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    dice = {k: v["mean_dice"] for k, v in results.items()}
    return {"mode": mode, "cases": count, "peak_growth_mb": round((after - before) / 1024, 1),
            "dice": dice}  # fmt: skip


def main() -> None:
    if len(sys.argv) == 3:
        print(json.dumps(_one(sys.argv[1], int(sys.argv[2]))))
        return
    for mode in ("one-pass", "each"):
        for count in (1, 3, 5):
            out = subprocess.run(
                [sys.executable, __file__, mode, str(count)], capture_output=True, text=True
            )
            print(out.stdout.strip() or out.stderr[-2000:], flush=True)


if __name__ == "__main__":
    main()
