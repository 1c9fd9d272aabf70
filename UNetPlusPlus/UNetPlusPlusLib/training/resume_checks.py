"""``--resume`` checks: a run continues only with the settings, labels and channels it started
with (only ``--epochs`` may grow). The plan's own fields are checked against plan.json by
``plan_setup``; the split is restored from plan.json by ``parent_split.restore_split``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ..errors import UNetPlusPlusError

#: TrainConfig fields that must not change between a run and its resumption.
RESUME_FIXED = (
    "train_fraction",
    "max_cases",
    "val_fraction",
    "spacing",
    "tile_size",
    "features",
    "norm",
    "batch_size",
    "iterations_per_epoch",
    "seed",
    "lr",
    "weight_decay",
    "schedule",
    "foreground_fraction",
    "augment",
    "world_size",
    "precision",
)


def jsonable(config: Any) -> dict:
    """A TrainConfig (dataclass) as the checkpoint stores it: tuples as lists."""
    data = asdict(config)
    for key in ("spacing", "tile_size", "features"):
        data[key] = list(data[key])
    return data


def check_resume(state: dict, config: Any, dataset: Any) -> None:
    """Refuse to resume from the checkpoint ``state`` (its JSON part) with another ``config``
    (TrainConfig) setting of :data:`RESUME_FIXED`, other labels or channels of ``dataset``
    (DatasetDescription), or no epochs left. Raises UNetPlusPlusError saying what differs."""
    saved = state.get("config", {})
    current = jsonable(config)
    for key in RESUME_FIXED:
        if key in saved and saved[key] != current[key]:
            raise UNetPlusPlusError(
                f"--resume: '{key}' was {saved[key]} in the checkpoint but is now "
                f"{current[key]}; resume with the same settings (only --epochs may grow)."
            )
    for key, now in (
        ("labels", dataset.label_names),
        ("channels", [c.name for c in dataset.channels]),
    ):
        if key in state and state[key] != now:
            raise UNetPlusPlusError(
                f"--resume: the checkpoint was trained with the {key} {state[key]}, but the "
                f"dataset now gives {now}; pass the same --{key} as before."
            )
    if int(state.get("epoch", 0)) >= config.epochs:
        raise UNetPlusPlusError(
            f"--resume: the checkpoint already holds {state.get('epoch')} epochs; ask for "
            "more with --epochs."
        )
