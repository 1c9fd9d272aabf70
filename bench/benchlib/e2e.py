"""End to end: ``unetpp segment`` as a user runs it, with the time split by stage.

Each case runs the real CLI in a fresh process (``python -m UNetPlusPlusLib.cli segment ...
--progress-json``) and stamps every JSON progress line as it arrives. The split:

- ``start``: interpreter start and imports, up to the first progress line;
- ``load``: reading the input file(s) and loading the model;
- ``preprocess``: crop, resampling onto the model grid, normalisation;
- ``infer``: the sliding window (tiles);
- ``postprocess``: resampling back to the input grid, argmax, largest component;
- ``write``: writing the .seg.nrrd, and the process exit.

Cases: ``liver_512``, a 512x512x300 CT made once from the LiTS volume 0 in ../shared/data
(its 65 slices of 5 mm resampled to 300 slices, 0.7 x 0.7 x 1.08 mm; kept in the user cache,
never in the repository); ``brain``, the first BraTS 2018 case; ``nodule``, a click at the centre
of an LIDC crop.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from . import default_models

STAGES = ("start", "load", "preprocess", "infer", "postprocess", "write")
LITS_CT = default_models.SHARED_DATA / "liver" / "lits-partial" / "liver_0_ct.nii.gz"


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "unetpp" / "bench"


def ct_512(slices: int = 300) -> Optional[Path]:
    """The 512x512x``slices`` CT (int16 HU, .nii.gz), made on first use; None without data."""
    path = cache_dir() / f"lits0_512x512x{slices}.nii.gz"
    if path.is_file():
        return path
    if not LITS_CT.is_file():
        return None
    import SimpleITK as sitk

    image = sitk.ReadImage(str(LITS_CT))
    size = list(image.GetSize())
    extent = image.GetSpacing()[2] * size[2]
    spacing = (*image.GetSpacing()[:2], extent / slices)
    resampler = sitk.ResampleImageFilter()
    resampler.SetReferenceImage(image)
    resampler.SetSize([size[0], size[1], slices])
    resampler.SetOutputSpacing(spacing)
    resampler.SetInterpolator(sitk.sitkLinear)
    resampler.SetDefaultPixelValue(-1024)
    out = sitk.Cast(resampler.Execute(image), sitk.sitkInt16)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".ct-", suffix=".nii.gz", dir=path.parent)
    os.close(handle)
    sitk.WriteImage(out, temporary, True)
    os.replace(temporary, path)  # concurrent makers each write their own file
    return path


def cases(which: tuple[str, ...]) -> dict[str, dict]:
    """CLI arguments per available case: {"liver_512": {"inputs": [...], "args": [...]}, ...}."""
    found: dict[str, dict] = {}
    models = default_models.installed_models()
    if "liver_512" in which and "liver" in models:
        ct = ct_512()
        if ct is not None:
            found["liver_512"] = {"inputs": [str(ct)], "args": ["--model", str(models["liver"])]}
    for key in ("brain", "nodule"):
        if key not in which or key not in models:
            continue
        job = default_models.typical_job(key, models[key], 1)
        if job is None:
            continue
        args = ["--model", str(models[key])]
        if "point" in job:
            args += ["--lps", "--point", *(repr(float(v)) for v in job["point"])]
        found[key] = {"inputs": job["images"], "args": args}
    return found


def row_name(case: str, depth: str) -> str:
    """A report row's name: the case, plus ``_Lk`` when a depth other than the model's was asked."""
    return case if depth == "rec" else f"{case}_L{depth}"


def with_depth(case: dict, depth: str) -> dict:
    """``case`` with ``--depth`` added unless ``depth`` is "rec" (the model's recommended one)."""
    return {**case, "args": case["args"] + (["--depth", depth] if depth != "rec" else [])}


def split_by_stage(stamps: dict[str, float], total: float) -> dict[str, float]:
    """Seconds per stage of ``STAGES`` from the time each stage's first progress line arrived
    (``stamps``, seconds from the start) and the ``total``; a stage without a line gets 0."""
    marks = [stamps.get(stage) for stage in STAGES[1:]] + [total]
    for index in range(len(marks) - 2, -1, -1):  # a missing stage ends where the next begins
        if marks[index] is None:
            marks[index] = marks[index + 1]
    split = {"start": marks[0]}
    for stage, begin, end in zip(STAGES[1:], marks[:-1], marks[1:]):
        split[stage] = end - begin
    return split


def run_case(case: dict, threads: int, env: dict, output: Optional[Path] = None) -> dict:
    """One end-to-end run in a fresh process: {"seconds": wall s, "cpu_s": its user + system
    CPU-seconds (all threads), "split": {stage: s}, "depth": k}. Writes the segmentation to
    ``output`` when given (else to a temporary file).
    Raises RuntimeError with the CLI's stderr when it exits with an error."""
    with tempfile.TemporaryDirectory(prefix="unetpp-e2e-") as tmp:
        command = [sys.executable, "-m", "UNetPlusPlusLib.cli", "segment", *case["inputs"]]
        command += [*case["args"], "--threads", str(threads), "--progress-json"]
        command += ["-o", str(output or Path(tmp) / "out.seg.nrrd")]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        first: dict[str, float] = {}
        result: dict = {}
        for line in process.stdout:
            now = time.perf_counter() - started
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if "stage" in event:
                first.setdefault(event["stage"], now)
            result = event.get("result", result)
        stderr = process.stderr.read()
        process.wait()
        total = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode != 0:
        raise RuntimeError(f"unetpp segment failed ({process.returncode}): {stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    split = split_by_stage(first, total)
    return {"seconds": total, "cpu_s": cpu, "split": split, "depth": result.get("depth")}


def format_split(result: dict) -> str:
    parts = ", ".join(f"{stage} {result['split'][stage]:.2f}" for stage in STAGES)
    cpu = f", cpu {result['cpu_s']:.2f} s" if "cpu_s" in result else ""  # warm: none
    return f"{result['seconds']:.2f} s at L{result['depth']} ({parts}){cpu}"


def main(argv: Optional[list[str]] = None) -> None:
    """``cd bench && python -m benchlib.e2e``: the split of chosen cases and depths, one fresh
    process per run, interleaved across ``--code`` trees (e.g. main's against a branch's), with
    the load average at each run; ``--busy 2`` adds ``load.competing_load(2)`` for the runs.
    ``--warm``: requests to one ``unetpp serve`` per tree instead (``warm.WarmServer``, as the
    Slicer module runs them), after one request per case that loads the model and volume; the
    server keeps one volume, so with several cases every switch reads the next one again (give
    one case per run to time requests on a held volume). ``--executors ours,fastest`` runs each
    tree once per executor (``UNETPP_EXECUTOR``). The order of the trees alternates per round; the
    last lines give each row's medians (total; preprocess + infer, where a cold ``fastest``
    pays its probe)."""
    import argparse
    import contextlib

    from UNetPlusPlusLib.engine import runtime_env

    from .load import competing_load

    parser = argparse.ArgumentParser(prog="python -m benchlib.e2e", description=main.__doc__)
    parser.add_argument("--cases", default="liver_512,brain,nodule")
    parser.add_argument("--depths", default="rec", help="rec (the model's), 1..4, comma-separated")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--busy", type=int, default=0, help="competing busy processes")
    parser.add_argument(
        "--code", default="", help="NAME=PATH,...: UNetPlusPlus folders to put on PYTHONPATH"
    )
    parser.add_argument("--warm", action="store_true", help="requests to one server per tree")
    parser.add_argument(
        "--executors", default="", help="NAME,...: UNETPP_EXECUTOR values, interleaved per tree"
    )
    parser.add_argument(
        "--own-cache",
        action="store_true",
        help="a graph cache and probe memory per tree (UNETPP_HOME under the system's temporary "
        "folder, kept between runs), so one tree's probe decisions never reach another's",
    )
    args = parser.parse_args(argv)
    code = dict(item.split("=", 1) for item in args.code.split(",") if item) or {"": ""}
    executors = [name for name in args.executors.split(",") if name] or [""]
    trees = {  # a tree per (code, executor): "branch" or "branch/ours"
        "/".join(part for part in (name, executor) if part): (path, executor)
        for name, path in code.items()
        for executor in executors
    }
    found = cases(tuple(args.cases.split(",")))
    busy = competing_load(args.busy) if args.busy else contextlib.nullcontext()
    envs = {}
    for tree, (path, executor) in trees.items():
        envs[tree] = runtime_env.child_env()
        envs[tree]["OMP_NUM_THREADS"] = str(args.threads)
        if path:
            envs[tree]["PYTHONPATH"] = str(Path(path).resolve())
        if executor:
            envs[tree]["UNETPP_EXECUTOR"] = executor
        if args.own_cache:
            safe = "".join(c if c.isalnum() else "-" for c in tree) or "default"
            envs[tree]["UNETPP_HOME"] = str(Path(tempfile.gettempdir()) / f"unetpp-e2e-{safe}")
    summary: dict = {}
    with contextlib.ExitStack() as stack:
        servers = {}
        if args.warm:
            from .warm import WarmServer

            for tree in trees:
                servers[tree] = stack.enter_context(WarmServer(envs[tree]))
                for case in found.values():  # loads the model, reads the volume
                    servers[tree].request(case, args.threads)
        stack.enter_context(busy)
        for round_ in range(args.rounds):
            for name, case in found.items():
                for depth in args.depths.split(","):
                    order = list(trees) if round_ % 2 == 0 else list(trees)[::-1]
                    for tree in order:
                        if args.warm:
                            result = servers[tree].request(case, args.threads, depth)
                        else:
                            result = run_case(with_depth(case, depth), args.threads, envs[tree])
                        load = os.getloadavg()[0]
                        key = (name, depth, tree)
                        summary.setdefault(key, []).append((result, load))
                        print(f"r{round_} {tree} {name} load {load:.2f}  {format_split(result)}",
                              flush=True)  # fmt: skip

    for (name, depth, tree), runs in summary.items():
        total = statistics.median(r["seconds"] for r, _ in runs)
        work = statistics.median(r["split"]["preprocess"] + r["split"]["infer"] for r, _ in runs)
        cpus = [r["cpu_s"] for r, _ in runs if "cpu_s" in r]
        cpu = f", cpu {statistics.median(cpus):.2f} s" if cpus else ""
        loads = [load for _, load in runs]
        print(f"median {name} L{depth} {tree}: {total:.2f} s{cpu}, preprocess + infer {work:.2f} s "
              f"({len(runs)} runs, load {min(loads):.1f}-{max(loads):.1f})")  # fmt: skip


if __name__ == "__main__":
    main()
