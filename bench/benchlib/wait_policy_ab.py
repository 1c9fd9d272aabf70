"""OpenMP wait policies (passive / spin) against each other and OpenVINO, one fresh process each.

``python -m benchlib.wait_policy_ab [--rounds 5] [--threads 2] [--variants passive,spin]
[--executors ours,openvino] [--tasks lung-nodule:30,liver:8] [--depths 1,2,3,4] [--managed]``
from ``bench/`` (``PYTHONPATH`` with ``../UNetPlusPlus``). The wait policy is fixed when OpenMP
starts, so every (variant, executor) runs in its own process, with the variant's variables set
before torch is imported (``runtime_env.CPU_RUNTIME_ENV`` or ``SPIN_RUNTIME_ENV``: libgomp's
300000 spins); with ``--managed`` through ``UNETPP_WAIT_POLICY`` and ``runtime_env.apply`` as
the CLI does, so ``spin_guard`` may drop a spinning process to one thread under load
(otherwise the variables count as the user's and the guard stays off). The processes run in
interleaved rounds (order rotated each round). Each process runs every shipped task's own tile
(the engine's executors, as ``executor_worker``) 3 times per depth untimed, then N times
(``task:N``) depth after depth, and prints one JSON line: the median wall ms and CPU ms
(``time.process_time``, all threads) per tile and depth. The driver prints those lines, then
the medians over rounds, OpenVINO / ours per variant (median of the rounds' ratios; > 1: ours
faster) and the load average before and after (session 12, issue 14).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from UNetPlusPlusLib.engine import runtime_env

from . import interleave

VARIANTS = {"passive": runtime_env.CPU_RUNTIME_ENV, "spin": runtime_env.SPIN_RUNTIME_ENV}
_CLEARED = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", runtime_env.MARK)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchlib.wait_policy_ab")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", default="passive,spin")
    parser.add_argument("--executors", default="ours,openvino")
    parser.add_argument("--tasks", default="lung-nodule:30,liver:8", help="task:tiles,...")
    parser.add_argument("--depths", default="1,2,3,4")
    parser.add_argument("--managed", action="store_true", help="UNETPP_WAIT_POLICY + apply()")
    parser.add_argument("--cache", default="/tmp/wait_policy_ab_graphs", help="OpenVINO graphs")
    parser.add_argument(
        "--worker", nargs=2, metavar=("VARIANT", "EXECUTOR"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    unknown = set(args.variants.split(",")) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variant(s) {sorted(unknown)}: use {sorted(VARIANTS)}")
    return args


def child_env(variant: str, managed: bool, threads: int) -> dict[str, str]:
    """The environment of one worker: ``variant``'s OpenMP settings (or the knob when
    ``managed``) and the thread count, nothing inherited from the caller's OpenMP choice."""
    env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    if managed:
        env[runtime_env.KNOB] = variant
    else:
        env.pop(runtime_env.KNOB, None)
        env.update(VARIANTS[variant])
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    return env


def worker(args: argparse.Namespace) -> dict:
    """One process: ``args.worker``'s executor on every task's tile; OpenMP is not loaded yet."""
    variant, executor = args.worker
    if args.managed:
        runtime_env.apply()
    import time

    import torch
    from UNetPlusPlusLib.engine import executors, spin_guard
    from UNetPlusPlusLib.engine.cpu_inference import reuse_buffers

    from .executor_worker import _shipped

    torch.set_num_threads(args.threads)
    depths = [int(d) for d in args.depths.split(",")]
    out: dict = {"variant": variant, "executor": executor, "threads": args.threads}
    out["policy"] = runtime_env.wait_policy() if args.managed else variant
    out["wall_ms"], out["cpu_ms"] = {}, {}
    tasks = [(task, int(count)) for task, count in (t.split(":") for t in args.tasks.split(","))]
    built = {task: _shipped(task, args.threads, depths) for task, _ in tasks}  # not inference
    with torch.inference_mode(), reuse_buffers():  # tensors: cpu_inference packs the weights
        for task, count in tasks:
            runner = executors.make_executor(
                executor,
                built[task]["model"],
                "cpu",
                args.threads,
                cache_dir=Path(args.cache) / task,
            )
            tile = built[task]["tile"]
            for depth in depths:
                for _ in range(3):
                    runner.run(tile, depth)
            wall: dict = {d: [] for d in depths}
            cpu: dict = {d: [] for d in depths}
            for _ in range(count):
                for depth in depths:
                    started, cpu_started = time.perf_counter(), time.process_time()
                    runner.run(tile, depth)
                    wall[depth].append(time.perf_counter() - started)
                    cpu[depth].append(time.process_time() - cpu_started)
            for name, samples in (("wall_ms", wall), ("cpu_ms", cpu)):
                out[name][task] = {
                    f"L{d}": round(statistics.median(v) * 1e3, 2) for d, v in samples.items()
                }
    out["openmp"] = spin_guard.report()
    return out


def run_process(args: argparse.Namespace, variant: str, executor: str) -> dict:
    """One fresh worker process; its JSON line (RuntimeError with its stderr if it fails)."""
    command = [sys.executable, "-m", "benchlib.wait_policy_ab", "--worker", variant, executor]
    for name in ("threads", "tasks", "depths", "cache"):
        command += [f"--{name}", str(getattr(args, name))]
    command += ["--managed"] if args.managed else []
    done = subprocess.run(
        command,
        env=child_env(variant, args.managed, args.threads),
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[1],
    )
    if done.returncode != 0:
        raise RuntimeError(f"{variant}/{executor} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summary(samples: dict, reference: str = "ours", other: str = "openvino") -> list[str]:
    """Table lines from {(variant, executor): [worker results, one a round]}: per tile and
    depth, each cell's median wall (CPU) ms over rounds, and ``other`` / ``reference`` per
    variant (the median of the per-round wall ratios; > 1: ``reference`` faster)."""
    cells = list(samples)
    walls: dict = {}
    cpus: dict = {}
    for cell in cells:
        for result in samples[cell]:
            for task, by_depth in result["wall_ms"].items():
                for depth, ms in by_depth.items():
                    walls.setdefault((task, depth), {}).setdefault(cell, []).append(ms)
                    cpu = result["cpu_ms"][task][depth]
                    cpus.setdefault((task, depth), {}).setdefault(cell, []).append(cpu)
    variants = list(dict.fromkeys(v for v, _ in cells))
    paired = [v for v in variants if (v, reference) in samples and (v, other) in samples]
    header = f"{'tile':<16}" + "".join(f"{v + '/' + e:>22}" for v, e in cells)
    header += "".join(f"{f'{other}/{reference} {v}':>22}" for v in paired)
    lines = ["ms per tile, wall (CPU), median over rounds", header]
    for key, by_cell in walls.items():
        row = f"{key[0] + ' ' + key[1]:<16}"
        for cell in cells:
            wall, cpu = statistics.median(by_cell[cell]), statistics.median(cpus[key][cell])
            row += f"{f'{wall:.2f} ({cpu:.1f})':>22}"
        for v in paired:
            ratios = [o / r for o, r in zip(by_cell[(v, other)], by_cell[(v, reference)])]
            row += f"{statistics.median(ratios):>22.3f}"
        lines.append(row)
    return lines


def load_average() -> str:
    """The 1, 5 and 15 min load averages (``machine.load_average`` without importing torch)."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)), flush=True)
        return 0
    print(f"load average before: {load_average()}", flush=True)
    cells = [(v, e) for v in args.variants.split(",") for e in args.executors.split(",")]

    def measure(cell: tuple) -> dict:
        result = run_process(args, *cell)
        print(json.dumps(result), flush=True)
        return result

    samples = interleave.collect(args.rounds, [cells], measure, rotate=True)
    for line in summary(samples):
        print(line)
    print(f"load average after: {load_average()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
