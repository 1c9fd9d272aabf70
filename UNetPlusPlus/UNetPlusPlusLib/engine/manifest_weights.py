"""Weights IO of a model package: sha256 checks and ``weights.safetensors`` reading and writing.

Weights are read with safetensors only, never with pickle, and only after their sha256 matches
the manifest. torch is imported inside the functions, so listing models stays torch-free.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from UNetPlusPlusLib.engine.manifest_contract import check_contract, contract_metadata
from UNetPlusPlusLib.engine.manifest_model import ModelManifest, umask_file_mode
from UNetPlusPlusLib.engine.manifest_types import MANIFEST_FILENAME, PathLike
from UNetPlusPlusLib.errors import ChecksumError, UNetPlusPlusError

if TYPE_CHECKING:  # torch is imported where weights are read or written, so the Slicer panel
    import torch  # can list models before PyTorch is installed.


def sha256_file(path: PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_weights(manifest: ModelManifest) -> Path:
    """Check that the weights exist and match the manifest's sha256; return their path."""
    path = manifest.weights_path
    if not path.is_file():
        raise UNetPlusPlusError(
            f"Model weights {path} named by {manifest.path} are missing; reinstall the model."
        )
    actual = sha256_file(path)
    if actual != manifest.sha256:
        raise ChecksumError(
            f"Model weights {path} do not match their manifest: expected sha256 {manifest.sha256},"
            f" got {actual}; the file is corrupt or was replaced, so reinstall the model."
        )
    return path


def check_weights_contract(manifest: ModelManifest) -> Path:
    """Verify the sha256 and the training contract of ``manifest``'s weights without reading
    the tensors (the safetensors header only), so a caller can refuse an edited model.json
    before slow work: ``unetpp train --init`` read and preprocessed the whole dataset first.
    Returns the weights' path. Raises ChecksumError or UNetPlusPlusError."""
    from safetensors import SafetensorError, safe_open

    path = verify_weights(manifest)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise _unreadable(path, exc) from exc
    check_contract(manifest, metadata)  # model.json against what the weights were trained for
    return path


def load_weights(manifest: ModelManifest) -> dict[str, torch.Tensor]:
    """:func:`check_weights_contract` (the sha256, and a model.json edited to another spacing,
    normalisation or label order is refused: ``manifest_contract.py``), then read the
    safetensors file; floating tensors become float32. Raises ChecksumError or
    UNetPlusPlusError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = check_weights_contract(manifest)
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise _unreadable(path, exc) from exc
    return {k: (v.float() if v.is_floating_point() else v) for k, v in tensors.items()}


@contextmanager
def open_weights(manifest: ModelManifest) -> Iterator[Mapping[str, torch.Tensor]]:
    """:func:`check_weights_contract`, then the weights as a read-only mapping that reads each
    tensor from the file when it is asked for (floating ones as float32), like
    :func:`load_weights` but never holding the whole model: install checks a large model with
    about one tensor in memory. Raises ChecksumError or UNetPlusPlusError (unreadable)."""
    from safetensors import SafetensorError, safe_open

    path = check_weights_contract(manifest)
    try:
        with safe_open(str(path), framework="pt") as handle:
            yield _TensorsOnDemand(handle)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise _unreadable(path, exc) from exc


class _TensorsOnDemand(Mapping):
    """The tensors of an open safetensors handle, each read on access."""

    def __init__(self, handle) -> None:
        self.handle = handle
        self.names = list(handle.keys())

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self.names:
            raise KeyError(name)
        tensor = self.handle.get_tensor(name)
        return tensor.float() if tensor.is_floating_point() else tensor

    def __iter__(self):
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


def _unreadable(path: Path, exc: Exception) -> UNetPlusPlusError:
    return UNetPlusPlusError(
        f"Model weights {path} are not a readable safetensors file ({exc}); reinstall the model."
    )


def save_model_package(
    out_dir: PathLike,
    model_state_dict: Mapping[str, torch.Tensor],
    manifest: ModelManifest,
    dtype: Optional[torch.dtype] = None,
) -> ModelManifest:
    """Write ``weights.safetensors`` and ``model.json`` (with the weights' sha256) to ``out_dir``.

    Floating tensors are stored as ``dtype`` (float16 halves the size; values must fit its range);
    integer tensors are kept (default float32). Returns the saved manifest, whose ``path`` points
    into ``out_dir``.
    """
    import torch
    from safetensors.torch import save_file

    dtype = torch.float32 if dtype is None else dtype
    if dtype not in (torch.float16, torch.float32, torch.bfloat16):
        raise ValueError(f"dtype must be float16, bfloat16 or float32, not {dtype}")
    tensors = {}
    for key, value in model_state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"state dict entry {key!r} is not a tensor")
        value = value.detach().cpu()
        if value.is_floating_point():
            if dtype == torch.float16 and value.numel() and value.abs().max() > 65504:
                raise ValueError(f"tensor {key!r} exceeds the float16 range; save as float32")
            value = value.to(dtype)
        tensors[key] = value.contiguous().clone()

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights_path = out_dir / manifest.weights
    fd, tmp_name = tempfile.mkstemp(dir=out_dir, prefix=".weights-", suffix=".tmp")
    os.close(fd)
    try:
        metadata = {"format": "pt", "model": manifest.name, **contract_metadata(manifest)}
        save_file(tensors, tmp_name, metadata=metadata)
        digest = sha256_file(tmp_name)
        os.chmod(tmp_name, umask_file_mode())
        os.replace(tmp_name, weights_path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    saved = replace(manifest, sha256=digest, path=None)
    saved.save(out_dir / MANIFEST_FILENAME)
    return saved
