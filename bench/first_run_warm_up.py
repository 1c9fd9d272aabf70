"""Seconds from Segment to result for the module's FIRST run, with and without the engine
started ahead (``SegmentationLogic.warm_up``, called when the module is entered).

Real MRML (slicer-core), the module's Logic and its persistent engine (`unetpp serve`, this
Python), the shipped models and the bench's typical inputs (``benchlib.default_models``: the
first BraTS 2018 case at the model's depth, a click at the centre of an LIDC crop). Per round
and case, in alternating order: a fresh Logic whose first run starts at once ("cold", the
engine starts with the run), and a fresh Logic warmed up ``--lead`` seconds before the run
(the time a user takes to pick the inputs). Only the run is timed: ``start_job`` to the result
in the scene.

    python bench/first_run_warm_up.py [--rounds 2] [--lead 6] [--cases brain,nodule]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "UNetPlusPlus"))


def first_run_s(case: dict, warm_lead_s: float) -> float:
    """Seconds of the first run of a fresh Logic; warmed ``warm_lead_s`` before when > 0."""
    import slicer
    from UNetPlusPlusLib.adapter import geometry, job
    from UNetPlusPlusLib.adapter.logic import SegmentationLogic
    from UNetPlusPlusLib.engine.image_read import read_volume

    scene = slicer.vtkMRMLScene()
    volume = read_volume(case["images"])
    nodes = [
        geometry.volume_node_from_volume(scene, volume, f"ch{c}", channel=c)
        for c in range(volume.num_channels)
    ]
    logic = SegmentationLogic()
    try:
        if warm_lead_s > 0:
            logic.warm_up()
            time.sleep(warm_lead_s)
        point = case.get("point")
        ras = None if point is None else [-point[0], -point[1], point[2]]
        started = time.perf_counter()
        running = logic.start_job(nodes, case["model"], device="cpu", point_ras=ras)
        while not running.finished:
            running.poll()
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        if running.state != job.SUCCEEDED:
            raise RuntimeError(running.error)
        return seconds
    finally:
        logic.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--lead", type=float, default=6.0)
    parser.add_argument("--cases", default="brain,nodule")
    args = parser.parse_args()
    from benchlib import default_models

    models = default_models.installed_models()
    cases = {}
    for key in args.cases.split(","):
        job = default_models.typical_job(key, models[key], 2) if key in models else None
        if job is None:
            print(f"{key}: no model or no typical input here")
            continue
        cases[key] = {"images": job["images"], "model": job["manifest"], "point": job.get("point")}
    results: dict = {(key, how): [] for key in cases for how in ("cold", "warmed")}
    for round_ in range(args.rounds):
        for key, case in cases.items():
            order = ("cold", "warmed") if round_ % 2 == 0 else ("warmed", "cold")
            for how in order:
                seconds = first_run_s(case, args.lead if how == "warmed" else 0.0)
                results[(key, how)].append(seconds)
                print(f"r{round_} {key:7s} {how:7s} {seconds:.2f} s", flush=True)
    for key in cases:
        cold = statistics.median(results[(key, "cold")])
        warm = statistics.median(results[(key, "warmed")])
        print(f"median {key}: first run cold {cold:.2f} s, warmed {warm:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
