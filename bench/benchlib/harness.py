"""Run the whole benchmark and print its report; the last line holds the issue's ratios."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from UNetPlusPlusLib.engine import runtime_env

from . import default_models, executors_bench, interleave, machine, workload
from .run_args import parse_args

BENCH_DIR = Path(__file__).resolve().parents[1]
DEPTHS = ("4", "3", "2", "1", "ensemble")


class Runner:
    """Starts one worker process per measurement, with the thread count pinned."""

    def __init__(self, threads: int, log) -> None:
        self.threads = threads
        self.log = log
        self.env = runtime_env.child_env()  # what the CLI and Slicer set: no OpenMP spinning
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            self.env[name] = str(threads)
        self.env["PYTHONPATH"] = os.pathsep.join(
            [str(BENCH_DIR)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
        )

    def __call__(self, job: dict, label: str) -> dict:
        job = {"threads": self.threads, **job}
        started = time.perf_counter()
        process = subprocess.run(
            [sys.executable, "-m", "benchlib.worker", json.dumps(job)],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if process.returncode != 0:
            raise RuntimeError(f"{label} failed:\n{process.stderr[-3000:]}")
        result = json.loads(process.stdout.strip().splitlines()[-1])
        self.log(
            f"  {label}: done in {time.perf_counter() - started:.0f} s "
            f"(load {machine.load_average()})"
        )
        return result


def measure(args: argparse.Namespace, workdir: Path, log) -> dict:
    shape = tuple(args.size or ((96, 128, 128) if args.quick else (160, 160, 160)))
    rounds = args.rounds or (1 if args.quick else 2)
    double = (2 * shape[0],) + shape[1:]
    np.save(workdir / "volume.npy", workload.synthetic_volume(shape))
    np.save(workdir / "volume2x.npy", workload.synthetic_volume(double))
    workload.save_weights(workload.monai_network(), workdir / "weights.safetensors")
    common = {"weights": str(workdir / "weights.safetensors")}
    run = Runner(args.threads, log)
    results: dict = {"shape": shape, "double_shape": double, "rounds": rounds, "volume": {}}

    log("single 96^3 tile and fp32 matmul peak")
    results["tile"] = run(
        {
            "kind": "tile",
            "volume": str(workdir / "volume.npy"),
            "monai": True,
            "bf16": True,
            "rounds": 1 if args.quick else 3,
            **common,
        },
        "tile",
    )
    configs = [("monai", "4")] + [("ours", d) for d in DEPTHS]
    for round_index, (engine, depth) in interleave.order(rounds, [configs]):
        if (engine, depth) == configs[0]:
            log(f"whole volume {'x'.join(map(str, shape))}, round {round_index + 1}/{rounds}")
        key = f"{engine}:{depth}"
        job = {
            "kind": "volume",
            "engine": engine,
            "volume": str(workdir / "volume.npy"),
            "depth": int(depth) if depth.isdigit() else depth,
            **common,
        }
        if round_index == 0 and depth == "4":
            job["labels_out"] = str(workdir / f"labels-{engine}.npy")
        result = run(job, f"{engine} {'L' + depth if depth.isdigit() else depth}")
        previous = results["volume"].get(key)
        if previous is not None:
            result["seconds"] = previous["seconds"] + result["seconds"]
            result["peak_rss_mb"] = max(previous["peak_rss_mb"], result["peak_rss_mb"])
        results["volume"][key] = result
    ours = np.load(workdir / "labels-ours.npy")
    theirs = np.load(workdir / "labels-monai.npy")
    results["agree"] = float(np.mean(ours == theirs))
    results["differing_voxels"] = int(np.sum(ours != theirs))

    log(f"memory: ours L4 on the 2x volume {'x'.join(map(str, double))}")
    results["double"] = run(
        {
            "kind": "volume",
            "engine": "ours",
            "depth": 4,
            "volume": str(workdir / "volume2x.npy"),
            **common,
        },
        "ours L4 (2x volume)",
    )
    results["models"] = {} if args.no_models else default_model_runs(run, args.threads, log)
    if not args.no_executors:
        weights = workdir / "weights.safetensors"
        results["inference"] = executors_bench.measure(run, args, workdir, weights, log)
    return results


def default_model_runs(run: Runner, threads: int, log) -> dict:
    models = default_models.installed_models()
    out: dict = {}
    for key, _ in default_models.TASKS:
        if key not in models:
            out[key] = "not installed"
            continue
        job = default_models.typical_job(key, models[key], threads)
        if job is None:
            out[key] = "installed, but no typical volume found"
            continue
        log(f"default model: {key}")
        try:
            out[key] = run(job, f"{key} model")
        except RuntimeError as error:
            out[key] = f"failed: {str(error).splitlines()[-1]}"
    return out


def _best(result: dict) -> float:
    return min(result["seconds"])


def _name(depth: str) -> str:
    return f"L{depth}" if depth.isdigit() else depth


def report(results: dict, args: argparse.Namespace, load_before: str, load_after: str) -> list[str]:
    tile = results["tile"]
    peak = tile["matmul_gflops"]
    nominal, executed = tile["nominal_flops"], tile["executed_flops"]
    volume = results["volume"]
    monai = _best(volume["monai:4"])
    ours4 = _best(volume["ours:4"])
    tiles = volume["ours:4"]["tiles"]
    shape = "x".join(map(str, results["shape"]))
    lines = [
        "",
        "== UNet++ engine benchmark (issue 6) ==",
        *machine.describe(args.threads),
        f"load average (1, 5, 15 min): before {load_before}; after {load_after}",
        f"workload: synthetic CT-like volume {shape} (z, y, x), 1 channel, 2 classes; "
        f"tile {workload.TILE}^3, overlap {workload.OVERLAP} -> {tiles} tiles; Gaussian "
        "blending of softmax probabilities in both engines",
        f"weights: MONAI BasicUNetPlusPlus features {workload.FEATURES}, random init (seed 0), "
        "mapped onto ours with load_monai_weights",
        f"fp32 matmul peak (torch.mm {4096}^2, {args.threads} threads): {peak:.1f} GFLOP/s",
        "",
        "one 96^3 tile, one process, best of interleaved rounds (GFLOP = 1e9 multiply-add x 2;",
        "'nominal' counts the paper's graph, 'executed' what our kernels compute: the upsampling",
        "is folded into the next convolution, which skips about a fifth of the work)",
        f"{'depth':<12}{'s/tile':>8}{'nominal':>9}{'executed':>10}{'GFLOP/s':>9}{'of peak':>9}"
        f"{'nominal/s':>11}{'vs L4':>7}",
    ]
    seconds = tile["seconds"]
    for depth in DEPTHS:
        rate = executed[depth] / seconds[depth] / 1e9
        lines.append(
            f"{'ours ' + _name(depth):<12}{seconds[depth]:>8.2f}{nominal[depth] / 1e9:>9.0f}"
            f"{executed[depth] / 1e9:>10.0f}{rate:>9.1f}{rate / peak:>9.2f}"
            f"{nominal[depth] / seconds[depth] / 1e9:>11.1f}{seconds['4'] / seconds[depth]:>7.2f}"
        )
    if tile.get("monai_seconds"):
        rate = nominal["4"] / tile["monai_seconds"] / 1e9
        lines.append(
            f"{'MONAI L4':<12}{tile['monai_seconds']:>8.2f}{nominal['4'] / 1e9:>9.0f}"
            f"{nominal['4'] / 1e9:>10.0f}{rate:>9.1f}{rate / peak:>9.2f}{rate:>11.1f}"
            f"{seconds['4'] / tile['monai_seconds']:>7.2f}"
        )
    bf16 = tile.get("bf16") or {}
    if "seconds" in bf16:
        lines.append(
            f"(CPU bf16 autocast, module path, L4: {bf16['seconds']:.2f} s/tile, argmax agreement "
            f"with our fp32 {bf16['agree']:.5f}; measured only, never enabled by the engine)"
        )
    elif bf16:
        lines.append(f"(CPU bf16 autocast: {bf16['skipped']})")
    lines += [
        "",
        f"whole volume {shape}: {results['rounds']} fresh process(es) per configuration, best "
        "time kept; times include tiling and blending; GFLOP/s counts executed FLOPs",
        f"{'configuration':<16}{'s/volume':>9}{'GFLOP/s':>9}{'of peak':>9}{'peak RSS MB':>13}"
        f"{'vs MONAI':>10}{'vs our L4':>10}",
    ]
    rows = [("MONAI L4", "monai:4", nominal["4"])] + [
        (f"ours {_name(d)}", f"ours:{d}", executed[d]) for d in DEPTHS
    ]
    for name, key, flops in rows:
        took = _best(volume[key])
        rate = volume[key]["tiles"] * flops / took / 1e9
        lines.append(
            f"{name:<16}{took:>9.1f}{rate:>9.1f}{rate / peak:>9.2f}"
            f"{volume[key]['peak_rss_mb']:>13.0f}{monai / took:>10.2f}{ours4 / took:>10.2f}"
        )
    double = results["double"]
    growth = double["peak_rss_mb"] / volume["ours:4"]["peak_rss_mb"]
    lines += [
        "",
        f"memory, ours L4: {shape} -> {volume['ours:4']['peak_rss_mb']:.0f} MB peak RSS "
        f"({volume['ours:4']['baseline_rss_mb']:.0f} MB before the run); "
        f"{'x'.join(map(str, results['double_shape']))} (2x voxels, {double['tiles']} tiles) -> "
        f"{double['peak_rss_mb']:.0f} MB ({double['baseline_rss_mb']:.0f} MB before); "
        f"growth {growth:.2f}x",
        f"agreement, argmax ours L4 vs MONAI (same weights): {results['agree']:.6f} "
        f"({results['differing_voxels']} voxels differ)",
        f"default models (recommended depth, CPU, {args.threads} threads): "
        + format_models(results["models"]),
    ]
    extra_keys: list[str] = []
    if results.get("inference"):
        extra, extra_keys = executors_bench.report(results["inference"], args.threads)
        lines += extra
    speedups = {d: ours4 / _best(volume[f"ours:{d}"]) for d in ("1", "2", "3")}
    frac = executed["4"] / seconds["4"] / 1e9 / peak
    lines.append(
        f"speedup_vs_monai_L4={monai / ours4:.2f} speedup_L1={speedups['1']:.2f} "
        f"speedup_L2={speedups['2']:.2f} speedup_L3={speedups['3']:.2f} frac_peak={frac:.2f} "
        f"mem_growth_2x={growth:.2f} agree={results['agree']:.5f}"
        + "".join(" " + key for key in extra_keys)
    )
    return lines


def format_models(models: dict) -> str:
    if not models:
        return "skipped"
    parts = []
    for key, value in models.items():
        if isinstance(value, str):
            parts.append(f"{key}: {value}")
        else:
            size = "x".join(map(str, value.get("size_xyz", [])))
            parts.append(
                f"{key}: {value['seconds']:.1f} s at L{value.get('depth')} (input {size} x,y,z)"
            )
    return "; ".join(parts)


def main(argv: list[str]) -> int:
    args = parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    load_before = machine.load_average()
    log(f"bench: load average before {load_before}")
    with tempfile.TemporaryDirectory(prefix="unetpp-bench-") as tmp:
        results = measure(args, Path(tmp), log)
    for line in report(results, args, load_before, machine.load_average()):
        print(line, flush=True)
    return 0
