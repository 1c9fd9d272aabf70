"""The timing harness of scripts/measure_batch1_step.py and scripts/measure_tiny_step.py.

One tiny training step as ``unetpp train`` runs it (training/steps.training_step: channels-last,
deep supervision, hybrid loss, AdamW, clipping) on the sphere test model's network (features
4 8 16 32 64 4, one channel, two classes, instance norm) and a 32^3 tile. Each configuration
runs in a fresh process (OpenMP reads its wait policy when torch loads), in interleaved rounds;
per process one warm-up step (it builds oneDNN's primitives), then the timed steps, each a row
``{"wall", "user", "sys", "minflt"}`` (seconds, minor page faults) printed as one JSON line.

    python scripts/_step_harness.py THREADS BATCH PLAIN STEPS   # one worker, as run_worker does
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Callable, Mapping

ROOT = Path(__file__).resolve().parent.parent
#: the wait policies a worker does not inherit from this process (each configuration sets its own)
NOT_INHERITED = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def run_worker(
    threads: int, batch: int, steps: int, env: Mapping[str, str], plain: bool = False
) -> list[dict]:
    """The rows of ``steps`` timed steps in a fresh process: ``threads`` torch threads, batch
    ``batch``, ``plain`` under ``plain_modules()`` (``nn.Conv3d``, not our CPU paths), with
    this process's environment less :data:`NOT_INHERITED`, plus ``env``."""
    full = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    full.update(env, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT / "UNetPlusPlus"))
    argv = [str(v) for v in (threads, batch, int(plain), steps)]
    done = subprocess.run(
        [sys.executable, __file__, *argv], capture_output=True, text=True, env=full, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def interleaved(
    configs: Mapping[str, Callable[[int], list[dict]]], rounds: int, steps: int
) -> dict[str, list[dict]]:
    """Every configuration's rows, ``rounds`` times in turn (``configs``: name -> a function of
    the step count that runs one worker); prints the load average before."""
    print(f"load average before {os.getloadavg()}")
    rows: dict[str, list[dict]] = {name: [] for name in configs}
    for _ in range(rounds):
        for name, run in configs.items():
            rows[name] += run(steps)
    return rows


def median(rows: list[dict], *keys: str) -> float:
    """The median over ``rows`` of the sum of ``keys`` (``"user", "sys"``: CPU seconds)."""
    return statistics.median(sum(row[k] for k in keys) for row in rows)


def _worker(threads: int, batch: int, plain: int, steps: int) -> None:
    import contextlib
    import resource
    import time

    import torch
    from UNetPlusPlusLib.engine.loss import HybridLoss
    from UNetPlusPlusLib.engine.network import UNetPlusPlus3D, plain_modules
    from UNetPlusPlusLib.training.optimizer import AdamW
    from UNetPlusPlusLib.training.steps import DeepSupervision, channels_last, training_step

    torch.set_num_threads(threads)
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
        before, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        with plain_modules() if plain else contextlib.nullcontext():
            training_step(model, parameters, optimizer, loss, images, labels, None)
        after = resource.getrusage(resource.RUSAGE_SELF)
        if index:  # the first step builds oneDNN's primitives
            rows.append(
                {
                    "wall": time.perf_counter() - wall,
                    "user": after.ru_utime - before.ru_utime,
                    "sys": after.ru_stime - before.ru_stime,
                    "minflt": after.ru_minflt - before.ru_minflt,
                }
            )
    print(json.dumps(rows))


if __name__ == "__main__":
    _worker(*(int(a) for a in sys.argv[1:5]))
