"""``unetpp train --progress-json``: one JSON line per epoch, then the result or the error.

The Slicer module runs training as a background process and reads these lines from its stdout
(the same contract as ``unetpp segment --progress-json``; see adapter/job.py):

    {"stage": "epoch", "done": 3, "total": 20, "loss": 0.41, "eta_s": 212, "dice": {"1": 0.8}}
    {"result": {"model_dir": "...", "name": "liver-ft-cases", "recommended_depth": 2}}
    {"error": "..."}

``dice`` is the latest validation mean Dice per depth ("1".."4", "ensemble"), absent before the
first validation. ``eta_s`` is seconds left at the measured pace.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Optional


def epoch_event(entry: dict, epochs: int, eta_s: float, last_dice: Optional[dict] = None) -> dict:
    """The progress line of an epoch: ``entry`` is the history entry (epoch, loss[, validation])."""
    event: dict[str, Any] = {
        "stage": "epoch",
        "done": int(entry["epoch"]),
        "total": int(epochs),
        "loss": entry.get("loss"),
        "eta_s": int(round(max(eta_s, 0.0))),
    }
    dice = entry.get("validation") or last_dice
    if dice:
        event["dice"] = dice
    return event


def emit(payload: dict) -> None:
    """Print one JSON line on stdout and flush (the reader is another process)."""
    print(json.dumps(payload), flush=True)
    sys.stdout.flush()


class EpochReporter:
    """``trainer.on_epoch``: emits each epoch's line, carrying the latest validation Dice."""

    def __init__(self) -> None:
        self.last_dice: Optional[dict] = None

    def __call__(self, event: dict) -> None:
        if event.get("dice"):
            self.last_dice = event["dice"]
        elif self.last_dice:
            event = {**event, "dice": self.last_dice}
        emit(event)
