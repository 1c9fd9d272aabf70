"""How often the ``fastest`` probe picks the faster executor (engine/probe.py), before and after.

``cd bench && python -m benchlib.probe_accuracy --mode openvino`` runs, ``--probes`` times, in
one process: ``--pairs`` reference pairs (ours, the library, interleaved, timed), then a probe
with the earlier rule (:func:`legacy_decision`: best of 2 timed tiles each, 4 while the bests
are within 10 %) and a probe with the current one (:func:`probe.probe_decision`), in alternating
order. Each probe is a ``FastestExecutor`` that forgets its choice and runs tiles (shipped liver
weights, a ``--tile``^3 synthetic CT tile, ``--threads``) until it has decided. The reference
winner is the median of all reference pairs' ratios (library / ours); a probe is right when it
picks that one. Modes:

- ``openvino``: ours against OpenVINO fp32 (whatever their real difference under this load);
- ``slowed``: ours against ours slowed by ``--factor`` (a sleep of ``factor - 1`` times the
  run's own time; a factor below 1 slows the ours slot instead), so the true ratio is known
  exactly and carries the machine's real noise;
- ``replay``: times ``--pairs`` interleaved pairs of ours against ours (the machine's noise
  between two neighbouring tiles), then replays both rules from every starting pair on those
  times with the second of each pair scaled by each of ``--factors``: many more probes than
  can be run live, on the same noise.

Prints one line per repetition and a summary with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Optional, Sequence

from UNetPlusPlusLib.engine.probe import MAX_PAIRS


def legacy_decision(ours: Sequence[float], library: Sequence[float]) -> Optional[str]:
    """The rule before session 8: 2 timed tiles each, 4 while the bests are within 10 %;
    the one with the best single time wins."""
    count = min(len(ours), len(library))
    if count < 2:
        return None
    low, high = sorted((min(ours), min(library)))
    if high < 1.1 * low and count < 4:
        return None
    return "library" if min(library) < min(ours) else "ours"


class _Slowed:
    """An executor that takes ``factor`` times as long as ``inner`` (a sleep after the run)."""

    def __init__(self, inner, factor: float) -> None:
        self.inner, self.factor = inner, factor

    def run(self, tile, depth):
        started = time.perf_counter()
        out = self.inner.run(tile, depth)
        time.sleep((self.factor - 1.0) * (time.perf_counter() - started))
        return out


def _pair(mode: str, factor: float, model, threads: int, cache: str):
    """(ours, library) executors for the mode."""
    from UNetPlusPlusLib.engine import executors

    ours = executors.OursExecutor(model, threads)
    if mode == "openvino":
        return ours, executors.OpenVinoExecutor(model, threads, cache_dir=cache)
    other = executors.OursExecutor(model, threads)
    if factor >= 1.0:
        return ours, _Slowed(other, factor)
    return _Slowed(ours, 1.0 / factor), other


def replay(
    first: Sequence[float], second: Sequence[float], factor: float, rule
) -> list[tuple[Optional[str], int]]:
    """``rule``'s pick and pairs used for a probe starting at every pair of the recorded times
    (ours = ``first``, library = ``second`` times ``factor``), while enough pairs remain."""
    picks = []
    for start in range(max(0, len(first) - 2 * MAX_PAIRS)):
        ours, library = [], []
        verdict = None
        for a, b in zip(first[start:], second[start:]):
            ours.append(a), library.append(b * factor)
            verdict = rule(ours, library)
            if verdict is not None:
                break
        picks.append((verdict, len(ours)))
    return picks


def _replay_main(args, ours, tile) -> None:
    """``--mode replay``: record pairs of ours against ours, then replay both rules on them."""
    from UNetPlusPlusLib.engine.probe import probe_decision

    load_before = os.getloadavg()
    first, second = [], []
    for _ in range(args.pairs):
        for times in (first, second):
            started = time.perf_counter()
            ours.run(tile, args.depth)
            times.append(time.perf_counter() - started)
    spread = statistics.median(abs(b / a - 1) for a, b in zip(first, second))
    order = statistics.median(b / a for a, b in zip(first, second))
    if args.save:
        Path(args.save).write_text(json.dumps({"first": first, "second": second}))
    print(
        f"replay L{args.depth} tile {args.tile}^3 threads {args.threads}: {args.pairs} pairs of "
        f"ours against ours, median tile {statistics.median(first):.4f} s, median |ratio - 1| "
        f"{spread:.3f}, median ratio second / first {order:.3f}; load "
        f"{' '.join(f'{x:.2f}' for x in load_before)} -> "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    for factor in (float(f) for f in args.factors.split(",")):
        winner = "library" if factor < 1.0 else "ours"
        for name, rule in (("legacy", legacy_decision), ("new", probe_decision)):
            picks = replay(first, second, factor, rule)
            right = sum(pick == winner for pick, _ in picks)
            pairs = statistics.mean(n for _, n in picks)
            print(
                f"  factor {factor:.3f} {name:7s} right {right}/{len(picks)} "
                f"({right / len(picks):.2f}), mean pairs {pairs:.1f}"
            )


def _probe(fastest, rule, tile, depth: int) -> tuple[str, int]:
    """The probe's pick ("ours" / "library") and the tiles it ran, warm-up included."""
    fastest.decide = rule
    fastest.forget()
    for calls in range(1, 200):
        fastest.run(tile, depth)
        if fastest.decided(tuple(tile.shape), depth):
            pick = fastest._state[(str(depth), tuple(tile.shape))]["pick"]
            return ("ours" if pick == "ours" else "library"), calls
    raise RuntimeError("the probe did not decide in 200 tiles")


def main(argv: Optional[list[str]] = None) -> None:
    from UNetPlusPlusLib.engine import runtime_env

    runtime_env.apply()  # as the CLI does: before torch's OpenMP starts
    import torch
    from UNetPlusPlusLib.engine import executors
    from UNetPlusPlusLib.engine.cpu_inference import reuse_buffers
    from UNetPlusPlusLib.engine.predictor import Predictor
    from UNetPlusPlusLib.engine.probe import probe_decision

    parser = argparse.ArgumentParser(prog="python -m benchlib.probe_accuracy")
    parser.add_argument("--mode", choices=("openvino", "slowed", "replay"), default="openvino")
    parser.add_argument("--save", default="", help="replay: write the recorded times (JSON)")
    parser.add_argument("--factors", default="1.08,0.926,1.05,0.952", help="replay: library/ours")
    parser.add_argument("--factor", type=float, default=1.08, help="slowed: library / ours")
    parser.add_argument("--task", default="liver")
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--tile", type=int, default=48)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--pairs", type=int, default=10, help="reference pairs per repetition")
    parser.add_argument("--cache", default=os.path.expanduser("~/.cache/unetpp/bench/probe"))
    args = parser.parse_args(argv)

    from . import workload

    model = Predictor.from_task(args.task, device="cpu", threads=args.threads).model
    tile = torch.from_numpy(workload.synthetic_volume((args.tile,) * 3, seed=1))[None]
    if args.mode == "replay":
        with torch.inference_mode(), reuse_buffers():
            ours = executors.OursExecutor(model, args.threads)
            ours.run(tile, args.depth)  # pack, warm
            return _replay_main(args, ours, tile)
    ours, library = _pair(args.mode, args.factor, model, args.threads, args.cache)
    fastest = executors.FastestExecutor(model, args.threads, candidate="torch")
    fastest.ours, fastest._library = ours, library  # the slot named "torch" is the library
    rules = {"legacy": legacy_decision, "new": probe_decision}
    load_before = os.getloadavg()
    ratios, mins = [], {"ours": [], "library": []}
    results: dict = {name: [] for name in rules}
    with torch.inference_mode(), reuse_buffers():
        ours.run(tile, args.depth), library.run(tile, args.depth)  # compile, pack, warm
        for repetition in range(args.probes):
            local = []
            for _ in range(args.pairs):
                times = []
                for executor in (ours, library):
                    started = time.perf_counter()
                    executor.run(tile, args.depth)
                    times.append(time.perf_counter() - started)
                local.append(times[1] / times[0])
                mins["ours"].append(times[0]), mins["library"].append(times[1])
            ratios += local
            order = list(rules) if repetition % 2 == 0 else list(rules)[::-1]
            line = [f"rep {repetition:2d} load {os.getloadavg()[0]:.2f}"]
            line.append(f"local ratio {statistics.median(local):.3f}")
            for name in order:
                pick, tiles = _probe(fastest, rules[name], tile, args.depth)
                results[name].append((pick, tiles))
                line.append(f"{name} {pick} ({tiles} tiles)")
            print("  ".join(line), flush=True)
    reference = statistics.median(ratios)
    best = min(mins["library"]) / min(mins["ours"])
    winner = "library" if reference < 1.0 else "ours"
    if args.mode == "slowed":
        winner = "library" if args.factor < 1.0 else "ours"
    print(
        f"mode {args.mode} factor {args.factor} L{args.depth} tile {args.tile}^3 "
        f"threads {args.threads}: reference median ratio library/ours {reference:.3f} over "
        f"{len(ratios)} pairs (best-time ratio {best:.3f}), faster: {winner}; load "
        f"{' '.join(f'{x:.2f}' for x in load_before)} -> "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    for name, picks in results.items():
        right = sum(pick == winner for pick, _ in picks)
        tiles = statistics.mean(t for _, t in picks)
        print(f"  {name:7s} right {right}/{len(picks)}  mean tiles per probe {tiles:.1f}")


if __name__ == "__main__":
    main()
