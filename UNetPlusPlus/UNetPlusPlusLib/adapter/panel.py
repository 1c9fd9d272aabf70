"""Texts and choices the panel shows, computed from a model manifest; plain Python.

Nothing here imports Slicer, Qt or torch, so the Widget can use it before the dependencies are
installed and tests can check it anywhere. Every label comes from the manifest (the single
source for channels, labels, depths and validation figures); nothing is hard-coded per task.
"""

from __future__ import annotations

import re
from typing import Any, Optional, Sequence, Union

#: Values of the depth selector (parameter node ``depth``): "auto", L1..L4, "ensemble".
DEPTH_CHOICES: tuple[str, ...] = ("auto", "1", "2", "3", "4", "ensemble")

STAGE_TEXT = {
    "load": "Loading the model",
    "preprocess": "Preparing the image",
    "infer": "Inference",
    "postprocess": "Post-processing",
    "write": "Writing the result",
}

# Spellings of MR sequence names in volume names (BraTS, TCIA, scanner exports).
_CHANNEL_ALIASES = {
    "flair": ("flair", "t2flair"),
    "t1ce": ("t1ce", "t1c", "t1gd", "t1post", "t1contrast", "t1wce", "t1+c", "t1ce+"),
    "t1": ("t1", "t1w", "t1pre"),
    "t2": ("t2", "t2w"),
}


def is_prompted(manifest: Any) -> bool:
    """Whether the model segments one lesion around a clicked point (lung nodule)."""
    prompt = getattr(manifest, "prompt", None) or {}
    return prompt.get("kind") == "point"


def task_title(manifest: Any) -> str:
    """A readable task name with the input modality, e.g. "Liver (CT)" or "Brain tumor (MR:
    FLAIR, T1, T1ce, T2)"."""
    title = manifest.task.replace("-", " ").replace("_", " ").strip().capitalize()
    channels = list(manifest.channels)
    modalities = sorted({c.modality for c in channels})
    if len(channels) == 1:
        return f"{title} ({channels[0].modality})"
    names = ", ".join(c.name for c in channels)
    return f"{title} ({'/'.join(modalities)}: {names})"


def model_summary(manifest: Any) -> str:
    """Description, labels and the validation data of a model, for the panel."""
    labels = ", ".join(label.name for label in manifest.labels)
    parts = [manifest.description.strip()] if manifest.description else []
    parts.append(f"Segments: {labels}.")
    validation = getattr(manifest, "validation", None) or {}
    if validation.get("data"):
        source = f" ({validation['label_source']})" if validation.get("label_source") else ""
        parts.append(f"Validated on {validation['data']}{source}.")
    if is_prompted(manifest):
        parts.append("Place a point on each lesion (or an ROI around it).")
    return " ".join(parts)


def depth_available(manifest: Any, choice: str) -> bool:
    """Whether a depth choice can run with this model."""
    depths = {int(d) for d in manifest.depths}
    if choice == "auto":
        return True
    if choice == "ensemble":
        return 4 in depths
    return choice.isdigit() and int(choice) in depths


def _figures(manifest: Any, choice: str) -> dict:
    per_depth = (getattr(manifest, "validation", None) or {}).get("per_depth") or {}
    figures = per_depth.get(str(choice))
    return figures if isinstance(figures, dict) else {}


def _recommended(manifest: Any) -> str:
    return str(manifest.recommended_depth)


def _depth_name(choice: str) -> str:
    return f"L{choice}" if choice.isdigit() else choice


def mean_dice(figures: dict) -> Optional[float]:
    dice = figures.get("dice")
    if isinstance(dice, dict):
        values = [float(v) for v in dice.values() if isinstance(v, (int, float))]
        return sum(values) / len(values) if values else None
    return float(dice) if isinstance(dice, (int, float)) else None


def _seconds_text(seconds: float) -> str:
    return f"~{seconds:.0f} s" if seconds >= 10 else f"~{seconds:.1f} s"


def depth_item_text(manifest: Any, choice: str) -> str:
    """The depth selector's text for ``choice``: name, validation Dice, expected seconds."""
    if choice == "auto":
        recommended = _recommended(manifest)
        inner = depth_item_text(manifest, recommended).split(" · ", 1)
        detail = f" · {inner[1]}" if len(inner) > 1 else ""
        return f"auto ({_depth_name(recommended)}){detail}"
    parts = [_depth_name(choice)]
    if not depth_available(manifest, choice):
        return f"{parts[0]} · not in this model"
    figures = _figures(manifest, choice)
    dice = mean_dice(figures)
    if dice is not None:
        parts.append(f"Dice {dice:.2f}")
    seconds = figures.get("seconds_per_volume")
    if isinstance(seconds, (int, float)):
        parts.append(_seconds_text(float(seconds)))
    if len(parts) == 1:
        parts.append("no validation figures")
    return " · ".join(parts)


def depth_tooltip(manifest: Any, choice: str) -> str:
    """Per-label Dice and where the time was measured, for the item's tooltip."""
    target = _recommended(manifest) if choice == "auto" else choice
    figures = _figures(manifest, target)
    lines = []
    dice = figures.get("dice")
    if isinstance(dice, dict):
        lines += [f"Dice {name}: {value:.3f}" for name, value in dice.items()]
    validation = getattr(manifest, "validation", None) or {}
    where = figures.get("device") or validation.get("device")
    if isinstance(figures.get("seconds_per_volume"), (int, float)):
        measured = f" on {where}" if where else ""
        lines.append(f"{figures['seconds_per_volume']:.1f} s per volume{measured}")
    if validation.get("data"):
        lines.append(f"Validation data: {validation['data']}")
    lines += _tta_tooltip(validation, target)
    return "\n".join(lines) or "No validation figures in the model manifest."


def _tta_tooltip(validation: dict, choice: str) -> list[str]:
    """The measured effect of test-time augmentation at this depth (``validation.tta``)."""
    row = ((validation.get("tta") or {}).get("per_depth") or {}).get(str(choice)) or {}
    plain, with_tta = mean_dice(row), mean_dice({"dice": row.get("dice_tta")})
    seconds, seconds_tta = row.get("seconds"), row.get("seconds_tta")
    if plain is None or with_tta is None or not seconds or not seconds_tta:
        return []
    return [
        f"With test-time augmentation: Dice {plain:.3f} -> {with_tta:.3f}, "
        f"{seconds:.1f} s -> {seconds_tta:.1f} s per case (as a user runs it)"
    ]


def progress_text(stage: str, done: int, total: int) -> tuple[str, int]:
    """Status text and percentage for a progress event, e.g. ("Inference: tile 3 of 8", 37)."""
    name = STAGE_TEXT.get(stage, stage.capitalize())
    percent = int(round(100.0 * done / total)) if total else 0
    if stage == "infer" and total:
        return f"{name}: tile {done} of {total}", percent
    return name, percent


def warnings_text(result: Union[dict, Sequence[str], None]) -> str:
    """Warnings for the status text, one line each ("\nWarning: ..."), each once in the order
    given; "" when there are none. ``result``: a list of warnings, or a finished run's CLI
    result (its ``warnings``)."""
    if isinstance(result, dict) or result is None:
        result = (result or {}).get("warnings") or []
    return "".join(f"\nWarning: {warning}" for warning in merge_warnings(result))


def merge_warnings(*groups: Sequence[str]) -> list[str]:
    """The warnings of ``groups`` (e.g. the Slicer side's input checks, then the engine's), in
    order, each once: the engine repeats the input checks it runs again word for word."""
    merged: list[str] = []
    for group in groups:
        for warning in map(str, group or ()):
            if warning not in merged:
                merged.append(warning)
    return merged


def _tokens(name: str) -> set[str]:
    words = [w for w in re.split(r"[^a-z0-9+]+", name.lower()) if w]
    out = set(words)
    for size in (2, 3):
        out |= {"".join(words[i : i + size]) for i in range(len(words) - size + 1)}
    return out


def _aliases(channel_name: str) -> tuple[str, ...]:
    """Spellings of a channel in volume names: a manifest's "T1Gd" also matches "t1ce"."""
    key = re.sub(r"[^a-z0-9+]", "", channel_name.lower())
    for aliases in _CHANNEL_ALIASES.values():
        if key in aliases:
            return aliases
    return (key,)


def channel_of_volume(volume_name: str, channel_names: Sequence[str]) -> Optional[int]:
    """Which channel a volume's name designates (longest matching spelling wins), or None."""
    tokens = _tokens(volume_name)
    best, best_length = None, 0
    for index, channel in enumerate(channel_names):
        for alias in _aliases(channel):
            if alias in tokens and len(alias) > best_length:
                best, best_length = index, len(alias)
    return best


def match_channels(
    channel_names: Sequence[str], volume_names: Sequence[str]
) -> list[Optional[int]]:
    """For each channel, the index of the volume whose name designates it (the last such
    volume, i.e. the most recently loaded), or None. Single-channel models match nothing."""
    matches: list[Optional[int]] = [None] * len(channel_names)
    if len(channel_names) < 2:
        return matches
    for volume_index, name in enumerate(volume_names):
        channel = channel_of_volume(name, channel_names)
        if channel is not None:
            matches[channel] = volume_index
    return matches


def channel_input_problem(channel_names: Sequence[str], nodes: Sequence[Any]) -> Optional[str]:
    """Why these input volumes cannot run, naming the channels, or None when they can.

    ``nodes[i]`` is the volume node chosen for ``channel_names[i]`` (None: nothing chosen).
    Three refusals: a channel without a volume, one volume chosen for several channels (a
    multi-sequence model fed FLAIR four times would give a silently wrong result), and a
    labelmap volume (``vtkMRMLLabelMapVolumeNode``, a subclass of the scalar volume: its label
    values were segmented as if they were the image), which the panel's selectors never list
    but a script may pass.
    """
    if len(nodes) != len(channel_names):
        return (
            f"The model needs {len(channel_names)} input volume(s) "
            f"({', '.join(channel_names)}); {len(nodes)} given."
        )
    missing = [name for name, node in zip(channel_names, nodes) if node is None]
    if missing:
        return (
            f"No input volume selected for {', '.join(missing)}; choose one in the Inputs section."
        )
    for node in nodes:
        shared = [channel_names[i] for i, other in enumerate(nodes) if other is node]
        if len(shared) > 1:
            return (
                f"Channels {' and '.join(shared)} use the same volume '{node.GetName()}'; "
                "choose a different volume for each channel in the Inputs section."
            )
    return labelmap_input_problem(channel_names, nodes)


def labelmap_input_problem(channel_names: Sequence[str], nodes: Sequence[Any]) -> Optional[str]:
    """Why one of ``nodes`` (the volume chosen for ``channel_names[i]``) cannot be a channel's
    image because it is a labelmap volume node, naming it and its channel; None when none is.
    Segmentation runs (:func:`channel_input_problem`) and training export refuse it."""
    for name, node in zip(channel_names, nodes):
        is_a = getattr(node, "IsA", None)  # a vtkObject's (MRML); not on the panel's stand-ins
        if is_a is not None and is_a("vtkMRMLLabelMapVolumeNode"):
            return (
                f"Volume '{node.GetName()}' chosen for {name} is a labelmap (label values, not "
                f"an image the model can read); choose the image volume for {name}."
            )
    return None


def device_choices(devices: Optional[Sequence[dict]]) -> list[tuple[str, str]]:
    """Device selector items ``(text, id)``: "auto" first, then each device the engine listed
    (``unetpp devices --json``: ``{"id", "name", "memory"}``, memory in bytes); with no list yet,
    auto and the CPU."""
    items = [("auto (GPU if available)", "auto")]
    for device in devices or [{"id": "cpu", "name": "", "memory": None}]:
        ident, name = str(device.get("id", "")), str(device.get("name") or "")
        memory = device.get("memory")
        if ident == "cpu":
            items.append(("CPU" + (f" ({name})" if name and name != "CPU" else ""), "cpu"))
        elif ident.startswith("cuda:"):
            size = f", {memory / 2**30:.0f} GiB" if isinstance(memory, (int, float)) else ""
            items.append((f"GPU {ident[5:]}: {name}{size}", ident))
        elif ident:
            items.append((name or ident, ident))
    return items
