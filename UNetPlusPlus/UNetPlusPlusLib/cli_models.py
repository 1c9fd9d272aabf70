"""`unetpp models list | info | show | install | remove | verify | prepare`: the packages the
registry finds (no torch, but for `verify`, `prepare` and the preparation after `install`)."""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

from .cli_prepare import add_prepare_parser, prepare_after_install, run_prepare
from .errors import UNetPlusPlusError


def run_models(args: argparse.Namespace, progress) -> dict:
    """List, show or install model packages; an empty list is an error naming where it looked."""
    from .engine import registry
    from .engine.weights_status import weights_problem

    if args.models_command == "install":
        from .download_progress import DownloadProgress

        shown = DownloadProgress(quiet=args.quiet)  # a URL's download; nothing for a folder
        before = task_picks(registry)
        try:
            manifest = registry.install_model(args.source, args.sha256, progress=shown)
        finally:
            shown.close()
        print(f"installed {manifest.name} ({manifest.task}) into {Path(manifest.path).parent}")
        for warning in install_warnings(registry, manifest, before):
            warnings.warn(warning, UserWarning, stacklevel=2)
        if not args.no_prepare:
            prepare_after_install(manifest)
        return {"installed": manifest.name}
    if args.models_command == "prepare":
        return run_prepare(args.names, args.threads, args.force)
    if args.models_command == "remove":
        return _remove(args.name)
    if args.models_command == "info":
        manifest = registry.find_model(args.name)
        print(json.dumps(manifest.to_dict(), indent=2))
        return {}
    if args.models_command == "show":
        from .model_summary import show_lines

        print("\n".join(show_lines(registry.find_model(args.name))))
        return {}
    if args.models_command == "verify":
        return _verify(registry, args.names)
    models = registry.listed_models()
    roles = model_roles(registry, models)
    for manifest in models:
        parent = registry.fine_tuned_from(manifest)
        origin = f", fine-tuned from {parent}" if parent else ""
        role = roles.get(Path(manifest.path).parent, "")
        print(f"{manifest.task}: {manifest.name}  ({Path(manifest.path).parent}{origin}){role}")
        problem = weights_problem(manifest)  # no torch: sha256 and finite values
        print(f"  status: {'broken: ' + problem if problem else 'ok'}")
        print(
            f"  inputs: {', '.join(c.name for c in manifest.channels)}; "
            f"labels: {', '.join(label.name for label in manifest.labels)}"
        )
        print(
            "  trainer's validation Dice (model grid, before post-processing; the model card "
            "and `unetpp models show` give more):"
        )
        for depth in [*manifest.depths, "ensemble"]:
            print("  " + describe_depth(manifest, depth))
    return {}


def model_roles(registry, models: list) -> dict[Path, str]:
    """A package's folder -> the mark `models list` puts after it when a task has several
    models or a name two packages: " [runs for --task T]" on the one ``--task T`` picks,
    " [shadowed by FOLDER]" on a package whose name an earlier one takes (two "liver:
    liver-ct" lines did not say which one runs; tester 20)."""
    shadowed = registry.shadowed_models(models)
    out = {
        folder: f" [shadowed by {Path(winner.path).parent}: give --model {folder} to run it]"
        for folder, winner in shadowed.items()
    }
    tasks = [m.task for m in models]
    for task in sorted({t for t in tasks if tasks.count(t) > 1}):
        picked = Path(registry.find_model(task).path).parent
        out[picked] = f" [runs for --task {task}]"
    return out


def task_picks(registry) -> dict[str, str]:
    """The model each task's ``--task T`` runs now: task -> model name (a broken package's
    "Skipping model" warning is left to the commands that list models)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tasks = {m.task for m in registry.list_models()}
        return {task: registry.find_model(task).name for task in sorted(tasks)}


def install_warnings(registry, manifest, before: dict[str, str]) -> list[str]:
    """What a just-installed model changes that its user may not expect (fresh user 27).

    A model trained from scratch for a task (``unetpp train ... -o nodule/`` then ``models
    install nodule/``) comes before the shipped models in the search order, so ``--task T``
    then segments with it: a run of 2 iterations (validation Dice 0.09) replaced the shipped
    nodule model without a word at install. Says so for each task whose model changed from
    ``before`` (:func:`task_picks` before the install), naming the model it ran, and warns of a
    recommended depth whose recorded validation Dice is low
    (:func:`.engine.model_quality.low_dice_warning`). ``registry``: :mod:`.engine.registry`.
    """
    from .engine.model_quality import low_dice_warning

    out = []
    for task, now in task_picks(registry).items():
        earlier = before.get(task)
        if now == manifest.name and earlier not in (None, manifest.name):
            out.append(
                f"`unetpp segment --task {task}` now segments with '{manifest.name}' instead "
                f"of '{earlier}' (installed models come before the shipped ones): give --task "
                f"{earlier} (a model's name picks that model) to keep using it, or `unetpp "
                f"models remove {manifest.name}` to go back."
            )
    quality = low_dice_warning(manifest, manifest.recommended_depth)
    if quality:
        out.append(quality)
    return out


def _remove(name: str) -> dict:
    """`models remove NAME`: remove an installed model (engine/model_remove.py), printing the
    folders removed (and the graph cache kept, with why; files left behind are a warning).
    Raises UNetPlusPlusError."""
    from .engine.model_remove import remove_model

    removed = remove_model(name)
    task = f" ({removed.task})" if removed.task else ""
    print(f"removed {removed.name}{task}: {removed.folder}")
    if removed.graphs is not None:
        print(f"removed its cached graphs and probe memory: {removed.graphs}")
    if removed.graphs_kept is not None:
        print(f"kept its cached graphs {removed.graphs_kept}: {removed.graphs_kept_why}")
    return {"removed": removed.name}


def _verify(registry, names: list[str]) -> dict:
    """`models verify [NAME ...]`: the full check of each named (default: every listed) model's
    weights (``weights_status.full_problem``: sha256, finite values, the tensors against the
    network; imports torch), one status line each. Raises UNetPlusPlusError naming the broken
    ones, after the lines."""
    from .engine.weights_status import full_problem

    manifests = [registry.find_model(name) for name in names] or registry.listed_models()
    broken = []
    for manifest in manifests:
        problem = full_problem(manifest)
        print(f"{manifest.name}: {'broken: ' + problem if problem else 'ok'}", flush=True)
        broken += [manifest.name] if problem else []
    if broken:
        raise UNetPlusPlusError(
            f"{len(broken)} of {len(manifests)} model(s) broken: {', '.join(broken)}; reinstall "
            "or retrain them (`unetpp models install <folder, .zip or URL>`)."
        )
    return {"verified": [m.name for m in manifests]}


def describe_depth(manifest, depth) -> str:
    """One line per depth: validation Dice per label and seconds per volume, when recorded."""
    figures = manifest.validation_for(depth)
    name = f"L{depth}" if isinstance(depth, int) else str(depth)
    marker = " (recommended)" if depth == manifest.recommended_depth else ""
    dice = figures.get("dice") or {}
    parts = [f"Dice {k} {v:.3f}" for k, v in dice.items() if isinstance(v, (int, float))]
    seconds = figures.get("seconds_per_volume")
    if isinstance(seconds, (int, float)):
        parts.append(f"{seconds:.1f} s/volume")
    return f"{name:<9}{marker:<14} " + ("; ".join(parts) if parts else "no validation figures")


def add_models_parser(subparsers) -> None:
    """The `models` sub-command: list (default), info NAME, show NAME, verify [NAME ...],
    install SOURCE, remove NAME, prepare [NAME ...]."""
    parser = subparsers.add_parser("models", help="list, inspect, install or remove model packages")
    inner = parser.add_subparsers(dest="models_command")
    inner.add_parser("list", help="list the available models with per-depth figures (default)")
    info = inner.add_parser("info", help="print a model's manifest (model.json) as JSON")
    info.add_argument("name", help="task, model name or path to a model package")
    show = inner.add_parser("show", help="per-depth Dice and seconds, with and without --tta")
    show.add_argument("name", help="task, model name or path to a model package")
    verify = inner.add_parser(
        "verify",
        help="check models' weights fully (those of `list`: sha256, finite values, the "
        "header's tensors against the network; then the loaded tensors, with torch)",
    )
    verify.add_argument("names", nargs="*", help="task, model name or path (default: all)")
    install = inner.add_parser(
        "install",
        help="install a model (e.g. one `unetpp train` wrote) from a folder, .zip or URL into "
        "the user's model folder; a shipped model's name is refused",
    )
    install.add_argument("source", help="model.json, folder, .zip file, or http(s) URL")
    install.add_argument(
        "--sha256",
        help="expected sha256 of SOURCE: the .zip archive, or the model.json (the weights are "
        "always checked against model.json's sha256)",
    )
    install.add_argument(
        "--quiet",
        action="store_true",
        help="no download progress on stderr (a bar on a terminal, else a line per 10 %%)",
    )
    install.add_argument(
        "--no-prepare",
        action="store_true",
        help="do not prepare the model's graphs now (`models prepare`); its first "
        "segmentation then exports, compiles and probes them",
    )
    remove = inner.add_parser(
        "remove",
        help="remove a model that `models install` put into the user's model folder, with its "
        "cached graphs unless another model uses the same weights; shipped models are refused",
    )
    remove.add_argument("name", help="the installed model's name, as `models list` shows it")
    add_prepare_parser(inner)
    parser.set_defaults(handler=run_models, models_command="list")
