#!/usr/bin/env python3
"""CPU seconds of one tiny training step at batch 1 and batch 2, with and without the oneDNN
path of batch-1 convolutions (``engine/cpu_train_conv.py``; "plain" runs ``plain_modules()``,
i.e. ``nn.Conv3d``, whose backend heuristic takes im2col for N = 1).

The sphere test model's network (features 4 8 16 32 64 4, instance norm), a 32^3 tile, as
``unetpp train`` runs it (training/steps.training_step), one thread, passive OpenMP waits. Each
configuration runs in a fresh process, interleaved in rounds; per process one warm-up step, then
``--steps`` timed (scripts/_step_harness.py). Prints the median user+system CPU per step and
the load average.

    PYTHONPATH=UNetPlusPlus python scripts/measure_batch1_step.py [--rounds 3] [--steps 3]
"""

from __future__ import annotations

import argparse
import os

from _step_harness import interleaved, median, run_worker

CONFIGS = {"batch 1, oneDNN": (1, False), "batch 1, plain": (1, True), "batch 2": (2, False)}
PASSIVE = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    configs = {
        name: (lambda steps, b=batch, p=plain: run_worker(1, b, steps, PASSIVE, plain=p))
        for name, (batch, plain) in CONFIGS.items()
    }
    for name, found in interleaved(configs, args.rounds, args.steps).items():
        cpu = [row["user"] + row["sys"] for row in found]
        print(
            f"{name:<16} CPU per step: median {median(found, 'user', 'sys'):.3f} s, "
            f"min {min(cpu):.3f}, max {max(cpu):.3f} ({len(found)} steps)"
        )
    print(f"load average after {os.getloadavg()}")


if __name__ == "__main__":
    main()
