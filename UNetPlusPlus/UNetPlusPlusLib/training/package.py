"""The model package a run writes: its manifest (per-depth validation, provenance, the training
settings and plan) and the training curve."""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path
from typing import Optional, Sequence

from ..engine.manifest import ChannelSpec, LabelSpec, ModelManifest, standard_terminology
from .case_content import (
    LEGACY_METHOD,
    SAME_IMAGE,
    SHARED_PATCHES,
    SHARED_SLICES,
    fingerprint_record,
)
from .validation import DEPTHS, recommend_depth


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The checkout's HEAD commit ("" outside git), read once per process: the trainer asks at
    the start of a run, so a commit made while it trains does not end up in the manifest."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def safe_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")
    return name or "unetpp-model"


def validation_label_sources(trainer) -> str:
    """Provenance of the labels of the validation cases only, one phrase per source, e.g.
    "expert (LiTS challenge reference)": a source used only for training is not named (the
    liver card listed its training-only clinician-corrected case under Validation). Falls back
    to every source of the dataset when the cases' files are not known."""
    ids = {case.case_id for case in trainer.val_cases}
    files = [*getattr(trainer, "val_files", []), *getattr(trainer, "train_files", [])]
    seen: list[str] = []
    for files_of_case in files:
        source = files_of_case.source.label_source
        if files_of_case.case_id in ids and source and source not in seen:
            seen.append(source)
    return "; ".join(seen) or trainer.dataset.label_sources() or "unknown"


#: At most this many training cases are read for the sequence-order reference.
MAX_FINGERPRINT_CASES = 50


def channel_reference(channels: Sequence, cases: Sequence) -> Optional[dict]:
    """The sequence-order reference (``inference.channel_fingerprint``, engine/channel_order.py)
    of a multi-channel, all-MR dataset from its training ``cases`` (``CaseFiles``: the raw
    files, as a user gives them), or None: fewer than 2 channels, a channel not MR, or fewer
    than 3 cases with a usable fingerprint (too few voxels non-zero in every channel). With a
    pre- and a post-contrast T1 channel (``contrast_pair.find_pair``) it names the pair."""
    from ..engine import channel_order
    from ..engine.contrast_pair import find_pair
    from ..engine.image_read import read_volume
    from ..engine.sanity import channel_samples

    if len(channels) < 2 or any(c.modality.strip().upper() not in ("MR", "MRI") for c in channels):
        return None
    names, prints, ids = [c.name for c in channels], [], []
    for case in list(cases)[:MAX_FINGERPRINT_CASES]:
        volume = read_volume(case.images, names)
        found = channel_order.fingerprint(channel_samples(list(volume.array)))
        if found is not None:
            prints.append(found)
            ids.append(case.case_id)
    if len(prints) < 3:
        return None
    return channel_order.build_reference(prints, ids, find_pair(names))  # T1 / T1ce: contrast


def build_manifest(trainer, per_depth: dict) -> ModelManifest:
    """The package manifest of a finished run: per-depth validation, provenance, plan."""
    config, dataset = trainer.config, trainer.dataset
    recommended = recommend_depth(per_depth, config.depth_tolerance)
    split = getattr(trainer, "split_record", None) or {}
    from_parent = split.get("parent") or {}
    where = "the training cases" if trainer.val_on_training else "held-out patients"
    if from_parent.get("validation_on_parent_training"):
        where = f"held out from this run; the parent model {from_parent['name']} trained on them"
    data = (
        f"{len(trainer.val_cases)} validation case(s) of '{dataset.name}' ({where}), scored "
        f"on the model grid ({list(config.spacing)} mm)"
    )
    parent = getattr(trainer, "init_manifest", None)
    same_labels = parent is not None and [x.name.lower() for x in parent.labels] == [
        x.name.lower() for x in dataset.labels
    ]
    parents = {x.name.lower(): x for x in parent.labels} if parent is not None else {}
    # a label the parent has (same name) keeps the parent's colour and codes, unless a
    # dataset.json (the user's own description) gives codes; a Slicer export's segment codes
    # do not override them (they are usually the parent's own, written by the segmentation)
    described = str(dataset.origin).lower().endswith(".json")
    labels = []
    for i, label in enumerate(dataset.labels, start=1):
        inherited = parents.get(label.name.lower())
        terminology = label.terminology if inherited is None or described else None
        terminology = terminology or (inherited.terminology if inherited else None)
        labels.append(
            LabelSpec(
                value=i,
                name=label.name,
                color=tuple(inherited.color if inherited else label.color),
                terminology=terminology or label.terminology or standard_terminology(label.name),
            )
        )
    channels = [ChannelSpec(c.name, c.modality, dict(c.normalization)) for c in dataset.channels]
    training = {
        "command": config.command,
        "commit": git_commit(),
        "epochs": config.epochs,
        "iterations_per_epoch": config.iterations_per_epoch,
        "batch_size": config.batch_size,
        "world_size": trainer.context.world_size,
        "lr": config.lr,
        "schedule": config.schedule,
        "seed": config.seed,
        "dataset": dataset.name,
        "training_cases": len(trainer.train_cases),
        "cases": [c.case_id for c in getattr(trainer, "train_files", [])],
        # image fingerprints of both sides (case_content.py), matched by a later fine-tune
        "case_fingerprints": fingerprint_record(
            getattr(trainer, "case_content", {}),
            [c.case_id for c in getattr(trainer, "train_files", [])],
            [c.case_id for c in getattr(trainer, "val_files", [])],
        ),
        "init": str(config.init) if config.init else None,
        "fine_tuned_from": parent_record(parent),
        "final_loss": trainer.history[-1]["loss"] if trainer.history else None,
        "precision": config.precision,
        "training_seconds": round(trainer.elapsed_s, 1),
    }
    # the parent's options (nonzero_crop.py), and the sequence-order reference of this run's
    # training cases when it has one (else the parent's, if any)
    inference = dict(parent.inference) if parent is not None else {}
    reference = channel_reference(dataset.channels, getattr(trainer, "train_files", []))
    if reference is not None:
        inference["channel_fingerprint"] = reference
    plan = getattr(trainer, "plan", None)
    if plan is not None:
        training["plan"] = {
            "overridden": dict(plan.sources),
            "budget_s": plan.budget_s,
            "budget_given": plan.budget_given,
            "estimate_s": plan.estimate.get("total"),
        }
    validation = {
        "data": data,
        "label_source": validation_label_sources(trainer),
        "cases": [c.case_id for c in trainer.val_cases],
        "depth_tolerance": config.depth_tolerance,
        "device": str(trainer.device),
        "per_depth": per_depth,
    }
    held_out = [c.case_id for c in getattr(trainer, "val_files", [])]
    if held_out and held_out != validation["cases"]:  # --max-val-cases, the plan's subset
        validation["held_out_cases"] = held_out  # what a fine-tune of this model keeps out
    if from_parent:
        validation["parent_split"] = dict(from_parent)
    return ModelManifest(
        name=safe_name(config.name),
        task=safe_name(config.task),
        sha256="0" * 64,
        network=trainer.network.config(),
        channels=channels,
        labels=labels,
        spacing=tuple(float(s) for s in config.spacing),
        tile_size=tuple(int(t) for t in config.tile_size),
        overlap=config.overlap,
        depths=(1, 2, 3, 4),
        recommended_depth=recommended,
        description=(
            f"UNet++ trained with 'unetpp train' on {dataset.name}: "
            f"{len(trainer.train_cases)} training case(s), {config.epochs} epoch(s). "
            + (dataset.description or "")
        ).strip(),
        # a fine-tuned model keeps its parent's prompt, post-processing (issue 12) and test-time
        # mirror axes (same labels) unless the dataset description sets them
        prompt=dataset.prompt if dataset.prompt or not same_labels else parent.prompt,
        postprocess=dict(
            dataset.postprocess if dataset.postprocess or not same_labels else parent.postprocess
        ),
        test_time_augmentation=dict(parent.test_time_augmentation) if same_labels else {},
        inference=inference,
        validation=validation,
        training=training,
    )


def parent_record(parent) -> Optional[dict]:
    """What a fine-tuned model came from: the parent's name, task, weights sha256 and folder."""
    if parent is None:
        return None
    return {
        "name": parent.name,
        "task": parent.task,
        "sha256": parent.sha256,
        "path": str(Path(parent.path).parent) if parent.path else None,
    }


# ----------------------------------------------------------------------------- plot
def plot_history(history: Sequence[dict], path: Path) -> None:
    """Training loss and validation mean Dice per depth against the epoch, as a PNG."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(10, 4), dpi=100)
    loss_axes, dice_axes = figure.subplots(1, 2)
    epochs = [h["epoch"] for h in history]
    for axes in (loss_axes, dice_axes):  # whole epochs (not 0.96, 0.98, ...), on both panels
        axes.set_xlim(min(epochs, default=1) - 0.5, max(epochs, default=1) + 0.5)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    loss_axes.plot(epochs, [h["loss"] for h in history], marker="o", color="tab:red")
    loss_axes.set_xlabel("epoch")
    loss_axes.set_ylabel("training loss (CE + Dice, mean over heads)")
    loss_axes.grid(alpha=0.3)
    for depth in DEPTHS:
        points = [
            (h["epoch"], h["validation"][str(depth)])
            for h in history
            if h.get("validation", {}).get(str(depth)) is not None
        ]
        if points:
            label = "ensemble" if depth == "ensemble" else f"L{depth}"
            dice_axes.plot(*zip(*points), marker=".", label=label)
    dice_axes.set_xlabel("epoch")
    dice_axes.set_ylabel("validation mean Dice")
    dice_axes.set_ylim(0, 1)
    dice_axes.grid(alpha=0.3)
    if dice_axes.lines:
        dice_axes.legend(loc="lower right")
    # fixed margins, as tight_layout gives for these labels at this size: tight_layout drew
    # the figure once more only to measure them (0.53 -> 0.27 s CPU a plot of 40
    # epochs, paired: scripts/measure_curve_plot.py; it is written after every epoch)
    figure.subplots_adjust(left=0.075, right=0.985, bottom=0.145, top=0.95, wspace=0.16)
    figure.savefig(path)


# ----------------------------------------------------------------------------- card
def write_card(out_dir: Path, manifest: ModelManifest, plan=None) -> Path:
    """``CARD.md`` beside the package: the per-depth validation table, the recommended depth,
    the data and its label source, the plan and the training time. Numbers come from the run."""
    validation, training = manifest.validation or {}, manifest.training or {}
    per_depth = validation.get("per_depth", {})
    labels = [label.name for label in manifest.labels]
    lines = [
        f"# {manifest.name} ({manifest.task})",
        "",
        manifest.description,
        "",
        "## Validation per depth",
        "",
        f"{validation.get('data', '')}; label source: {validation.get('label_source', '?')}; "
        f"measured on {validation.get('device', '?')}.",
        "",
        "| depth | " + " | ".join(labels) + " | mean Dice | s / volume |",
        "|---|" + "---|" * (len(labels) + 2),
    ]
    for depth in DEPTHS:
        row = per_depth.get(str(depth))
        if row is None:
            continue
        name = "ensemble" if depth == "ensemble" else f"L{depth}"
        if str(depth) == str(manifest.recommended_depth):
            name = f"**{name}** (recommended)"
        dice = [row["dice"].get(label) for label in labels]
        cells = [_cell(v) for v in dice] + [_cell(row.get("mean_dice"))]
        seconds = row.get("seconds_per_volume")
        cells.append(f"{seconds:.2f}" if seconds is not None else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    parent = training.get("fine_tuned_from")
    lines += ["", "## Training", ""]
    if parent:
        lines.append(
            f"- fine-tuned from {parent['name']} ({parent['task']}, weights sha256 "
            f"{parent['sha256'][:12]}...) on {training.get('dataset')}"
        )
    lines += _split_lines(validation.get("parent_split"))
    lines += [
        f"- command: `{training.get('command', '')}`",
        f"- {training.get('training_cases')} training case(s), {training.get('epochs')} epoch(s) "
        f"x {training.get('iterations_per_epoch')} iterations x batch "
        f"{training.get('batch_size')}, precision {training.get('precision')}, "
        f"{training.get('training_seconds')} s of training",
    ]
    if plan is not None:
        budget = f"{plan.budget_s:.0f} s" if plan.budget_s else "none"
        overridden = ", ".join(f"{k} ({v})" for k, v in plan.sources.items()) or "nothing"
        total = plan.estimate.get("total")
        estimate = f"estimated {total} s" if total is not None else "not timed (fixed schedule)"
        lines.append(
            f"- plan (plan.json): budget {budget}{'' if plan.budget_given else ' (default)'}, "
            f"{estimate}; overridden: {overridden}"
        )
    lines.append("")
    path = Path(out_dir) / "CARD.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


_PART = {SHARED_SLICES: "slices of", SHARED_PATCHES: "a crop of, or holding"}


def _split_lines(parent: Optional[dict]) -> list[str]:
    """The card's lines on a fine-tune's split against its parent's (``parent_split``)."""
    if not parent:
        return []
    kept = parent.get("held_out_kept_out") or []
    shown = ", ".join(kept[:10]) + (f" and {len(kept) - 10} more" if len(kept) > 10 else "")
    lines = [
        f"- kept out of training: {len(kept)} held-out case(s) of the parent {parent['name']} "
        f"found in this dataset"
        + (f" ({shown}), validated on instead" if kept else "")
        + (
            " (matched by case name, patient and image content: a renamed or re-saved copy, a "
            "mirror image, a slab of its slices or a crop within them is recognised; a "
            "resampled copy is not)"
            if parent.get("content_matched") and parent.get("content_method") != LEGACY_METHOD
            else " (matched by case name, patient and image content of an older method: a "
            "renamed or re-saved copy, or a slab of its slices, is recognised; a mirror image, "
            "a crop within the slices or a resampled copy is not)"
            if parent.get("content_matched")
            else " (matched by case name and patient; the parent records no image "
            "fingerprints, so a renamed copy, such as a Slicer export named case001, is not "
            "recognised)"
        )
    ]
    renamed = [*parent.get("held_out_by_content", []), *parent.get("training_by_content", [])]
    if renamed:
        pairs = ", ".join(
            f"{new} = {old}" if how == SAME_IMAGE else f"{new} ({_PART[how]} {old})"
            for new, old, how in renamed[:10]
        )
        more = f" and {len(renamed) - 10} more" if len(renamed) > 10 else ""
        lines.append(f"- copies of the parent's cases found by image content: {pairs}{more}")
    if not parent.get("training_cases_known"):
        lines.append(
            f"- the parent {parent['name']} does not list its training cases: the validation "
            "cases may include cases it was trained on"
        )
    elif parent.get("validation_on_parent_training"):
        lines.append(
            f"- the parent {parent['name']} was trained on every patient of this dataset: the "
            "validation cases are held out from this run only, so the figures overstate the model"
        )
    else:
        lines.append(f"- no validation case is one the parent {parent['name']} was trained on")
    return lines


def _cell(value) -> str:
    return "-" if value is None else f"{value:.3f}"
