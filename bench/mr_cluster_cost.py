#!/usr/bin/env python3
"""What the absurd-cluster refusal (engine/mr_cluster.py) adds to the MR checks of a case:
``mr_outliers.channel_warning`` on each channel of a shared BraTS case (float32, as
``check_model_input`` sees it) with ``check_cluster`` and without it (replaced by a no-op),
interleaved in one process (order alternated per round). Prints the median CPU seconds
(``time.process_time``) of each, of ``check_cluster`` alone, the median of the rounds'
differences, the load average.

Usage: python bench/mr_cluster_cost.py [--case FOLDER] [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from benchlib.mr_channels import CASE, case_channels
from UNetPlusPlusLib.engine import mr_outliers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", type=Path, default=CASE)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    arrays = case_channels(args.case)
    check = mr_outliers.check_cluster

    def run(with_check: bool) -> None:
        mr_outliers.check_cluster = check if with_check else (lambda name, array: None)
        for array in arrays:
            mr_outliers.channel_warning("T2", array)

    times: dict[bool, list[float]] = {False: [], True: []}
    alone: list[float] = []
    for round_ in range(args.rounds):
        for mode in (False, True) if round_ % 2 == 0 else (True, False):
            started = time.process_time()
            run(mode)
            times[mode].append(time.process_time() - started)
        started = time.process_time()
        for array in arrays:
            check("T2", array)
        alone.append(time.process_time() - started)
    mr_outliers.check_cluster = check
    extra = [w - wo for w, wo in zip(times[True], times[False])]
    for mode, values in times.items():
        name = "with check_cluster" if mode else "without"
        print(f"{name}: median {statistics.median(values):.4f} s CPU ({len(arrays)} channels)")
    print(f"check_cluster alone: median {statistics.median(alone):.4f} s CPU per case")
    print(f"added: median {statistics.median(extra):.4f} s CPU per case over {args.rounds} rounds")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
