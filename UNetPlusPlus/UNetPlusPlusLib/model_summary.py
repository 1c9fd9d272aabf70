"""`unetpp models show`: a model's per-depth figures as text, from its manifest only.

Per depth: the trainer's validation Dice per label and seconds per volume
(``validation.per_depth``); where recorded, the Dice and seconds without and with test-time
augmentation measured as a user runs the model (``validation.tta``, written from
scripts/evaluate_review.py), and how well the heads' disagreement marks the errors
(``validation.review``). Plain Python: no torch, no Slicer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

DEPTH_KEYS = ("1", "2", "3", "4", "ensemble")


def _name(key: str) -> str:
    return f"L{key}" if key.isdigit() else key


def _mean(values: Any) -> float | None:
    if isinstance(values, dict):
        numbers = [float(v) for v in values.values() if isinstance(v, (int, float))]
        return sum(numbers) / len(numbers) if numbers else None
    return float(values) if isinstance(values, (int, float)) else None


def _dice_text(values: Any) -> str:
    if not isinstance(values, dict):
        return "-"
    return ", ".join(f"{k} {v:.3f}" for k, v in values.items() if isinstance(v, (int, float)))


def show_lines(manifest: Any) -> list[str]:
    """The lines `unetpp models show NAME` prints."""
    validation = manifest.validation or {}
    lines = [
        f"{manifest.name} (task {manifest.task}) in {Path(manifest.path).parent}"
        if manifest.path
        else f"{manifest.name} (task {manifest.task})",
        f"inputs: {', '.join(c.name for c in manifest.channels)}; "
        f"labels: {', '.join(label.name for label in manifest.labels)}",
    ]
    if validation.get("data"):
        lines.append(f"validation: {validation['data']}")
    if validation.get("label_source"):
        lines.append(f"label source: {validation['label_source']}")
    lines += ["", "per depth (trainer's validation: Dice on the model grid, s / volume):"]
    per_depth = validation.get("per_depth") or {}
    for key in DEPTH_KEYS:
        if key.isdigit() and int(key) not in manifest.depths:
            continue
        figures = per_depth.get(key) or {}
        marker = " (recommended)" if key == str(manifest.recommended_depth) else ""
        seconds = figures.get("seconds_per_volume")
        time_text = f"{seconds:.2f} s" if isinstance(seconds, (int, float)) else "-"
        lines.append(
            f"  {_name(key) + marker:<20} Dice {_dice_text(figures.get('dice'))}; {time_text}"
        )
    lines += _tta_lines(validation.get("tta") or {})
    lines += _review_lines(validation.get("review") or {})
    return lines


def _tta_lines(tta: dict) -> list[str]:
    per_depth = tta.get("per_depth") or {}
    if not per_depth:
        return ["", "test-time augmentation (--tta): not measured for this model"]
    axes = ", ".join(tta.get("mirror_axes") or []) or "none"
    lines = [
        "",
        f"test-time augmentation (--tta, mirror axes {axes}), measured as a user runs the model "
        f"on {len(tta.get('cases') or [])} case(s): mean Dice and s / case without -> with:",
    ]
    for key in DEPTH_KEYS:
        row = per_depth.get(key)
        if not row:
            continue
        plain, with_tta = _mean(row.get("dice")), _mean(row.get("dice_tta"))
        seconds, seconds_tta = row.get("seconds"), row.get("seconds_tta")
        if None in (plain, with_tta) or not seconds or not seconds_tta:
            continue
        lines.append(
            f"  {_name(key):<9} Dice {plain:.3f} -> {with_tta:.3f} ({with_tta - plain:+.3f}); "
            f"{seconds:.2f} s -> {seconds_tta:.2f} s (x{_ratio(row):.1f})"
        )
    return lines


def _ratio(row: dict) -> float:
    """Time with / without TTA: from CPU seconds where recorded (steadier on a loaded
    machine), else from wall-clock seconds."""
    if row.get("cpu_seconds") and row.get("cpu_seconds_tta"):
        return float(row["cpu_seconds_tta"]) / float(row["cpu_seconds"])
    return float(row["seconds_tta"]) / float(row["seconds"])


def _review_lines(review: dict) -> list[str]:
    per_depth = review.get("per_depth") or {}
    if not per_depth:
        return []
    threshold = review.get("threshold")
    lines = [
        "",
        f"disagreement map (--disagreement) against the error region, disagreement >= "
        f"{threshold}: precision / recall / Dice; Spearman(agreement, Dice) over cases:",
    ]
    for key in DEPTH_KEYS:
        row = per_depth.get(key)
        if not row:
            continue
        cells = [
            "-" if row.get(k) is None else f"{row[k]:.2f}"
            for k in ("precision", "recall", "dice", "spearman")
        ]
        lines.append(f"  {_name(key):<9} {' / '.join(cells[:3])}; Spearman {cells[3]}")
    return lines
