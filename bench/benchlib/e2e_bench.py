"""End to end in the bench (issue 14): cold one-shot runs and warm server requests, idle and
loaded, their report rows and the last line's keys.

- cold: ``unetpp segment`` in a fresh process per run (``e2e.run_case``), what the CLI costs;
- warm: requests to one ``unetpp serve`` process (``warm.warm_runs``), what the Slicer module's
  second and later runs cost (it keeps one engine process alive).

Cases: ``liver_512`` and ``nodule`` (a click) at the model's depth; ``brain`` at L1 and L4
(and, in the full mode, at its recommended depth). "loaded" = under ``load.competing_load(2)``.
Run alone: ``cd bench && python -m benchlib.e2e_bench [--quick]``.
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Optional

from . import e2e, machine, warm
from .load import competing_load

CASES = ("brain", "liver_512", "nodule")  # the order of the warm requests: brain starts it
CONDITIONS = ("idle", "loaded")


def depths(quick: bool) -> dict[str, list[str]]:
    """Depths per case ("rec" = the model's recommended depth)."""
    return {"brain": ["1", "4"] if quick else ["1", "rec", "4"]}


def measure(
    quick: bool,
    threads: int,
    env: dict,
    log: Callable[[str], None],
    found: Optional[dict[str, dict]] = None,
    cold_runs: bool = True,
) -> dict:
    """{"cold": {ROW:condition: run}, "warm": {...}, "warm_rounds": n}; runs as
    ``e2e.run_case`` and ``warm.warm_runs`` return them, each with "load" (the load average
    just after it). A cold row is the median of :func:`cold_rounds` fresh-process runs, one
    per round, every row idle and loaded in each round (:func:`median_run`: "rounds" holds
    every run's seconds). ``found``: the cases (default ``e2e.cases(CASES)``, without those whose
    model or data is missing), warm requests in their order. ``cold_runs=False``: the warm
    requests only ("cold" is then empty)."""
    if found is None:
        found = e2e.cases(CASES)
        found = {name: found[name] for name in CASES if name in found}
    per_case = depths(quick)
    cold: dict[str, dict] = {}
    runs: dict[str, list[dict]] = {}
    for round_index in range(cold_rounds(quick) if cold_runs else 0):
        for name, case in found.items():
            for depth in per_case.get(name, ["rec"]):
                # idle and loaded side by side; which goes first alternates from round to round
                for condition in CONDITIONS[:: 1 if round_index % 2 == 0 else -1]:
                    key = f"{e2e.row_name(name, depth)}:{condition}"
                    result = _cold_run(e2e.with_depth(case, depth), condition, threads, env)
                    runs.setdefault(key, []).append(result)
                    load = result["load"]
                    log(
                        f"  cold {key} round {round_index + 1}: {result['seconds']:.2f} s "
                        f"(in {result['took']:.0f} s, load {load})"
                    )
    for key, results in runs.items():  # rows in the order of the first round
        cold[key] = median_run(results)
    log("end to end, warm: one unetpp serve process")
    rounds = 2 if quick else 3
    warm_results = warm.warm_runs(found, threads, env, per_case, rounds, CONDITIONS, log)
    return {"cold": cold, "warm": warm_results, "warm_rounds": rounds}


def cold_rounds(quick: bool) -> int:
    """Fresh-process runs per cold row: 3 (--quick) or 5. A single cold run is noisy (the
    shared machine, and on this VM the cost of memory first touched, docs/BENCHMARK_E2E.md
    session 19); an odd count makes the row's figure one real run, the median."""
    return 3 if quick else 5


def _cold_run(case: dict, condition: str, threads: int, env: dict) -> dict:
    """One ``e2e.run_case`` under ``condition`` ("loaded": inside ``competing_load(2)``), with
    "load" (the load average just after it) and "took" (s, the load's start and stop too)."""
    started = time.perf_counter()
    busy = competing_load(2) if condition == "loaded" else contextlib.nullcontext()
    with busy:
        if condition == "loaded":
            time.sleep(warm.LOAD_RAMP_S)
        result = e2e.run_case(case, threads, env)
    result["load"] = machine.load_average()
    result["took"] = time.perf_counter() - started
    return result


def median_run(results: list[dict]) -> dict:
    """The run of median seconds among ``results`` (the lower middle one for an even count),
    with "rounds": every run's seconds in the order run. ValueError when empty."""
    if not results:
        raise ValueError("no runs")
    ordered = sorted(results, key=lambda run: run["seconds"])
    middle = ordered[(len(ordered) - 1) // 2]
    return {**middle, "rounds": [run["seconds"] for run in results]}


def _ratio(results: dict, numerator: str, denominator: str) -> Optional[float]:
    if numerator in results and denominator in results:
        return results[numerator]["seconds"] / results[denominator]["seconds"]
    return None


def loaded_ratios(results: dict) -> dict[str, float]:
    """Loaded seconds / idle seconds per row that has both, e.g. {"brain_L1": 1.3}."""
    ratios = {}
    for key in results:
        if key.endswith(":idle"):
            row = key[: -len(":idle")]
            ratio = _ratio(results, f"{row}:loaded", key)
            if ratio is not None:
                ratios[row] = ratio
    return ratios


def _worst_loaded_ratio(results: dict) -> Optional[float]:
    ratios = loaded_ratios(results)
    return max(ratios.values()) if ratios else None


def _ratio_line(results: dict) -> list[str]:
    ratios = loaded_ratios(results)
    if not ratios:
        return []
    return ["  loaded / idle: " + ", ".join(f"{row} {r:.2f}" for row, r in ratios.items())]


def keys(cold: dict, warm_results: dict) -> list[str]:
    """The last line's end-to-end keys: ``e2e_liver_512`` (cold, idle, seconds),
    ``brain_l4_vs_l1_{cold,warm}`` (idle L4 s / L1 s; >= 3.0 meets the target) and
    ``loaded_vs_idle_{cold,warm}`` (the worst loaded / idle over the rows; <= 2.0 meets it).
    A key whose runs are missing is left out."""
    out: list[str] = []
    if "liver_512:idle" in cold:
        out.append(f"e2e_liver_512={cold['liver_512:idle']['seconds']:.1f}")
    for kind, results in (("cold", cold), ("warm", warm_results)):
        ratio = _ratio(results, "brain_L4:idle", "brain_L1:idle")
        if ratio is not None:
            out.append(f"brain_l4_vs_l1_{kind}={ratio:.2f}")
    for kind, results in (("cold", cold), ("warm", warm_results)):
        ratio = _worst_loaded_ratio(results)
        if ratio is not None:
            out.append(f"loaded_vs_idle_{kind}={ratio:.2f}")
    return out


def _every(value: dict) -> str:
    """ "; rounds 1.00, 1.20" for a row measured in rounds, else ""."""
    seen = value.get("rounds")
    return f"; rounds {', '.join(f'{s:.2f}' for s in seen)}" if seen else ""


def report(results: dict) -> list[str]:
    """The end-to-end rows (cold, then warm) for the bench's report."""
    cold, warm_results = results.get("cold", {}), results.get("warm", {})
    lines: list[str] = []
    if cold:
        lines += [
            "",
            "end to end, cold: unetpp segment in a fresh process per run, seconds (split by "
            "stage), the median run of interleaved rounds (after 'rounds': every run's seconds); "
            "'loaded' = with 2 busy processes started by the bench",
        ]
        for key, value in cold.items():
            lines.append(
                f"  {key:<20}{e2e.format_split(value)}  (load {value['load']}{_every(value)})"
            )
        lines += _ratio_line(cold)
    if warm_results:
        rounds = results.get("warm_rounds", "?")
        lines += [
            "",
            f"end to end, warm: requests to one unetpp serve process, best of {rounds} "
            "interleaved rounds; 'first' = a case's first request (the server's very first "
            "one includes starting the process, imports and model loading)",
        ]
        for key, value in warm_results.items():
            lines.append(
                f"  {key:<20}{e2e.format_split(value)}  (load {value['load']}{_every(value)})"
            )
        lines += _ratio_line(warm_results)
    return lines


def main(argv: Optional[list[str]] = None) -> None:
    """Only the end-to-end part of ``bench/run``: its rows and keys."""
    import argparse
    import sys

    from UNetPlusPlusLib.engine import runtime_env

    parser = argparse.ArgumentParser(prog="python -m benchlib.e2e_bench", description=main.__doc__)
    parser.add_argument("--quick", action="store_true", help="bench/run --quick's runs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warm-only", action="store_true", help="the warm requests only")
    parser.add_argument("--cases", default=",".join(CASES), help="a comma-separated subset")
    args = parser.parse_args(argv)
    env = runtime_env.child_env()
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(args.threads)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    started = time.perf_counter()
    log(f"load average before {machine.load_average()}")
    chosen = [name for name in CASES if name in args.cases.split(",")]
    found = e2e.cases(tuple(chosen))
    found = {name: found[name] for name in chosen if name in found}
    results = measure(args.quick, args.threads, env, log, found, cold_runs=not args.warm_only)
    for line in report(results):
        print(line)
    took = time.perf_counter() - started
    print(f"(took {took:.0f} s; load average after {machine.load_average()})")
    print(" ".join(keys(results["cold"], results["warm"])), flush=True)


if __name__ == "__main__":
    main()
