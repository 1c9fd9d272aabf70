#!/usr/bin/env python
"""Where a warm request's seconds go besides the tiles: wall and CPU seconds per step.

Runs requests in this process the way ``unetpp serve`` does (one ``WarmCache``, ``run_segment``
with the request's ``segment`` arguments, ``after_request`` after each), for a case of
``benchlib.e2e.cases`` (``brain``: the BraTS case of the bench; ``nodule``: the bench's click).
The first request per depth loads the model and the volume and is not reported; then
``--rounds`` rounds of one request per depth. Each step below is timed by wrapping the
function that does it (the wrappers only read the clocks):

- ``checks``: the input sanity checks (``WarmCache.input_checks``; cached per volume);
- ``prepare``: non-zero box, resampling onto the model grid, normalisation (``prepare_input``,
  or on code without it ``nonzero_crop`` + ``resample_volume`` + ``normalize``);
- ``network``: the sliding window (``Predictor._infer``: tiles, blending);
- ``argmax``: the probabilities back onto the input grid and the argmax (``argmax_on_reference``);
- ``components``: ``remove_small_components`` and ``keep_largest_component``;
- ``write``: the outputs (``segment_outputs.write_outputs``); ``summary``: the result's volumes;
- ``other``: the rest of the request (parsing excluded: it is timed as ``parse``).

CPU seconds are the process's (all threads), so a step's CPU can exceed its wall time; under
load the wall time grows while the CPU time mostly does not, which makes CPU seconds the better
guide on a shared machine. Compare code trees by running this script with each on PYTHONPATH,
alternately. Nothing here asserts a speed.

    PYTHONPATH=$PWD/UNetPlusPlus python scripts/profile_warm_request.py [--case brain]
        [--depths 1,4] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI sets it, before torch loads
os.environ.setdefault("KMP_BLOCKTIME", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from benchlib import e2e  # noqa: E402
from UNetPlusPlusLib import cli_segment, segment_outputs, warm_cache  # noqa: E402
from UNetPlusPlusLib.cli import build_parser  # noqa: E402
from UNetPlusPlusLib.engine import predictor  # noqa: E402

STEPS = ("checks", "prepare", "network", "argmax", "components", "write", "summary")
_spent: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
_depth = [0]


def _timed(owner, name: str, step: str) -> None:
    """Replace ``owner.name`` by a wrapper adding its wall and CPU seconds to ``step`` (not
    counting calls nested inside another timed step)."""
    if not hasattr(owner, name):
        return
    function = getattr(owner, name)

    def wrapper(*args, **kwargs):
        _depth[0] += 1
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            _depth[0] -= 1
            if _depth[0] == 0:
                _spent[step][0] += time.perf_counter() - wall
                _spent[step][1] += time.process_time() - cpu

    setattr(owner, name, wrapper)


def _install() -> None:
    _timed(warm_cache.WarmCache, "input_checks", "checks")
    for name in ("prepare_input", "nonzero_crop", "resample_volume", "normalize"):
        _timed(predictor, name, "prepare")
    _timed(predictor.Predictor, "_infer", "network")
    _timed(predictor, "argmax_on_reference", "argmax")
    _timed(predictor, "remove_small_components", "components")
    _timed(predictor, "keep_largest_component", "components")
    _timed(segment_outputs, "write_outputs", "write")
    _timed(cli_segment, "_summary", "summary")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="brain", help="a case of benchlib.e2e.cases")
    parser.add_argument("--depths", default="1,4", help="rec (the model's), 1..4")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    case = e2e.cases((args.case,)).get(args.case)
    if case is None:
        raise SystemExit(f"case {args.case} is not available (../shared/data, installed models)")
    _install()
    cache = warm_cache.WarmCache()
    output = Path(os.environ.get("TMPDIR", "/tmp")) / f"profile-warm-{os.getpid()}.seg.nrrd"

    def request(depth: str) -> tuple[float, float, float]:
        argv = ["segment", *case["inputs"], *case["args"], "--threads", str(args.threads)]
        argv += (["--depth", depth] if depth != "rec" else []) + ["-o", str(output)]
        _spent.clear()
        wall, cpu = time.perf_counter(), time.process_time()
        parsed = build_parser().parse_args(argv)
        parse = time.perf_counter() - wall
        try:
            cli_segment.run_segment(parsed, lambda *a: None, cache=cache)
        finally:
            cache.after_request(click=bool(parsed.point))
        return time.perf_counter() - wall, time.process_time() - cpu, parse

    depths = args.depths.split(",")
    for depth in depths:
        request(depth)
    totals: dict[str, list[float]] = collections.defaultdict(list)
    try:
        for round_ in range(args.rounds):
            for depth in depths:
                wall, cpu, parse = request(depth)
                timed = sum(w for w, _ in _spent.values())
                other = wall - parse - timed
                totals[f"L{depth} wall"].append(wall)
                totals[f"L{depth} outside network"].append(wall - _spent["network"][0])
                steps = " ".join(
                    f"{s} {_spent[s][0]:.3f}/{_spent[s][1]:.3f}" for s in STEPS if s in _spent
                )
                print(
                    f"round {round_ + 1} L{depth}: {wall:.3f} s wall, {cpu:.3f} s CPU; "
                    f"wall/CPU: parse {parse:.3f} {steps} other {other:.3f}; "
                    f"load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
    finally:
        output.unlink(missing_ok=True)
    print("median: " + ", ".join(f"{k} {statistics.median(v):.3f}" for k, v in totals.items()))


if __name__ == "__main__":
    main()
