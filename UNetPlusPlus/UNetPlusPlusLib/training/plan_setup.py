"""From ``unetpp train`` options to a plan: which settings are fixed (and by what), the cached
fingerprint, the device, and the budget; or, on ``--resume``, the run's plan.json."""

from __future__ import annotations

import argparse
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ..errors import UNetPlusPlusError

if TYPE_CHECKING:
    from ..engine.manifest import ModelManifest
    from .dataset_types import DatasetDescription

_OPTION_OF = {
    "spacing": "--spacing",
    "tile_size": "--tile",
    "features": "--features",
    "batch_size": "--batch-size",
    "iterations_per_epoch": "--iterations-per-epoch",
    "epochs": "--epochs",
    "val_every": "--val-every",
    "precision": "--precision",
}

#: AdamW learning rate from scratch (``--lr``'s default).
SCRATCH_LR = 3e-4
#: ``--init`` without an explicit learning rate (``--lr``, the checkpoint's, dataset.json's):
#: this share of the --init model's own rate (its model.json ``training.lr``, else ``--lr`` in
#: its ``training.command``), or of :data:`SCRATCH_LR` when its manifest records neither; shown
#: in the plan and recorded in plan.json. Continuing the shipped nodule model at half its rate
#: improved it (issue 11, docs/MODELS.md).
FINE_TUNE_LR_FACTOR = 0.5
_SHARE_WORDS = {0.5: "half", 0.25: "a quarter of"}


def parent_learning_rate(init) -> Optional[tuple[float, str]]:
    """The rate the --init model ``init`` (ModelManifest) was trained with and where its
    manifest records it: ``training.lr``, else ``--lr`` in ``training.command``; None when
    neither gives a finite positive number."""
    training = getattr(init, "training", None) or {}
    found: list[tuple[object, str]] = [(training.get("lr"), "training.lr")]
    command = training.get("command")
    if isinstance(command, str):
        match = re.search(r"(?:^|\s)--lr(?:=|\s+)(\S+)", command)
        found.append((match.group(1) if match else None, "--lr in training.command"))
    for value, where in found:
        try:
            rate = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if math.isfinite(rate) and rate > 0 and not isinstance(value, bool):
            return rate, where
    return None


def learning_rate_choice(
    args: argparse.Namespace, saved: dict, training: dict, init=None
) -> tuple[float, Optional[str], str]:
    """The run's AdamW learning rate: ``(lr, where it came from, why)``; the source is None for a
    default: the scratch default, or with ``--init`` :data:`FINE_TUNE_LR_FACTOR` of the parent's
    own rate (:func:`parent_learning_rate`), else of the scratch default. First match wins:
    ``--lr``, the checkpoint (``--resume``: a run keeps the rate it started with, also one
    started before the fine-tuning default), dataset.json's ``training.lr``."""
    for value, source in (
        (args.lr, "--lr"),
        (saved.get("lr"), "the checkpoint"),
        (training.get("lr"), "dataset.json"),
    ):
        if value is not None:
            return float(value), source, ""
    scratch = SCRATCH_LR
    if init is None:
        return scratch, None, "the default, from scratch"
    share = _SHARE_WORDS.get(FINE_TUNE_LR_FACTOR, f"{FINE_TUNE_LR_FACTOR:g} x")
    parent = parent_learning_rate(init)
    if parent is not None:
        rate, where = parent
        name = getattr(init, "name", "the --init model")
        reason = f"fine-tuning: {share} the rate of {name} ({rate:g}, its model.json {where})"
        return rate * FINE_TUNE_LR_FACTOR, None, reason
    reason = f"fine-tuning: {share} the scratch rate ({scratch:g}), the --init model records none"
    return scratch * FINE_TUNE_LR_FACTOR, None, reason


def collect_overrides(args: argparse.Namespace, dataset, init=None, saved=None) -> dict:
    """Planned settings fixed elsewhere: field -> (value, where from), first match wins:
    the command line, the checkpoint (``saved`` config), dataset.json, the --init model. With
    ``--time-budget`` the dataset's schedule (epochs, iterations, validation interval) yields."""
    saved = saved or {}
    training = dataset.training or {}
    init_values = {}
    if init is not None:
        init_values = {
            "spacing": init.spacing,
            "tile_size": init.tile_size,
            "features": init.network.get("features"),
        }
    precision = None if args.precision == "auto" else args.precision
    if args.no_amp:
        precision = "fp32"
    cli_values = {
        "spacing": args.spacing,
        "tile_size": args.tile,
        "features": args.features,
        "batch_size": args.batch_size,
        "iterations_per_epoch": args.iterations_per_epoch,
        "epochs": args.epochs,
        "val_every": args.val_every,
        "precision": precision,
    }
    dataset_values = {
        "spacing": dataset.spacing,
        "tile_size": dataset.tile_size,
        "features": dataset.features,
        **{k: training.get(k) for k in ("batch_size", "iterations_per_epoch", "epochs")},
        "val_every": training.get("val_every"),
    }
    if getattr(args, "time_budget", None):  # a budget on the command line beats the dataset's
        for key in ("iterations_per_epoch", "epochs", "val_every"):  # schedule defaults
            dataset_values[key] = None
    out: dict = {}
    for key, option in _OPTION_OF.items():
        for value, source in (
            (cli_values.get(key), "--no-amp" if key == "precision" and args.no_amp else option),
            (saved.get(key), "the checkpoint"),
            (dataset_values.get(key), "dataset.json"),
            (init_values.get(key), "the --init model"),
        ):
            if value is not None:
                out[key] = (value, source)
                break
    return out


#: ``unetpp train`` options fixed by a run's plan.json: (argument, plan field, option).
_PLAN_FIXED = (
    ("spacing", "spacing", "--spacing"),
    ("tile", "tile_size", "--tile"),
    ("features", "features", "--features"),
    ("batch_size", "batch_size", "--batch-size"),
    ("iterations_per_epoch", "iterations_per_epoch", "--iterations-per-epoch"),
)


def _refuse_changed_plan(args: argparse.Namespace, plan) -> None:
    """On ``--resume``, refuse an option that differs from the run's plan.json: the plan is
    kept, so the value would be ignored while model.json's command recorded it. Raises
    UNetPlusPlusError."""
    for name, field_name, option in _PLAN_FIXED:
        given = getattr(args, name, None)
        if given is None:
            continue
        planned = getattr(plan, field_name)
        same = (
            [float(v) for v in given] == [float(v) for v in planned]
            if isinstance(given, (list, tuple))
            else float(given) == float(planned)
        )
        if not same:
            shown = (
                " ".join(str(v) for v in planned) if isinstance(planned, (list, tuple)) else planned
            )
            raise UNetPlusPlusError(
                f"--resume: {option} is {shown} in this run's plan.json; resume with the same "
                "settings (only --epochs may grow), or start a new run with --overwrite."
            )


def _device_info(args: argparse.Namespace):
    """The planner's DeviceInfo of ``--device`` with the threads the run uses."""
    from ..engine.devices import physical_core_count
    from .distributed import resolve_training_device
    from .planner import detect_device

    device = resolve_training_device(args.device, int(os.environ.get("LOCAL_RANK", 0)))
    import torch

    threads = args.threads or (torch.get_num_threads() if device.type == "cpu" else 1)
    threads = min(threads, physical_core_count()) if device.type == "cpu" else threads
    return detect_device(device, threads)


def _step_check(dataset, info, memory_bytes: Optional[int], resumed: bool = False):
    """``check(plan)``: ``step_memory.fit_batch`` of a plan on the device ``info`` (DeviceInfo)
    with ``memory_bytes`` (default: the device's, ``step_memory.available_bytes``);
    ``resumed``: a ``--resume``'s plan, at its settled precision, refused if it does not fit."""
    from .step_memory import available_bytes, fit_batch

    # torchrun on a CPU: the machine's memory is shared by its local ranks, each with a step
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if info.kind == "cpu" else 1
    if memory_bytes is None:
        memory_bytes = available_bytes(info.kind, info.memory_gb, processes)
    channels, classes = len(dataset.channels), len(dataset.labels) + 1

    def check(plan) -> None:
        # "auto" is autocast on CUDA; on a CPU it may stay float32 (the calibration decides);
        # autocast only where steps.autocast_dtype applies it: amp on CUDA, bf16 on a CPU (amp
        # given on a CPU trains in float32, with a warning, and was estimated as autocast)
        cuda = info.kind == "cuda"
        settled = resumed or "precision" in plan.sources
        given = plan.precision if settled else ("amp" if cuda else "fp32")
        precision = given if given == ("amp" if cuda else "bf16") else "fp32"
        holder = "this GPU" if cuda else "this machine"
        if processes > 1:
            holder = f"each of the {processes} training processes on this machine"
        fit_batch(plan, channels, classes, memory_bytes, precision, holder, resumed)

    return check


def _check_given_step(overrides: dict, info, step_fits) -> None:
    """``step_fits`` (:func:`_step_check`) of the step that a tile and a batch both given
    (``overrides``, :func:`collect_overrides`) make, with the given or planned features on the
    device ``info``; nothing when either is left to the plan (it needs the cases)."""
    from .planner import Plan, planned_features

    if "tile_size" not in overrides or "batch_size" not in overrides:
        return
    features = overrides.get("features", (planned_features(info)[0], "plan"))[0]
    given = Plan(
        spacing=(1.0, 1.0, 1.0),
        tile_size=tuple(int(v) for v in overrides["tile_size"][0]),  # type: ignore[arg-type]
        features=tuple(int(v) for v in features),
        batch_size=int(overrides["batch_size"][0]),
        precision=overrides.get("precision", ("fp32", ""))[0],
        sources={k: overrides[k][1]
                 for k in ("tile_size", "batch_size", "precision", "features")
                 if k in overrides},
    )  # fmt: skip
    step_fits(given)


def check_step_before_reading(
    args: argparse.Namespace,
    dataset: DatasetDescription,
    init: Optional[ModelManifest] = None,
    memory_bytes: Optional[int] = None,
) -> None:
    """The memory check of a training step that needs no case (``step_memory.fit_batch``): a
    resumed run's plan.json, or a new run's given tile and batch; called after the dataset is
    described and before its check reads every case. :func:`make_plan` checks again (a
    planned tile needs the fingerprint). Raises UNetPlusPlusError as :func:`make_plan` does."""
    from .planner import Plan

    info = _device_info(args)
    if args.resume:
        plan = Plan.load(Path(args.out_dir))
        if plan is not None:
            _step_check(dataset, info, memory_bytes, resumed=True)(plan)
        return
    overrides = collect_overrides(args, dataset, init)
    _check_given_step(overrides, info, _step_check(dataset, info, memory_bytes))


def make_plan(
    args: argparse.Namespace, dataset, init=None, log=print, memory_bytes: Optional[int] = None
):
    """The plan of a new run: fingerprint (cached) + device + overrides; the schedule is fitted
    by the Trainer after timing a few steps. On ``--resume`` the run's plan.json, unchanged
    (only --epochs may grow); None for a checkpoint written before plans existed.

    One training step of the plan must fit in ``memory_bytes`` (default: the device's,
    ``step_memory.available_bytes``): a planned batch is reduced, a given batch or tile that
    does not fit raises UNetPlusPlusError before any preprocessing (``step_memory.fit_batch``),
    before the cases are read when both are given. A resumed plan gets the same check, on
    this machine, and is refused when its step does not fit (its batch cannot change)."""
    from .dataset import find_cases
    from .fingerprint import dataset_fingerprint
    from .planner import Plan, parse_duration, plan_geometry

    out_dir = Path(args.out_dir)
    budget = parse_duration(args.time_budget) if args.time_budget else None
    if args.resume:
        plan = Plan.load(out_dir)
        if plan is None:
            return None
        _refuse_changed_plan(args, plan)
        if budget is not None:  # on resume: this session's limit; the plan stays as it is
            args.session_budget_s = budget
        if args.epochs is not None and args.epochs != plan.epochs:
            plan.epochs = int(args.epochs)
            plan.sources["epochs"] = "--epochs (on resume)"
        # this machine may have less memory than the one that planned (or ran) the run
        _step_check(dataset, _device_info(args), memory_bytes, resumed=True)(plan)
        return plan
    overrides = collect_overrides(args, dataset, init)
    info = _device_info(args)
    step_fits = _step_check(dataset, info, memory_bytes)
    _check_given_step(overrides, info, step_fits)
    cases = find_cases(dataset)
    if args.max_cases:
        cases = cases[: args.max_cases]
    cache_dir = Path(args.cache_dir) if args.cache_dir else out_dir / "cache"
    fingerprint = dataset_fingerprint(dataset, cases, cache_dir, log=log)
    plan = plan_geometry(fingerprint, info, overrides)
    step_fits(plan)
    plan.budget_s = budget
    plan.budget_given = budget is not None
    return plan
