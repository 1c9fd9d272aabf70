#!/usr/bin/env python
"""CPU seconds (``time.process_time``: every thread of the process) of each stage of one whole
`unetpp segment` run in-process, from the imports to the written outputs (issue 14: where the
liver CT's seconds go besides the tiles). CPU seconds, unlike wall, hardly depend on what else
the machine runs. Prints one line per stage and writes them to OUT.json.

    UNETPP_EXECUTOR=ours OMP_WAIT_POLICY=PASSIVE PYTHONPATH=$PWD/UNetPlusPlus \\
        python scripts/measure_segment_cpu.py OUT.json segment CT.nii.gz --task liver \\
        --threads 2 -o out.seg.nrrd

The stages are the functions timed (wrapped here, the product code unchanged); "other" is the
rest of ``cli.main``. Run in-process, the CLI imports torch on the main thread, not beside the
reading (``torch_preload`` starts only when run as a program).
"""

from __future__ import annotations

import json
import os
import sys
import time

START = time.process_time(), time.perf_counter()
import numpy  # noqa: E402,F401
import SimpleITK  # noqa: E402,F401

IMPORTED = time.process_time()
import torch  # noqa: E402,F401

TORCH = time.process_time()
from UNetPlusPlusLib import cli, cli_segment, segment_outputs, warm_cache  # noqa: E402
from UNetPlusPlusLib.engine import predictor, result_grid  # noqa: E402

LIBRARY = time.process_time()
spent: dict[str, float] = {}

STAGES = [  # (owner, function, stage), in the order a run meets them
    (warm_cache.WarmCache, "volume", "read the input"),
    (warm_cache.WarmCache, "input_checks", "input checks (sanity, CT range, front-back)"),
    (warm_cache.WarmCache, "predictor", "Predictor (module imports, weights)"),
    (predictor, "prepare_input", "resample to the model grid, normalise"),
    (predictor.Predictor, "_infer", "tiles (network)"),
    (result_grid, "region_labels", "back to the input grid (argmax)"),
    (predictor, "keep_largest_component", "largest component"),
    (predictor, "remove_small_components", "small components"),
    (predictor, "check_model_result", "anatomy check of the result"),
    (predictor, "check_volumes", "volume plausibility"),
    (segment_outputs, "write_outputs", "write the outputs"),
    (cli_segment, "_summary", "summary (volumes)"),
]


def timed(function, stage: str):
    def wrapper(*args, **kwargs):
        begin = time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            spent[stage] = spent.get(stage, 0.0) + time.process_time() - begin

    return wrapper


def main(out: str, argv: list[str]) -> None:
    for owner, name, stage in STAGES:
        setattr(owner, name, timed(getattr(owner, name), stage))
    begin = time.process_time()
    try:
        cli.main(argv)
    except SystemExit:
        pass
    inside = time.process_time() - begin
    rows = {
        "import numpy, SimpleITK": IMPORTED - START[0],
        "import torch": TORCH - IMPORTED,
        "import UNetPlusPlusLib": LIBRARY - TORCH,
        **spent,
        "other": inside - sum(spent.values()),
        "total CPU": time.process_time() - START[0],
        "wall": time.perf_counter() - START[1],
        "load average": os.getloadavg()[0],
    }
    with open(out, "w") as handle:
        json.dump(rows, handle, indent=1)
    for stage, seconds in rows.items():
        print(f"{stage:45s} {seconds:7.2f}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
