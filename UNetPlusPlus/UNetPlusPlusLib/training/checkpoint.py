"""Checkpoints for exact resume, without pickles.

A checkpoint is a folder ``OUT_DIR/checkpoint/`` holding

- ``model.safetensors``      the network's state dict (float32),
- ``optimizer.safetensors``  every tensor of the optimizer state (AdamW moments and steps),
- ``state.json``             everything else: epoch, history, the optimizer's param groups and
                             scalar state, the AMP scaler state, the training configuration and
                             the sha256 of both tensor files (``files_sha256``), so a tensor file
                             changed since (bytes flipped in a copy) is refused on --resume.

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

from ..engine.manifest_weights import sha256_file
from ..errors import UNetPlusPlusError

TENSOR_FILES = ("model.safetensors", "optimizer.safetensors")
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
        payload["files_sha256"] = {name: sha256_file(tmp / name) for name in TENSOR_FILES}
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
    """The JSON part of the checkpoint in ``out_dir``, after checking its form and that both
    tensor files have readable safetensors headers (not their tensors), so a damaged checkpoint
    is refused before the dataset is read and the plan timed. Raises UNetPlusPlusError: none,
    unreadable, or damaged."""
    _recover(Path(out_dir))
    folder = Path(out_dir) / CHECKPOINT_DIR
    path = folder / "state.json"
    if not path.is_file():
        raise UNetPlusPlusError(
            f"--resume: no checkpoint in {Path(out_dir)} (expected {path}); start without --resume."
        )
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, RecursionError, json.JSONDecodeError) as error:
        raise UNetPlusPlusError(f"Checkpoint {path} cannot be read ({error}).") from error
    problem = _state_problem(state)  # a list, or no optimizer: internal errors (tester 16)
    if problem is None:
        problem = _tensor_files_problem(folder)
    if problem is None:
        problem = _checksum_problem(folder, state.get("files_sha256"))
    if problem:
        raise _damaged(folder, problem)
    return state


def _checksum_problem(folder: Path, recorded: Any) -> Optional[str]:
    """Which tensor file differs from the sha256 that state.json recorded when it was written,
    or None (also for a checkpoint written before the sums were recorded). Bytes flipped inside
    optimizer.safetensors had read as NaN moments and ended the resumed run with 'the training
    loss became NaN ...; lower --lr or check the data' (tester 22)."""
    if recorded is None:
        return None
    if not isinstance(recorded, dict):
        return "state.json: 'files_sha256' is not a JSON object"
    for name in TENSOR_FILES:
        if name in recorded and _sha256(folder / name) != recorded[name]:
            return (
                f"{name} does not match the sha256 that state.json recorded when the checkpoint "
                "was written: the file was changed or damaged since"
            )
    return None


def _sha256(path: Path) -> str:
    """sha256_file, memoised on the file's identity (size, modification time): a resume reads
    the checkpoint's state several times."""
    info = path.stat()
    key = (str(path), info.st_size, info.st_mtime_ns, info.st_ino)
    if key not in _SHA256_MEMO:
        if len(_SHA256_MEMO) >= 2 * len(TENSOR_FILES):
            _SHA256_MEMO.clear()  # a few checkpoints' files at most
        _SHA256_MEMO[key] = sha256_file(path)
    return _SHA256_MEMO[key]


_SHA256_MEMO: dict[tuple, str] = {}


def _damaged(folder: Path, reason: str) -> UNetPlusPlusError:
    return UNetPlusPlusError(
        f"Checkpoint in {folder} does not fit this model or is damaged ({reason}); start "
        "again with --overwrite."
    )


def _state_problem(state: Any) -> Optional[str]:
    """What is wrong with the form of a parsed state.json, or None."""
    if not isinstance(state, dict):
        return "state.json is not a JSON object"
    epoch = state.get("epoch")
    if type(epoch) is not int or epoch < 0:
        return f"state.json: 'epoch' is {epoch!r}, not a count of epochs"
    for key, kind in (("config", dict), ("history", list), ("optimizer", dict)):
        if key in state and not isinstance(state[key], kind):
            return f"state.json: '{key}' is not a JSON {'object' if kind is dict else 'list'}"
    optimizer = state.get("optimizer")
    if optimizer is None:
        return "state.json has no optimizer state"
    groups = optimizer.get("param_groups")
    if not (isinstance(groups, list) and groups and all(isinstance(g, dict) for g in groups)):
        return "state.json: the optimizer state has no parameter groups"
    if not all(isinstance(g.get("params"), list) for g in groups):
        return "state.json: an optimizer parameter group lists no parameters"
    if not isinstance(optimizer.get("scalars", {}), dict):
        return "state.json: the optimizer's scalar state is not a JSON object"
    return None


def _tensor_files_problem(folder: Path) -> Optional[str]:
    """Why model.safetensors or optimizer.safetensors cannot be read (header only), or None."""
    from safetensors import SafetensorError, safe_open

    for name in TENSOR_FILES:
        try:
            with safe_open(str(folder / name), framework="pt") as handle:
                handle.keys()
        except FileNotFoundError:
            return f"{name} is missing"
        except (OSError, RuntimeError, ValueError, SafetensorError) as error:
            return f"{name}: {error}"
    return None


def load_checkpoint(
    out_dir: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: Optional[Any],
) -> dict:
    """Restore model, optimizer and scaler in place; returns the JSON state. Raises
    UNetPlusPlusError, in one line, for a checkpoint that is damaged or of another network
    (its tensors' names and shapes are compared with ``model``'s and ``optimizer``'s first)."""
    folder = Path(out_dir) / CHECKPOINT_DIR
    state = read_checkpoint_state(out_dir)
    from safetensors import SafetensorError  # a damaged file (tester 6: an internal error)

    try:
        weights = load_file(str(folder / "model.safetensors"))
        tensors = load_file(str(folder / "optimizer.safetensors"))
    except (OSError, RuntimeError, ValueError, SafetensorError) as error:
        raise _damaged(folder, str(error)) from error
    # PyTorch's own message listed every mismatched tensor on its own line (tester 16)
    problem = _model_mismatch(model, weights)
    if problem is None:  # another network's moments failed in the first step (tester 16)
        problem = _optimizer_mismatch(optimizer, tensors, state["optimizer"])
    if problem:
        raise _damaged(folder, problem)
    model.load_state_dict(weights, strict=True)
    try:
        optimizer.load_state_dict(_optimizer_join(tensors, state["optimizer"]))
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise _damaged(folder, f"the optimizer state: {error}") from error
    _match_parameter_layout(optimizer)
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    return state


def _model_mismatch(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> Optional[str]:
    """How the checkpoint's network tensors differ from ``model``'s (names, shapes), or None."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    reshaped = sorted(
        k for k in expected if k in weights and tuple(weights[k].shape) != expected[k]
    )
    parts = [f"{len(missing)} tensor(s) missing (first {missing[0]})"] if missing else []
    parts += [f"{len(extra)} unexpected tensor(s) (first {extra[0]})"] if extra else []
    if reshaped:
        first = reshaped[0]
        parts.append(
            f"{len(reshaped)} tensor(s) of another shape (first {first}: "
            f"{list(weights[first].shape)} in the checkpoint, {list(expected[first])} in the "
            "network)"
        )
    return "the network: " + "; ".join(parts) if parts else None


def _optimizer_mismatch(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict
) -> Optional[str]:
    """How the checkpoint's optimizer state differs from ``optimizer``'s parameters (groups,
    parameter counts, the moments' shapes), or None."""
    groups = optimizer.param_groups
    saved = [len(g["params"]) for g in meta["param_groups"]]
    now = [len(g["params"]) for g in groups]
    if saved != now:
        return f"the optimizer state holds {sum(saved)} parameters, this network {sum(now)}"
    parameters = [p for g in groups for p in g["params"]]
    for name, value in tensors.items():
        index, _, key = name.partition(".")
        if not (index.isdigit() and int(index) < len(parameters) and key):
            return f"the optimizer state names an unknown parameter ({name})"
        shape = tuple(parameters[int(index)].shape)
        if value.dim() and tuple(value.shape) != shape:
            return (
                f"the optimizer state of parameter {index} ({key}) has shape "
                f"{list(value.shape)}, the parameter {list(shape)}"
            )
    return None


def _match_parameter_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give restored moment tensors the memory layout of their parameters (e.g. channels-last),
    as freshly created ones have, so the resumed updates run exactly as uninterrupted ones."""
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            state = optimizer.state.get(parameter, {})
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and value.shape == parameter.shape:
                    state[key] = torch.empty_like(parameter, dtype=value.dtype).copy_(value)
