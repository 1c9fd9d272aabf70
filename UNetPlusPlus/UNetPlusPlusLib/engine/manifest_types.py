"""The plain parts of a model manifest: format constants and the channel and label records.

``ChannelSpec`` and ``LabelSpec`` are the items of ``model.json``'s ``channels`` and ``labels``
(docs/ARCHITECTURE.md, "Model package"); :mod:`.manifest_schema` checks them and
:mod:`.manifest_model` holds them in a :class:`~.manifest_model.ModelManifest`.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Optional, Union

FORMAT_VERSION = 1
MANIFEST_FILENAME = "model.json"
WEIGHTS_FILENAME = "weights.safetensors"

NORMALIZATION_KINDS = ("ct", "mr")
PROMPT_KINDS = ("point",)
#: What ``inference.anatomy`` may name: the result is checked against it (anatomy_check.py).
ANATOMIES = ("liver",)
ENSEMBLE = "ensemble"
MAX_DEPTH = 4

PathLike = Union[str, "os.PathLike[str]"]


@dataclass
class ChannelSpec:
    """One input channel: its name, modality and normalisation (``{"kind": "ct"|"mr", ...}``)."""

    name: str
    modality: str
    normalization: dict

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "modality": self.modality,
            "normalization": copy.deepcopy(self.normalization),
        }


@dataclass
class LabelSpec:
    """One output class: ``value`` is the class index (0 is background and never listed)."""

    value: int
    name: str
    color: tuple[float, float, float]
    terminology: Optional[dict] = None

    def to_dict(self) -> dict:
        return {
            "value": self.value,
            "name": self.name,
            "color": list(self.color),
            "terminology": copy.deepcopy(self.terminology),
        }
