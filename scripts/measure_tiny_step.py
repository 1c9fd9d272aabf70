#!/usr/bin/env python3
"""Where the time of one tiny training step goes: the sphere test model's network (features
4 8 16 32 64 4, one channel, two classes), a 32^3 tile, batch 2, as ``unetpp train`` runs it
(training/steps.training_step: channels-last, deep supervision, hybrid loss, AdamW, clipping).

Each configuration runs in a fresh process (OpenMP reads its wait policy when torch loads), in
interleaved rounds; per process one warm-up step, then ``--steps`` timed ones
(scripts/_step_harness.py). Prints per configuration the median per step of wall, user and
system CPU seconds and minor page faults, and the load average before and after (the machine
is shared: compare CPU, not wall).

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
import os

from _step_harness import interleaved, median, run_worker

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    configs = {
        name: (lambda steps, t=threads, e=extra: run_worker(t, 2, steps, e))
        for name, (threads, extra) in CONFIGS.items()
    }
    for name, found in interleaved(configs, args.rounds, args.steps).items():
        wall, user, sys_s = (median(found, key) for key in ("wall", "user", "sys"))
        print(
            f"{name:<42} per step: wall {wall:.3f} s, user {user:.3f} s, "
            f"sys {sys_s:.3f} s, {median(found, 'minflt'):.0f} minor faults ({len(found)} steps)"
        )
    print(f"load average after {os.getloadavg()}")


if __name__ == "__main__":
    main()
