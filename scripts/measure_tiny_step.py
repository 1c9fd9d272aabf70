#!/usr/bin/env python3
"""Where the time of one tiny training step goes: the sphere test model's network (features
4 8 16 32 64 4, one channel, two classes), a 32^3 tile, batch 2, as ``unetpp train`` runs it
(training/steps.training_step: channels-last, deep supervision, hybrid loss, AdamW, clipping).

Each configuration runs in a fresh process (OpenMP reads its wait policy when torch loads), in
interleaved rounds; per process one warm-up step, then ``--steps`` timed ones. Prints per
configuration the median per step of wall, user and system CPU seconds and minor page faults,
and the load average before and after (the machine is shared: compare CPU, not wall).

    PYTHONPATH=UNetPlusPlus python scripts/measure_tiny_step.py [--rounds 3] [--steps 4]

Configurations: 1 thread / 2 threads with the passive wait policy (the suite's and the
trainer's), 2 threads spinning (libgomp's default policy), and 1 thread with glibc's mmap
threshold raised (``MALLOC_MMAP_THRESHOLD_``: fewer page faults from freed large buffers).

Measured 2026-12-01 on the shared 2-core machine (load average 15.7 before, 11.3 after; 3
rounds x 3 steps), per step: 1 thread passive wall 5.30 s, user 0.605 s, sys 0.034 s, 8000
minor faults; 2 threads passive 4.47 / 0.939 / 0.081 s; 2 threads spinning 41.9 / 8.00 /
0.046 s; 1 thread passive with the mmap threshold 4.45 / 0.584 / 0.002 s, 1036 faults. A step
costs ~0.6 s of CPU; its 5 s of wall are the load. Spinning threads on busy cores cost 13x the
CPU: the passive policy (runtime_env; the suite's conftest) is what keeps it at 0.6 s.
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
PASSIVE = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0", "UNETPP_WAIT_POLICY": "passive"}
CONFIGS = {
    "1 thread, passive": (1, PASSIVE),
    "2 threads, passive": (2, PASSIVE),
    "2 threads, spin": (2, {"GOMP_SPINCOUNT": "300000", "UNETPP_WAIT_POLICY": "spin"}),
    "1 thread, passive, mmap threshold 64 MiB": (
        1,
        {
            **PASSIVE,
            "MALLOC_MMAP_THRESHOLD_": str(64 << 20),
            "MALLOC_TRIM_THRESHOLD_": str(256 << 20),
        },
    ),
}

WORKER = r"""
import json, resource, sys, time
import torch
from UNetPlusPlusLib.engine.loss import HybridLoss
from UNetPlusPlusLib.engine.network import UNetPlusPlus3D
from UNetPlusPlusLib.training.optimizer import AdamW
from UNetPlusPlusLib.training.steps import DeepSupervision, channels_last, training_step

threads, steps = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(0)
network = UNetPlusPlus3D(1, 2, (4, 8, 16, 32, 64, 4), norm="instance")
channels_last(network)
model = DeepSupervision(network).train()
optimizer = AdamW(network.parameters(), lr=3e-4, weight_decay=3e-5)
loss = HybridLoss()
generator = torch.Generator().manual_seed(1)
images = torch.randn(2, 1, 32, 32, 32, generator=generator)
images = images.contiguous(memory_format=torch.channels_last_3d)
labels = torch.randint(0, 2, (2, 32, 32, 32), generator=generator)
parameters = list(network.parameters())
rows = []
for index in range(steps + 1):
    before, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    training_step(model, parameters, optimizer, loss, images, labels, None)
    after = resource.getrusage(resource.RUSAGE_SELF)
    if index:  # the first step builds oneDNN's primitives
        rows.append({"wall": time.perf_counter() - wall,
                     "user": after.ru_utime - before.ru_utime,
                     "sys": after.ru_stime - before.ru_stime,
                     "minflt": after.ru_minflt - before.ru_minflt})
print(json.dumps(rows))
"""


def _run(threads: int, extra: dict, steps: int) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(extra, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT / "UNetPlusPlus"))
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(threads), str(steps)],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    print(f"load average before {os.getloadavg()}")
    rows: dict[str, list[dict]] = {name: [] for name in CONFIGS}
    for _ in range(args.rounds):
        for name, (threads, extra) in CONFIGS.items():
            rows[name] += _run(threads, extra, args.steps)
    for name, found in rows.items():
        medians = {k: statistics.median(r[k] for r in found) for k in ("wall", "user", "sys")}
        faults = statistics.median(r["minflt"] for r in found)
        print(
            f"{name:<42} per step: wall {medians['wall']:.3f} s, user {medians['user']:.3f} s, "
            f"sys {medians['sys']:.3f} s, {faults:.0f} minor faults ({len(found)} steps)"
        )
    print(f"load average after {os.getloadavg()}")


if __name__ == "__main__":
    main()
