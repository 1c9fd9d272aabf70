"""CPU cost of the enhancement asymmetry (engine/contrast_pair.py) within the sequence-order
fingerprint, interleaved, on one shared BraTS case; prints the load average. Usage::

    PYTHONPATH=UNetPlusPlus python bench/contrast_pair_cost.py ../shared/data [ROUNDS]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
from UNetPlusPlusLib.engine import channel_order as co
from UNetPlusPlusLib.engine import contrast_pair as cp
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.sanity import channel_samples


def main(shared: Path, rounds: int = 15) -> None:
    name = "Brats18_TCIA02_606_1"
    folder = shared / "brain-tumor" / "brats2018" / name
    paths = [folder / f"{name}_{s}.nii.gz" for s in ("flair", "t1", "t1ce", "t2")]
    samples = channel_samples(list(read_volume(paths, ["FLAIR", "T1", "T1ce", "T2"]).array))
    step = -(-len(samples[0]) // co.MASK_VOXELS)  # the fingerprint's joint voxels
    parts = np.stack([s[::step] for s in samples])
    joint = parts[:, np.all(parts != 0, axis=0)].astype(np.float64)
    whole, pair = [], []
    for _ in range(rounds):
        start = time.process_time()
        co.fingerprint(samples)
        whole.append(time.process_time() - start)
        start = time.process_time()
        cp.asymmetry_matrix(joint)
        pair.append(time.process_time() - start)
    print(
        f"{name}, {joint.shape[1]} joint voxels, {rounds} rounds, load average "
        f"{os.getloadavg()[0]:.1f}: CPU s median fingerprint (with the asymmetry) "
        f"{np.median(whole):.4f}, the asymmetry matrix alone {np.median(pair):.4f}"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 15)
