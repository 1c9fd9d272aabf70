"""What the weights were trained for, stored inside ``weights.safetensors``, checked at load.

The manifest's sha256 protects the weights, not ``model.json`` itself: an edited manifest (the
spacing, a channel's normalisation, the order or names of the labels) loaded as before and gave a
confident segmentation on the wrong grid or with swapped label names. :func:`save_model_package`
(``manifest_weights.py``) now writes the fields that define what the weights compute into the
safetensors header's metadata (key :data:`CONTRACT_KEY`, JSON); :func:`check_contract` compares
them with the manifest before any inference or fine-tune. Weights written before this (no such
metadata) load as before.

The contract: ``network``, ``spacing`` (mm, x y z), ``channels`` (name, modality, normalisation,
in order), ``labels`` (value and name, in order) and the prompt kind. Fields a user or the ship
step may change after training are not in it: recommended depth, overlap, tile size,
post-processing, the ``inference`` checks, validation and training records, colours and
terminology.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from UNetPlusPlusLib.engine.manifest_model import ModelManifest
from UNetPlusPlusLib.errors import UNetPlusPlusError

CONTRACT_KEY = "unetpp_contract"


def _rounded(value: Any) -> Any:
    """Floats to 6 decimals, recursively, so that JSON round trips compare equal."""
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _rounded(v) for k, v in value.items()}
    return value


def contract_of(manifest: ModelManifest) -> dict:
    """The fields of ``manifest`` that define what its weights compute (see the module doc)."""
    return _rounded(
        {
            "network": manifest.network,
            "spacing": list(manifest.spacing),
            "channels": [
                {"name": c.name, "modality": c.modality, "normalization": c.normalization}
                for c in manifest.channels
            ],
            "labels": [[label.value, label.name] for label in manifest.labels],
            "prompt": (manifest.prompt or {}).get("kind"),
        }
    )


def contract_metadata(manifest: ModelManifest) -> dict[str, str]:
    """The safetensors metadata entry (strings only) that records ``manifest``'s contract."""
    return {CONTRACT_KEY: json.dumps(contract_of(manifest), sort_keys=True)}


def check_contract(manifest: ModelManifest, metadata: Mapping[str, str]) -> None:
    """Refuse a manifest that disagrees with the contract stored in its weights' metadata.

    ``metadata``: the safetensors header's metadata (``safe_open(...).metadata()``); without
    :data:`CONTRACT_KEY` (weights written before the contract) nothing is checked.
    Raises UNetPlusPlusError naming each field that differs, with both values.
    """
    stored = (metadata or {}).get(CONTRACT_KEY)
    if stored is None:
        return
    try:
        trained = json.loads(stored)
    except json.JSONDecodeError as exc:
        raise UNetPlusPlusError(
            f"Model weights {manifest.weights_path} carry an unreadable training contract "
            f"({exc.msg}); reinstall the model."
        ) from exc
    said = contract_of(manifest)
    differ = [key for key in sorted(set(trained) | set(said)) if trained.get(key) != said.get(key)]
    if differ:
        details = "; ".join(
            f"{key}: model.json {json.dumps(said.get(key))}, weights {json.dumps(trained.get(key))}"
            for key in differ
        )
        raise UNetPlusPlusError(
            f"Model manifest {manifest.path} does not describe its weights ({details}). The "
            "manifest was edited or belongs to other weights, and would give wrong results; "
            "reinstall the model, or retrain it with the settings you want."
        )
