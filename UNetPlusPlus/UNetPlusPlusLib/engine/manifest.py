"""Model packages: ``model.json`` (the manifest) beside ``weights.safetensors``.

The manifest is the single source for channels, labels, names, colours, standard codes, spacing,
normalisation, tile size, depths, the recommended depth, per-depth figures and the weights'
checksum (docs/ARCHITECTURE.md, "Model package"). Loading validates every field and names the
file and the field when something is wrong. Weights are read with safetensors only, never with
pickle, and only after their sha256 matches the manifest.

This module is the public import path; the code lives in one module per job:

- :mod:`.manifest_types`: format constants, ``ChannelSpec``, ``LabelSpec``
- :mod:`.manifest_schema`: the field checks of a parsed ``model.json``
- :mod:`.manifest_model`: ``ModelManifest`` (JSON form, load, atomic save)
- :mod:`.manifest_weights`: sha256 and safetensors IO (``load_weights``, ``save_model_package``)
- :mod:`.terminology`: the standard codes (re-exported here for callers)
"""

from __future__ import annotations

from UNetPlusPlusLib.engine.manifest_model import ModelManifest
from UNetPlusPlusLib.engine.manifest_types import (
    ENSEMBLE,
    FORMAT_VERSION,
    MANIFEST_FILENAME,
    MAX_DEPTH,
    NORMALIZATION_KINDS,
    PROMPT_KINDS,
    WEIGHTS_FILENAME,
    ChannelSpec,
    LabelSpec,
    PathLike,
)
from UNetPlusPlusLib.engine.manifest_weights import (
    load_weights,
    open_weights,
    save_model_package,
    sha256_file,
    verify_weights,
)
from UNetPlusPlusLib.engine.terminology import (
    ANATOMIC_CONTEXT,
    ANATOMICAL_STRUCTURE,
    MORPHOLOGICALLY_ALTERED,
    RESERVED_CODE_CHARS,
    SEGMENTATION_CONTEXT,
    STANDARD_TERMINOLOGY,
    TERMINOLOGY_CODES,
    TERMINOLOGY_CONTEXTS,
    TISSUE,
    UNETPP_CONTEXT,
    standard_terminology,
    terminology_entry_string,
)

__all__ = [
    "ANATOMICAL_STRUCTURE",
    "ANATOMIC_CONTEXT",
    "ENSEMBLE",
    "FORMAT_VERSION",
    "MANIFEST_FILENAME",
    "MAX_DEPTH",
    "MORPHOLOGICALLY_ALTERED",
    "NORMALIZATION_KINDS",
    "PROMPT_KINDS",
    "RESERVED_CODE_CHARS",
    "SEGMENTATION_CONTEXT",
    "STANDARD_TERMINOLOGY",
    "TERMINOLOGY_CODES",
    "TERMINOLOGY_CONTEXTS",
    "TISSUE",
    "UNETPP_CONTEXT",
    "WEIGHTS_FILENAME",
    "ChannelSpec",
    "LabelSpec",
    "ModelManifest",
    "PathLike",
    "load_weights",
    "open_weights",
    "save_model_package",
    "sha256_file",
    "standard_terminology",
    "terminology_entry_string",
    "verify_weights",
]
