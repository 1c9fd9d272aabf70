"""Texts and choices of the panel's "Train / fine-tune" section (stdlib only, no Qt).

``epoch_text`` turns a ``unetpp train --progress-json`` epoch line into the status line;
``plan_text`` picks the plan table and its ETA out of ``--plan-only`` output.
"""

from __future__ import annotations

from typing import Sequence

#: The panel's time budget choices (``unetpp train --time-budget``).
BUDGET_CHOICES = ("10m", "30m", "2h")


def channel_check_args(check: bool) -> list[str]:
    """``unetpp train`` arguments for the panel's "Check each case's sequence order" box:
    none when checked (the CLI checks by default), ``--no-channel-check`` when not."""
    return [] if check else ["--no-channel-check"]


def strict_labels_args(strict: bool) -> list[str]:
    """``unetpp train`` arguments for the panel's "Refuse implausible labels" box:
    ``--strict-labels`` when checked, none when not (the CLI warns by default)."""
    return ["--strict-labels"] if strict else []


def plan_text(lines: Sequence[str]) -> str:
    """The plan table printed by ``unetpp train --plan-only`` (from "training plan:" through
    the ETA line), or the last lines when there is none."""
    lines = list(lines)
    start = next((i for i, line in enumerate(lines) if line.startswith("training plan:")), None)
    if start is None:
        return "\n".join(lines[-3:])
    end = next(
        (i for i in range(start, len(lines)) if lines[i].strip().startswith("ETA")), len(lines) - 1
    )
    return "\n".join(line.rstrip() for line in lines[start : end + 1])


def epoch_text(event: dict) -> str:
    """``epoch 3/20, loss 0.412, ETA 3m32s, Dice L1 0.71 L2 0.80 ...`` for the panel."""
    eta = int(event.get("eta_s") or 0)
    text = f"epoch {event.get('done')}/{event.get('total')}"
    if isinstance(event.get("loss"), (int, float)):
        text += f", loss {event['loss']:.3f}"
    text += f", ETA {eta // 60}m{eta % 60:02d}s"
    dice = event.get("dice") or {}
    if dice:
        parts = [
            f"{'L' + k if k.isdigit() else k} {v:.2f}"
            for k, v in dice.items()
            if isinstance(v, (int, float))
        ]
        text += ", Dice " + " ".join(parts)
    return text
