"""What the first ``unetpp segment`` after an install pays, unprepared and prepared.

Per round, in alternating order, each in a fresh ``UNETPP_HOME`` (an empty graph cache and
probe memory; the shipped models need no install):

- ``unprepared``: ``segment`` twice (the first run exports, compiles and probes OpenVINO's
  graph itself; the second finds them);
- ``prepared``: ``unetpp models prepare`` (timed: the cost moved out of the run), then
  ``segment`` twice;
- ``split``: one first run in this process's child with the engine's steps timed: the ONNX
  export, OpenVINO's import and compile, and the library's probe tiles (their wall time less
  export and compile).

Each ``segment`` is a fresh process (``benchlib.e2e.run_case``: wall time, CPU time, the split
by stage from the CLI's progress lines). On a shared machine compare the CPU seconds too: the
wall time follows the other programs' load. Default: the demo CT (``make demo``), liver model.

    python bench/first_run_cost.py [--rounds 3] [--threads 2] [--input PATH] [--task liver]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "UNetPlusPlus"))

SPLIT_KEYS = ("export", "ov_import", "compile", "library_tiles")


def _child_split(argv: list[str]) -> None:
    """``--child-split ARGS``: ``unetpp ARGS`` in this process with the first-run steps timed;
    prints ``SPLIT {json}`` on stderr."""
    times = dict.fromkeys(SPLIT_KEYS, 0.0)
    from UNetPlusPlusLib.engine import executor_backends, fastest, onnx_export

    def timed(owner, name, key, before=None):
        inner = getattr(owner, name)

        def wrapper(*args, **kwargs):
            if before:
                before()
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                times[key] += time.perf_counter() - started

        setattr(owner, name, wrapper)

    def import_openvino():
        started = time.perf_counter()
        import openvino  # noqa: F401

        times["ov_import"] += time.perf_counter() - started

    timed(onnx_export, "export_depth", "export")
    timed(executor_backends.OpenVinoExecutor, "_compile", "compile", import_openvino)
    timed(fastest.FastestExecutor, "_library_run", "library_tiles")
    from UNetPlusPlusLib.cli import main

    code = main(argv)
    times["library_tiles"] -= times["export"] + times["compile"] + times["ov_import"]
    print("SPLIT " + json.dumps(times), file=sys.stderr, flush=True)
    sys.stderr.flush()
    os._exit(code)


def _split_run(args, env: dict) -> dict:
    with tempfile.TemporaryDirectory(prefix="unetpp-first-") as tmp:
        command = [sys.executable, __file__, "--child-split", "segment", args.input]
        command += ["--task", args.task, "--threads", str(args.threads), "--quiet"]
        command += ["-o", str(Path(tmp) / "out.seg.nrrd")]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    lines = [line for line in done.stderr.splitlines() if line.startswith("SPLIT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(lines[-1][len("SPLIT ") :])


def _prepare(args, env: dict) -> float:
    command = [sys.executable, "-m", "UNetPlusPlusLib.cli", "models", "prepare", args.task]
    command += ["--threads", str(args.threads)]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    print("   " + done.stdout.strip().replace("\n", "\n   "), flush=True)
    return time.perf_counter() - started


def main() -> None:
    if sys.argv[1:2] == ["--child-split"]:
        _child_split(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--input", default=str(ROOT / "Resources/Examples/example_ct.nii.gz"))
    parser.add_argument("--task", default="liver")
    args = parser.parse_args()

    from benchlib.e2e import format_split, run_case
    from UNetPlusPlusLib.engine import runtime_env

    case = {"inputs": [args.input], "args": ["--task", args.task]}
    rows: dict[str, list[float]] = {}
    splits: list[dict] = []
    kinds = ["unprepared", "prepared", "split"]
    for round_ in range(args.rounds):
        for kind in kinds[round_ % 3 :] + kinds[: round_ % 3]:
            with tempfile.TemporaryDirectory(prefix="unetpp-home-") as home:
                env = runtime_env.child_env()
                env.update(UNETPP_HOME=home, OMP_NUM_THREADS=str(args.threads))
                env["PYTHONPATH"] = str(ROOT / "UNetPlusPlus")
                env.pop("UNETPP_EXECUTOR", None)
                load = os.getloadavg()[0]
                if kind == "split":
                    split = _split_run(args, env)
                    splits.append(split)
                    shown = ", ".join(f"{k} {v:.2f}" for k, v in split.items())
                    print(f"r{round_} split (load {load:.1f}): {shown}", flush=True)
                    continue
                if kind == "prepared":
                    rows.setdefault("prepare", []).append(_prepare(args, env))
                    print(f"r{round_} prepare: {rows['prepare'][-1]:.2f} s", flush=True)
                for run in ("first", "second"):
                    result = run_case(case, args.threads, env)
                    rows.setdefault(f"{kind} {run}", []).append(result["seconds"])
                    rows.setdefault(f"{kind} {run} infer", []).append(result["split"]["infer"])
                    rows.setdefault(f"{kind} {run} cpu", []).append(result["cpu_s"])
                    print(f"r{round_} {kind} {run} (load {load:.1f}): {format_split(result)}",
                          flush=True)  # fmt: skip
    print()
    for key, values in rows.items():
        shown = ", ".join(f"{v:.2f}" for v in values)
        print(f"{key:<26} median {statistics.median(values):6.2f} s  ({shown})")
    for key in SPLIT_KEYS:
        values = [s[key] for s in splits]
        if values:
            shown = ", ".join(f"{v:.2f}" for v in values)
            print(f"split {key:<20} median {statistics.median(values):6.2f} s  ({shown})")


if __name__ == "__main__":
    main()
