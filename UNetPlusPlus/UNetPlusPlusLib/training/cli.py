"""``unetpp train``: train or fine-tune a UNet++ on a folder of Slicer exports or a dataset.json.

Also runs as ``python -m UNetPlusPlusLib.training.cli DATA_DIR -o OUT_DIR ...`` and under
``torchrun --nproc_per_node N -m UNetPlusPlusLib.training.cli ...``.

Settings are taken, first match wins, from the command line, the checkpoint and plan.json
(``--resume``), the dataset description, the ``--init`` model, and the training plan (spacing,
tile, features, batch, schedule, precision: ``planner``) or the defaults. See docs/TRAINING.md.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from ..device_check import check_device_exists
from ..engine import runtime_env
from ..errors import UNetPlusPlusError
from .train_args import add_train_arguments

# Defaults of the settings that the checkpoint, dataset.json or --init may also give (the plan
# chooses spacing, tile, features, batch size, epochs, iterations per epoch and precision).
_DEFAULTS: dict[str, Any] = {  # the learning rate's: plan_setup.learning_rate_choice
    "weight_decay": 3e-5,
    "schedule": "poly",
    "seed": 0,
    "foreground_fraction": 0.33,
    "val_fraction": 0.2,
    "depth_tolerance": 0.01,
    "overlap": 0.25,
    "weights_dtype": "float32",
    "norm": "instance",
    "train_fraction": 1.0,
}


def _pick(name: str, *sources: Any) -> Any:
    for value in sources:
        if value is not None:
            return value
    return _DEFAULTS.get(name)


def _load_init(source: Optional[str]):
    """The --init model: a model.json or package folder, else a task or model name that the
    registry finds (``liver``), with its weights' sha256 and training contract checked before
    the dataset is read. Raises UNetPlusPlusError naming the available models, or the edit."""
    if not source:
        return None
    from ..engine import registry
    from ..engine.manifest import MANIFEST_FILENAME, ModelManifest
    from ..engine.manifest_weights import check_weights_contract

    path = Path(source).expanduser()
    if path.is_file() or (path / MANIFEST_FILENAME).is_file():
        manifest = ModelManifest.load(path)
    else:
        manifest = registry.find_model(source)
    check_weights_contract(manifest)
    return manifest


def build_dataset(args: argparse.Namespace, init=None):
    """The dataset description from --dataset-json or the Slicer-export folder."""
    from ..engine.manifest import ChannelSpec
    from .dataset_json import load_dataset_json
    from .dataset_labels import select_labels
    from .dataset_slicer import describe_slicer_export, export_images
    from .init_match import channels_modality, check_init_fit

    init_channels, notes = None, []
    if init is not None:
        init_channels = [
            ChannelSpec(c.name, c.modality, dict(c.normalization)) for c in init.channels
        ]
    if args.dataset_json:
        dataset = load_dataset_json(args.dataset_json, args.data_dir)
        if args.labels:
            dataset = select_labels(dataset, args.labels)
        if init_channels is not None:
            own = list(dataset.channels)
            where = ("the dataset description declares", "the dataset description declares")
            notes = check_init_fit(init, dataset, args, own, channels_modality(own), where)
            dataset.channels = init_channels
    else:
        channels = init_channels
        if channels is None and args.channels:
            channels = [
                ChannelSpec(
                    name,
                    "CT" if args.modality == "CT" else "MR",
                    {"kind": "ct", "window": list(args.ct_window or (-1000.0, 1000.0))}
                    if args.modality == "CT"
                    else {"kind": "mr"},
                )
                for name in args.channels
            ]
            if args.modality == "auto":
                channels = None  # guessed below from a sample of the cases
        dataset = describe_slicer_export(
            args.data_dir,
            labels=args.labels,
            channels=channels,
            modality=args.modality,
            ct_window=args.ct_window,
        )
        if channels is None and args.channels:
            dataset = _reorder_channels(dataset, args.channels)
        if init is not None:  # what the cases hold, whatever the parent's channels say
            guess = args.modality == "auto" and len(init.channels) == 1
            suffixes, guessed = export_images(args.data_dir, modality=guess)
            modality = guessed if args.modality == "auto" else args.modality
            where = ("the first case has", "the cases look like" if guess else "--modality says")
            notes = check_init_fit(init, dataset, args, suffixes, modality, where)
    dataset.notes = [*notes, *dataset.notes]  # logged as warnings with the dataset check's
    if args.patient_regex:
        dataset.patient_regex = args.patient_regex
    if args.val_cases:
        dataset.validation_cases = list(args.val_cases)
    return dataset


def _reorder_channels(dataset, names: Sequence[str]):
    by_name = {c.name.lower(): c for c in dataset.channels}
    missing = [n for n in names if n.lower() not in by_name]
    if missing:
        raise UNetPlusPlusError(
            f"--channels names {', '.join(missing)}, but the first case has the channels "
            f"{', '.join(c.name for c in dataset.channels)}."
        )
    dataset.channels = [by_name[n.lower()] for n in names]
    dataset.sources[0].images = [c.name for c in dataset.channels]
    return dataset


def _command_line(args: argparse.Namespace) -> str:
    words = ["unetpp", "train", str(args.data_dir), "-o", str(args.out_dir)]
    for key, value in sorted(vars(args).items()):
        if key in ("data_dir", "out_dir", "handler", "command", "debug", "import_error"):
            continue
        if value is None or value is False or callable(value):
            continue
        flag = "--" + key.replace("_", "-")
        if key == "tile":
            flag = "--tile"
        if value is True:
            words.append(flag)
        elif isinstance(value, (list, tuple)):
            joined = key in ("labels", "channels", "val_cases")
            words += [flag, ",".join(map(str, value))] if joined else [flag, *map(str, value)]
        else:
            words += [flag, str(value)]
    return " ".join(shlex.quote(w) for w in words)


def build_config(
    args: argparse.Namespace, dataset, init=None, plan=None, resume_state: Optional[dict] = None
):
    """The run's TrainConfig: command line, checkpoint, dataset, init model, plan, defaults.
    Records the learning rate and its origin in ``plan`` (a new run's, or a resumed plan that
    predates it). ``resume_state``: the checkpoint's JSON part when the caller has read it
    (``--resume``; else it is read here). Raises UNetPlusPlusError for a pre-plan checkpoint
    lacking a setting."""
    from .checkpoint import read_checkpoint_state
    from .dataset import find_cases
    from .dataset_images import median_spacing
    from .trainer import TrainConfig

    saved: dict = {}
    if args.resume:
        state = resume_state
        if state is None:
            state = read_checkpoint_state(Path(args.out_dir))
        saved = state.get("config", {})
    training = dataset.training or {}

    def pick(name: str, cli: Any, init_value: Any = None) -> Any:
        return _pick(name, cli, saved.get(name), training.get(name), init_value)

    if plan is None:  # a checkpoint of a run before plans: its own settings
        from .plan_setup import collect_overrides

        plan_values: dict = {}
        for key, (value, _source) in collect_overrides(args, dataset, init, saved).items():
            plan_values[key] = value
        if "spacing" not in plan_values:
            plan_values["spacing"] = median_spacing(find_cases(dataset))
        missing = {"tile_size", "features", "batch_size", "iterations_per_epoch", "epochs"}
        if missing - set(plan_values):
            raise UNetPlusPlusError(
                f"--resume: the checkpoint in {args.out_dir} has no plan.json and lacks "
                f"{', '.join(sorted(missing - set(plan_values)))}; give them on the command line."
            )
    else:
        plan_values = {
            "spacing": plan.spacing,
            "tile_size": plan.tile_size,
            "features": plan.features,
            "batch_size": plan.batch_size,
            "iterations_per_epoch": plan.iterations_per_epoch,
            "epochs": plan.epochs,
            "val_every": plan.val_every,
            "precision": plan.precision,
        }
    norm = pick("norm", args.norm, init.network.get("norm") if init else None)
    from .plan_setup import learning_rate_choice

    lr, lr_source, lr_reason = learning_rate_choice(args, saved, training, init)
    if plan is not None and (not args.resume or plan.lr is None):  # a resumed plan keeps its own
        plan.set_learning_rate(lr, lr_source, lr_reason)
    return TrainConfig(
        out_dir=str(args.out_dir),
        spacing=tuple(float(s) for s in plan_values["spacing"]),
        tile_size=tuple(int(t) for t in plan_values["tile_size"]),
        features=tuple(int(f) for f in plan_values["features"]),
        norm=norm,
        epochs=int(plan_values["epochs"] or 0),
        iterations_per_epoch=int(plan_values["iterations_per_epoch"] or 0),
        batch_size=int(plan_values["batch_size"]),
        lr=lr,
        weight_decay=pick("weight_decay", args.weight_decay),
        schedule=pick("schedule", args.schedule),
        seed=pick("seed", args.seed),
        device=args.device,
        amp=not args.no_amp,
        foreground_fraction=pick("foreground_fraction", args.foreground_fraction),
        augment=bool(saved.get("augment", training.get("augment", True))) and not args.no_augment,
        val_fraction=pick("val_fraction", args.val_fraction),
        val_every=int(plan_values.get("val_every") or 1),
        max_cases=pick("max_cases", args.max_cases),
        max_val_cases=pick("max_val_cases", args.max_val_cases),
        train_fraction=pick("train_fraction", args.train_fraction),
        depth_tolerance=pick("depth_tolerance", args.depth_tolerance),
        overlap=pick("overlap", args.overlap, init.overlap if init else None),
        weights_dtype=pick("weights_dtype", args.weights_dtype),
        threads=args.threads,
        cache_dir=args.cache_dir or saved.get("cache_dir"),
        name=args.name or saved.get("name") or _default_name(dataset, init),
        task=args.task or saved.get("task") or _default_task(dataset, init),
        init=str(init.path) if init is not None and init.path else args.init,
        command=_command_line(args),
        progress_bar=not args.no_progress,
        precision=str(plan_values.get("precision") or "fp32"),
    )


def _default_task(dataset, init) -> str:
    """A fine-tuned model's default task: the parent's when it learns the parent's labels, else
    the dataset's (the liver model fine-tuned on nodules was listed under the liver task)."""
    if init is not None and [label.name.lower() for label in init.labels] == [
        label.name.lower() for label in dataset.labels
    ]:
        return init.task
    return dataset.task


def _default_name(dataset, init) -> str:
    """A fine-tuned model's default name: ``<parent>-ft-<dataset>``, never the parent's own."""
    return f"{init.name}-ft-{dataset.name}" if init is not None else dataset.name


def _check_data_folder(data_dir: str) -> None:
    """Raise UNetPlusPlusError when DATA_DIR is missing or a file (the dataset readers say the
    same later; said here first, before the device check and torch's import)."""
    path = Path(data_dir)
    if path.is_file():
        raise UNetPlusPlusError(f"Data folder {path} is a file; give the folder with the cases.")
    if not path.is_dir():
        raise UNetPlusPlusError(f"Data folder {path} does not exist.")


def run_train(args: argparse.Namespace) -> int:
    """Run ``unetpp train``; returns the exit status (0). User errors raise UNetPlusPlusError."""
    started = time.monotonic()
    # Idle OpenMP threads sleep instead of spinning, whatever the load at the start: on a busy
    # or shared CPU, spinning threads made training steps 2x slower here, and a training run
    # lasts long enough for the load to change under it (engine/runtime_env.py).
    runtime_env.prefer_passive()
    if args.resume and args.plan_only:  # the resumed run trained on, ignoring it (tester 16)
        raise UNetPlusPlusError(
            "--plan-only plans a new run, and --resume continues the plan in the run's "
            "plan.json without planning again (it trained, before); give one of them."
        )
    if getattr(args, "accept_changed_cases", False) and not args.resume:
        raise UNetPlusPlusError(
            "--accept-changed-cases only applies to --resume (a new run reads the cases as "
            "they are); leave it out, or add --resume."
        )
    _check_data_folder(args.data_dir)  # the commonest slip, named before any other
    check_device_exists(args.device)  # a missing GPU before the data is read; no torch for "gpu0"
    from .dataset import find_cases  # these import torch
    from .dataset_check import check_dataset
    from .grid_check import check_case_grids
    from .output_guard import (
        check_cache_folder,
        check_output_folder,
        check_outside_dataset,
        remove_on_failure,
        write_failures_as_errors,
    )
    from .trainer import Trainer

    check_outside_dataset(args.data_dir, args.out_dir, args.cache_dir)  # before any write
    check_output_folder(args.out_dir, args.resume, getattr(args, "overwrite", False))
    check_cache_folder(args.cache_dir)
    resume_state: Optional[dict] = None
    if args.resume:  # read once (its tensor files are hashed) and passed on
        from .checkpoint import read_checkpoint_state
        from .resume_checks import check_epochs_left

        resume_state = read_checkpoint_state(Path(args.out_dir))
        check_epochs_left(resume_state, Path(args.out_dir), args.epochs)  # before the dataset

    init = _load_init(args.init)
    from .option_checks import check_tile_and_norm

    saved = (resume_state or {}).get("config") or {}
    check_tile_and_norm(args, init, saved)  # before any case is read (the fingerprint's)
    dataset = build_dataset(args, init)
    check_tile_and_norm(args, init, saved, dataset)  # a dataset.json's tile and norm
    from .plan_setup import check_step_before_reading

    check_step_before_reading(args, dataset, init)  # a given batch and tile, or a resumed plan
    # every dataset problem at once, before anything is written (issue 9)
    dataset.notes = check_dataset(
        dataset,
        args.max_cases,
        init,
        channel_check=not getattr(args, "no_channel_check", False),
        strict_labels=getattr(args, "strict_labels", False),
    )
    if args.threads:
        import torch

        torch.set_num_threads(int(args.threads))
    from .plan_setup import make_plan

    with remove_on_failure(args.out_dir), write_failures_as_errors(args.out_dir):
        plan = make_plan(args, dataset, init)
        config = build_config(args, dataset, init, plan, resume_state)
        # a case whose model grid cannot fit in memory, before any preprocessing (grid_check.py)
        check_case_grids(dataset, find_cases(dataset)[: args.max_cases or None], config.spacing)
        trainer = Trainer(
            dataset, config, resume=args.resume, init_manifest=init, plan=plan, started=started,
            plan_only=args.plan_only, session_budget_s=getattr(args, "session_budget_s", None),
            accept_changed_cases=getattr(args, "accept_changed_cases", False),
            resume_state=resume_state,
        )  # fmt: skip
        if getattr(args, "progress_json", False):
            from .progress import EpochReporter

            trainer.on_epoch = EpochReporter()
        if getattr(args, "cancel_file", None):
            from ..cancel import CancelFile

            trainer.should_stop = CancelFile(args.cancel_file)
        manifest = trainer.run()
    prepare_s = None
    if manifest is not None and not args.plan_only and not getattr(args, "no_prepare", False):
        from ..cli_prepare import prepare_trained  # its first segmentation pays no export

        prepare_s = prepare_trained(args.out_dir)
    if getattr(args, "progress_json", False) and manifest is not None:
        from .progress import emit

        result = {
            "model_dir": str(args.out_dir),
            "name": manifest.name,
            "task": manifest.task,
            "recommended_depth": manifest.recommended_depth,
        }
        if prepare_s is not None:
            result["prepare_s"] = round(prepare_s, 1)
        emit({"result": result})
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m UNetPlusPlusLib.training.cli``: errors print as one line, exit status 2."""
    parser = argparse.ArgumentParser(
        prog="unetpp train", description="Train or fine-tune a 3D UNet++ (Zhou et al., 2019)."
    )
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    if argv is None:  # run as a program: the process ends with the run
        from ..engine.glibc_malloc import keep_freed_buffers

        keep_freed_buffers()
    try:
        return run_train(args)
    except UNetPlusPlusError as error:
        if getattr(args, "progress_json", False):
            from .progress import emit

            emit({"error": str(error)})
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
