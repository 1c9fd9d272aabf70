"""``--resume`` checks: a run continues only with the settings, labels and channels it started
with (only ``--epochs`` may grow), and on the cases' content it was trained on (the checkpoint's
``cases`` record; ``--accept-changed-cases`` continues on changed content). The plan's own
fields are checked against plan.json by ``plan_setup``; the split is restored from plan.json by
``parent_split.restore_split``."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

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
    _refuse_no_epochs_left(int(state.get("epoch", 0)), int(config.epochs))


def _refuse_no_epochs_left(done: int, epochs: int) -> None:
    if done >= epochs:
        raise UNetPlusPlusError(
            f"--resume: the checkpoint already holds {done} epoch{'' if done == 1 else 's'}, "
            f"{'all' if done == epochs else 'more than'} this run asks for "
            f"({epochs}); ask for more with --epochs (at least {done + 1})."
        )


def check_epochs_left(state: dict, out_dir: Path, epochs: Optional[int]) -> None:
    """Refuse ``--resume`` of a run that has no epoch left, from its checkpoint ``state`` (its
    JSON part, read once by the caller: ``checkpoint.read_checkpoint_state`` hashes the tensor
    files) and plan.json alone, before the dataset is read (that took 19 s on 814 cases before
    the refusal, fresh user 27). ``epochs``: ``--epochs``, or None for the plan's. A run without
    plan.json (before plans) is left to :func:`check_resume`. Raises UNetPlusPlusError (also
    for a damaged plan.json, as the run would)."""
    from .planner import Plan

    if epochs is None:
        plan = Plan.load(out_dir)
        if plan is None:
            return
        epochs = plan.epochs
    _refuse_no_epochs_left(int(state.get("epoch", 0)), int(epochs))


#: What the checkpoint's ``cases`` record holds: case id -> case_content.training_print.
CASES_METHOD = "training-print-image128-labels-spacing/v1"


def cases_record(prints: Mapping[str, str], case_ids: Sequence[str]) -> dict:
    """The checkpoint's ``cases`` record: the training print (image, labels, spacing;
    ``case_content.training_print``) of each of ``case_ids`` (the run's training and
    validation cases), from ``prints`` (case id -> print)."""
    return {"method": CASES_METHOD, "prints": {i: prints[i] for i in case_ids if prints.get(i)}}


def check_resume_cases(
    state: dict, prints: Mapping[str, str], case_ids: Sequence[str], accept: bool = False
) -> list[str]:
    """Refuse to resume from the checkpoint ``state`` (its JSON part) when a case of the run
    (``case_ids``) has another training print (``prints``: case id -> print now) than the
    checkpoint records: an image or label replaced or edited since, so the weights were
    trained on other data. Returns the warnings to log: with ``accept``
    (``--accept-changed-cases``), the changed cases; for a checkpoint without the record (an
    older version), that nothing could be checked. Raises UNetPlusPlusError naming the cases."""
    record = state.get("cases")
    if not isinstance(record, dict) or record.get("method") != CASES_METHOD:
        return [
            "--resume: the checkpoint records no content of its cases (written by an older "
            "version), so whether an image or label changed since cannot be checked"
        ]
    recorded = record.get("prints")
    if not isinstance(recorded, dict):  # a string was searched as text: nothing was checked
        return [
            "--resume: the checkpoint's record of its cases is damaged (no case prints), so "
            "whether an image or label changed since cannot be checked"
        ]
    changed = [i for i in case_ids if i in recorded and prints.get(i) != recorded[i]]
    if not changed:
        return []
    shown = ", ".join(changed[:10]) + (
        f" and {len(changed) - 10} more" if len(changed) > 10 else ""
    )
    if accept:
        return [
            f"--accept-changed-cases: the image or label of {len(changed)} case(s) changed since "
            f"the checkpoint ({shown}); training goes on with their new content"
        ]
    raise UNetPlusPlusError(
        f"--resume: the image or label of {len(changed)} case(s) changed since the checkpoint "
        f"was written ({shown}), so its weights were trained on other data. Start a new run "
        "(--overwrite, or another output folder), or continue on the new content with "
        "--resume --accept-changed-cases."
    )
