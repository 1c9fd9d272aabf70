#!/usr/bin/env python3
"""CPU seconds of one tiny training step at batch 1 and batch 2, with and without the oneDNN
path of batch-1 convolutions (``engine/cpu_train_conv.py``; "plain" runs ``plain_modules()``,
i.e. ``nn.Conv3d``, whose backend heuristic takes im2col for N = 1).

The sphere test model's network (features 4 8 16 32 64 4, instance norm), a 32^3 tile, as
``unetpp train`` runs it (training/steps.training_step), one thread, passive OpenMP waits. Each
configuration runs in a fresh process, interleaved in rounds; per process one warm-up step, then
``--steps`` timed. Prints the median user+system CPU per step and the load average.

    PYTHONPATH=UNetPlusPlus python scripts/measure_batch1_step.py [--rounds 3] [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {"batch 1, oneDNN": (1, 0), "batch 1, plain": (1, 1), "batch 2": (2, 0)}

WORKER = r"""
import contextlib, json, resource, sys
import torch
from UNetPlusPlusLib.engine.loss import HybridLoss
from UNetPlusPlusLib.engine.network import UNetPlusPlus3D, plain_modules
from UNetPlusPlusLib.training.optimizer import AdamW
from UNetPlusPlusLib.training.steps import DeepSupervision, channels_last, training_step

batch, plain, steps = (int(a) for a in sys.argv[1:4])
torch.set_num_threads(1)
torch.manual_seed(0)
network = UNetPlusPlus3D(1, 2, (4, 8, 16, 32, 64, 4), norm="instance")
channels_last(network)
model = DeepSupervision(network).train()
optimizer = AdamW(network.parameters(), lr=3e-4, weight_decay=3e-5)
loss = HybridLoss()
generator = torch.Generator().manual_seed(1)
images = torch.randn(batch, 1, 32, 32, 32, generator=generator)
images = images.contiguous(memory_format=torch.channels_last_3d)
labels = torch.randint(0, 2, (batch, 32, 32, 32), generator=generator)
parameters = list(network.parameters())
rows = []
for index in range(steps + 1):
    before = resource.getrusage(resource.RUSAGE_SELF)
    with plain_modules() if plain else contextlib.nullcontext():
        training_step(model, parameters, optimizer, loss, images, labels, None)
    after = resource.getrusage(resource.RUSAGE_SELF)
    if index:
        rows.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
print(json.dumps(rows))
"""


def _run(batch: int, plain: int, steps: int) -> list[float]:
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", KMP_BLOCKTIME="0")
    env["PYTHONPATH"] = str(ROOT / "UNetPlusPlus")
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(batch), str(plain), str(steps)],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    print(f"load average before {os.getloadavg()}")
    rows: dict[str, list[float]] = {name: [] for name in CONFIGS}
    for _ in range(args.rounds):
        for name, (batch, plain) in CONFIGS.items():
            rows[name] += _run(batch, plain, args.steps)
    for name, found in rows.items():
        print(
            f"{name:<16} CPU per step: median {statistics.median(found):.3f} s, "
            f"min {min(found):.3f}, max {max(found):.3f} ({len(found)} steps)"
        )
    print(f"load average after {os.getloadavg()}")


if __name__ == "__main__":
    main()
