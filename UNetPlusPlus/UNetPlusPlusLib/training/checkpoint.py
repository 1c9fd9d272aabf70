"""Checkpoints for exact resume, without pickles.

A checkpoint is a folder ``OUT_DIR/checkpoint/`` holding

- ``model.safetensors``      the network's state dict (float32),
- ``optimizer.safetensors``  every tensor of the optimizer state (AdamW moments and steps),
- ``state.json``             everything else: epoch, history, the optimizer's param groups and
                             scalar state, the AMP scaler state and the training configuration.

It is written into a temporary folder and swapped in with a rename, so an interrupted run
leaves the previous checkpoint intact. Random number generators need no saving: every epoch
reseeds them from (seed, epoch, rank), which makes resuming at an epoch boundary exact.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors.torch import load_file, save_file

from ..errors import UNetPlusPlusError

CHECKPOINT_DIR = "checkpoint"
OLD_CHECKPOINT_DIR = ".checkpoint-old"  # the previous checkpoint, while a new one moves in


def _optimizer_split(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _optimizer_join(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    for index, entry in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(entry)
    groups = []
    for group in meta["param_groups"]:
        group = dict(group)
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": state, "param_groups": groups}


def save_checkpoint(
    out_dir: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: Optional[Any],
    state: dict,
) -> Path:
    """Write the checkpoint folder atomically; returns its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / CHECKPOINT_DIR
    _recover(out_dir)  # an earlier save stopped between its renames: keep its previous one
    tmp = Path(tempfile.mkdtemp(dir=out_dir, prefix=".checkpoint-"))
    try:
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(weights, str(tmp / "model.safetensors"))
        tensors, optimizer_meta = _optimizer_split(optimizer.state_dict())
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        payload = dict(state)
        payload["optimizer"] = optimizer_meta
        payload["scaler"] = scaler.state_dict() if scaler is not None else None
        (tmp / "state.json").write_text(json.dumps(payload, indent=1), encoding="utf-8")
        old = out_dir / OLD_CHECKPOINT_DIR
        if old.exists():
            shutil.rmtree(old)
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _recover(out_dir: Path) -> None:
    """Put ``.checkpoint-old`` back as the checkpoint when there is none: a kill or Ctrl-C
    between save_checkpoint's two renames left only it, and --resume said 'no checkpoint'
    though the previous checkpoint was complete (tester 12)."""
    old, target = Path(out_dir) / OLD_CHECKPOINT_DIR, Path(out_dir) / CHECKPOINT_DIR
    if old.is_dir() and not target.exists() and (old / "state.json").is_file():
        os.replace(old, target)


def read_checkpoint_state(out_dir: Path) -> dict:
    """The JSON part of the checkpoint in ``out_dir``; a clear error when there is none."""
    _recover(Path(out_dir))
    path = Path(out_dir) / CHECKPOINT_DIR / "state.json"
    if not path.is_file():
        raise UNetPlusPlusError(
            f"--resume: no checkpoint in {Path(out_dir)} (expected {path}); start without --resume."
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise UNetPlusPlusError(f"Checkpoint {path} cannot be read ({error}).") from error


def load_checkpoint(
    out_dir: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: Optional[Any],
) -> dict:
    """Restore model, optimizer and scaler in place; returns the JSON state."""
    folder = Path(out_dir) / CHECKPOINT_DIR
    state = read_checkpoint_state(out_dir)
    from safetensors import SafetensorError  # a damaged file (tester 6: an internal error)

    try:
        model.load_state_dict(load_file(str(folder / "model.safetensors")), strict=True)
        tensors = load_file(str(folder / "optimizer.safetensors"))
    except (OSError, RuntimeError, ValueError, SafetensorError) as error:
        raise UNetPlusPlusError(
            f"Checkpoint in {folder} does not fit this model or is damaged ({error}); start "
            "again with --overwrite."
        ) from error
    optimizer.load_state_dict(_optimizer_join(tensors, state["optimizer"]))
    _match_parameter_layout(optimizer)
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    return state


def _match_parameter_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give restored moment tensors the memory layout of their parameters (e.g. channels-last),
    as freshly created ones have, so the resumed updates run exactly as uninterrupted ones."""
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            state = optimizer.state.get(parameter, {})
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and value.shape == parameter.shape:
                    state[key] = torch.empty_like(parameter, dtype=value.dtype).copy_(value)
