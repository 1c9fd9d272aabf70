"""Validation of a parsed ``model.json``: every field is checked strictly and every error names
the manifest file and the field (one :class:`UNetPlusPlusError` a user can act on)."""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any, Optional

from UNetPlusPlusLib.engine.manifest_options import (
    parse_bias_reference,
    parse_fingerprint,
    parse_ranges,
    parse_tta_config,
)
from UNetPlusPlusLib.engine.manifest_types import (
    ANATOMIES,
    ENSEMBLE,
    FORMAT_VERSION,
    MAX_DEPTH,
    NORMALIZATION_KINDS,
    PROMPT_KINDS,
    WEIGHTS_FILENAME,
    ChannelSpec,
    LabelSpec,
)
from UNetPlusPlusLib.engine.terminology import (
    RESERVED_CODE_CHARS,
    TERMINOLOGY_CODES,
    TERMINOLOGY_CONTEXTS,
)
from UNetPlusPlusLib.errors import UNetPlusPlusError

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ManifestValidator:
    """Strict field checks; every message names the manifest file and the field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, field_name: str, problem: str) -> UNetPlusPlusError:
        return UNetPlusPlusError(
            f"Model manifest {self.source} is invalid: field '{field_name}' {problem}."
        )

    # --- scalar helpers
    def string(self, value: Any, name: str, *, pattern: Optional[re.Pattern] = None) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(name, f"must be a non-empty string (got {value!r})")
        if pattern is not None and not pattern.match(value):
            raise self.fail(
                name, f"must use only letters, digits, '.', '_' and '-' (got {value!r})"
            )
        return value

    def integer(self, value: Any, name: str, minimum: Optional[int] = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(name, f"must be an integer (got {value!r})")
        if minimum is not None and value < minimum:
            raise self.fail(name, f"must be at least {minimum} (got {value})")
        return value

    def number(self, value: Any, name: str) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise self.fail(name, f"must be a finite number (got {value!r})")
        return float(value)

    def mapping(self, value: Any, name: str) -> dict:
        if not isinstance(value, dict):
            raise self.fail(name, f"must be a JSON object (got {type(value).__name__})")
        return value

    def sequence(self, value: Any, name: str, length: Optional[int] = None) -> list:
        if not isinstance(value, (list, tuple)):
            raise self.fail(name, f"must be a JSON list (got {type(value).__name__})")
        if length is not None and len(value) != length:
            raise self.fail(name, f"must have {length} items (got {len(value)})")
        return value

    def vector3(self, value: Any, name: str, integer: bool) -> tuple:
        items = self.sequence(value, name, 3)
        if integer:
            out = tuple(self.integer(v, f"{name}[{i}]", 1) for i, v in enumerate(items))
        else:
            out = tuple(self.number(v, f"{name}[{i}]") for i, v in enumerate(items))
            if min(out) <= 0:
                raise self.fail(name, f"must hold three positive numbers (x, y, z), got {items}")
        return out

    # --- structured fields
    def manifest_fields(self, data: Any) -> dict[str, Any]:
        """The checked fields of a whole manifest, as ``ModelManifest`` keyword arguments."""
        if not isinstance(data, dict):
            raise UNetPlusPlusError(f"Model manifest {self.source} must hold a JSON object.")
        known = set(_MANIFEST_KEYS)
        unknown = sorted(set(data) - known)
        if unknown:
            raise self.fail(unknown[0], "is not a manifest field (check its spelling)")
        missing = [k for k in _REQUIRED_KEYS if k not in data]
        if missing:
            raise self.fail(missing[0], "is missing")

        version = self.integer(data["format_version"], "format_version")
        if version != FORMAT_VERSION:
            raise self.fail(
                "format_version",
                f"is {version}, but this version of UNet++ reads format {FORMAT_VERSION};"
                " update the extension or use a matching model",
            )
        name = self.string(data["name"], "name", pattern=_SAFE_NAME)
        task = self.string(data["task"], "task", pattern=_SAFE_NAME)
        description = data.get("description", "")
        if not isinstance(description, str):
            raise self.fail("description", "must be a string")
        weights = self.weights_file(data.get("weights", WEIGHTS_FILENAME))
        sha256 = data["sha256"]
        if not isinstance(sha256, str) or not _SHA256.match(sha256.lower()):
            raise self.fail("sha256", f"must be 64 hexadecimal digits (got {sha256!r})")

        channels = self.channels(data["channels"])
        labels = self.labels(data["labels"])
        network = self.network(data["network"], len(channels), labels)
        depths, recommended = self.depths(data["depths"], data["recommended_depth"])
        overlap = self.number(data["overlap"], "overlap")
        if not 0.0 <= overlap < 1.0:
            raise self.fail("overlap", f"must be in [0, 1) (got {overlap})")

        return dict(
            format_version=version,
            name=name,
            task=task,
            description=description,
            weights=weights,
            sha256=sha256.lower(),
            network=network,
            channels=channels,
            labels=labels,
            spacing=self.vector3(data["spacing"], "spacing", integer=False),
            tile_size=self.tile_size(data["tile_size"], MAX_DEPTH, network),
            overlap=overlap,
            depths=depths,
            recommended_depth=recommended,
            prompt=self.prompt(data.get("prompt")),
            postprocess=self.postprocess(data.get("postprocess", {}), labels),
            test_time_augmentation=self.test_time_augmentation(data),
            inference=self.inference(data.get("inference", {}), channels, labels),
            validation=self.validation(data.get("validation", {})),
            training=copy.deepcopy(self.mapping(data.get("training", {}), "training")),
        )

    def weights_file(self, value: Any) -> str:
        name = self.string(value, "weights")
        if Path(name).name != name or name in (".", "..") or "\\" in name or ":" in name:
            raise self.fail("weights", f"must be a file name beside model.json (got {name!r})")
        return name

    def channels(self, value: Any) -> list[ChannelSpec]:
        items = self.sequence(value, "channels")
        if not items:
            raise self.fail("channels", "must list at least one input channel")
        out, seen = [], set()
        for i, item in enumerate(items):
            where = f"channels[{i}]"
            item = self.mapping(item, where)
            name = self.string(item.get("name"), f"{where}.name")
            if name in seen:
                raise self.fail(f"{where}.name", f"repeats the channel name {name!r}")
            seen.add(name)
            modality = self.string(item.get("modality"), f"{where}.modality")
            norm = self.mapping(item.get("normalization"), f"{where}.normalization")
            kind = norm.get("kind")
            if kind not in NORMALIZATION_KINDS:
                raise self.fail(
                    f"{where}.normalization.kind",
                    f"must be one of {', '.join(NORMALIZATION_KINDS)} (got {kind!r})",
                )
            if kind == "ct":
                window = self.sequence(norm.get("window"), f"{where}.normalization.window", 2)
                low, high = (self.number(v, f"{where}.normalization.window") for v in window)
                if not low < high:
                    raise self.fail(
                        f"{where}.normalization.window", "must be [low, high], low < high"
                    )
            out.append(ChannelSpec(name=name, modality=modality, normalization=copy.deepcopy(norm)))
        return out

    def labels(self, value: Any) -> list[LabelSpec]:
        items = self.sequence(value, "labels")
        if not items:
            raise self.fail("labels", "must list at least one label (background is implicit)")
        out: list[LabelSpec] = []
        values: set[int] = set()
        names: set[str] = set()
        for i, item in enumerate(items):
            where = f"labels[{i}]"
            item = self.mapping(item, where)
            extra = sorted(set(item) - {"value", "name", "color", "terminology"})
            if extra:
                raise self.fail(f"{where}.{extra[0]}", "is not a label field")
            label_value = self.integer(item.get("value"), f"{where}.value")
            if label_value < 1:
                raise self.fail(
                    f"{where}.value", "must be 1 or more (0 is the implicit background)"
                )
            if label_value in values:
                raise self.fail(f"{where}.value", f"repeats the label value {label_value}")
            values.add(label_value)
            name = self.string(item.get("name"), f"{where}.name")
            if name.lower() in names:
                raise self.fail(f"{where}.name", f"repeats the label name {name!r}")
            names.add(name.lower())
            color = self.sequence(item.get("color"), f"{where}.color", 3)
            rgb = tuple(self.number(c, f"{where}.color") for c in color)
            if not all(0.0 <= c <= 1.0 for c in rgb):
                raise self.fail(f"{where}.color", f"must be three numbers in [0, 1] (got {color})")
            terminology = item.get("terminology")
            if terminology is not None:
                terminology = self.terminology(terminology, f"{where}.terminology")
            out.append(LabelSpec(label_value, name, rgb, terminology))  # type: ignore[arg-type]
        expected = set(range(1, len(out) + 1))
        if values != expected:
            raise self.fail(
                "labels",
                f"must number the classes 1..{len(out)} without gaps (got {sorted(values)})",
            )
        return out

    def terminology(self, value: Any, where: str) -> dict:
        value = self.mapping(value, where)
        allowed = TERMINOLOGY_CODES + TERMINOLOGY_CONTEXTS
        extra = sorted(set(value) - set(allowed))
        if extra:
            raise self.fail(f"{where}.{extra[0]}", f"is not one of {', '.join(allowed)}")
        for key in ("category", "type"):
            if key not in value:
                raise self.fail(f"{where}.{key}", "is missing")
        out = {}
        for key in TERMINOLOGY_CODES:
            if value.get(key) is None:
                continue
            code = self.mapping(value[key], f"{where}.{key}")
            entry = {}
            for part in ("scheme", "code", "meaning"):
                text = self.string(code.get(part), f"{where}.{key}.{part}")
                if RESERVED_CODE_CHARS & set(text):
                    raise self.fail(f"{where}.{key}.{part}", "must not contain '~', '^' or '|'")
                entry[part] = text
            out[key] = entry
        for key in TERMINOLOGY_CONTEXTS:
            if value.get(key) is not None:
                text = self.string(value[key], f"{where}.{key}")
                if RESERVED_CODE_CHARS & set(text):
                    raise self.fail(f"{where}.{key}", "must not contain '~', '^' or '|'")
                out[key] = text
        return out

    def network(self, value: Any, n_channels: int, labels: list[LabelSpec]) -> dict:
        network = self.mapping(value, "network")
        in_channels = self.integer(network.get("in_channels"), "network.in_channels", 1)
        if in_channels != n_channels:
            raise self.fail(
                "network.in_channels", f"is {in_channels} but 'channels' lists {n_channels}"
            )
        out_channels = self.integer(network.get("out_channels"), "network.out_channels", 2)
        if out_channels != len(labels) + 1:
            raise self.fail(
                "network.out_channels",
                f"is {out_channels}, but background + {len(labels)} label(s) = {len(labels) + 1}",
            )
        if "features" in network:
            features = self.sequence(network["features"], "network.features", 6)
            for i, f in enumerate(features):
                self.integer(f, f"network.features[{i}]", 1)
        if "norm" in network:
            self.string(network["norm"], "network.norm")
        return copy.deepcopy(network)

    def tile_size(self, value: Any, depth: int, network: dict) -> tuple:
        """The tile (x, y, z) in voxels. Every side halves ``depth`` times (``MAX_DEPTH``: the
        ensemble always runs the full network) to at least one voxel, and with instance norm
        the coarsest level holds more than one voxel: the limits of
        ``network.UNetPlusPlus3D._check_input``, which would otherwise fail mid-run."""
        tile = self.vector3(value, "tile_size", integer=True)
        coarsest = [side // 2**depth for side in tile]
        if min(coarsest) < 1:
            raise self.fail(
                "tile_size",
                f"is {list(tile)}, too small for depth {depth}: every side needs at least "
                f"{2**depth} voxels",
            )
        if network.get("norm", "instance") == "instance" and math.prod(coarsest) < 2:
            raise self.fail(
                "tile_size",
                f"is {list(tile)}, too small for depth {depth} with instance norm: make one "
                f"side at least {2 ** (depth + 1)}",
            )
        return tile

    def depths(self, depths_value: Any, recommended: Any) -> tuple[tuple[int, ...], int]:
        items = self.sequence(depths_value, "depths")
        if not items:
            raise self.fail("depths", "must list at least one depth")
        depths = tuple(self.integer(d, f"depths[{i}]", 1) for i, d in enumerate(items))
        if max(depths) > MAX_DEPTH or len(set(depths)) != len(depths):
            raise self.fail(
                "depths", f"must be distinct depths from 1 to {MAX_DEPTH} (got {items})"
            )
        recommended = self.integer(recommended, "recommended_depth")
        if recommended not in depths:
            raise self.fail(
                "recommended_depth", f"is {recommended}, which is not among depths {list(depths)}"
            )
        return depths, recommended

    def prompt(self, value: Any) -> Optional[dict]:
        if value is None:
            return None
        prompt = self.mapping(value, "prompt")
        if prompt.get("kind") not in PROMPT_KINDS:
            raise self.fail("prompt.kind", f"must be one of {', '.join(PROMPT_KINDS)} or null")
        self.vector3(prompt.get("box_mm"), "prompt.box_mm", integer=False)
        return copy.deepcopy(prompt)

    def postprocess(self, value: Any, labels: list[LabelSpec]) -> dict:
        post = self.mapping(value, "postprocess")
        largest = post.get("largest_component", False)
        if not isinstance(largest, bool):
            raise self.fail("postprocess.largest_component", "must be true or false")
        fraction = post.get("min_component_fraction")
        if fraction is not None and (
            isinstance(fraction, bool)
            or not isinstance(fraction, (int, float))
            or not 0.0 < float(fraction) <= 1.0
        ):
            raise self.fail("postprocess.min_component_fraction", "must be a number in (0, 1]")
        smallest = post.get("min_lesion_mm3")
        if smallest is not None and (
            isinstance(smallest, bool)
            or not isinstance(smallest, (int, float))
            or not 0.0 < float(smallest) < float("inf")
        ):
            raise self.fail("postprocess.min_lesion_mm3", "must be a positive number of mm^3")
        if "plausible_ml" in post:  # per-label volume ranges (volume_plausibility.py)
            try:
                parse_ranges(post["plausible_ml"], [label.name for label in labels])
            except ValueError as error:
                raise self.fail("postprocess.plausible_ml", str(error)) from error
        return copy.deepcopy(post)

    def test_time_augmentation(self, data: dict) -> dict:
        if "test_time_augmentation" not in data:
            return {}
        try:
            return parse_tta_config(data["test_time_augmentation"])
        except ValueError as error:
            raise self.fail("test_time_augmentation", str(error)) from error

    def inference(self, value: Any, channels: list[ChannelSpec], labels: list[LabelSpec]) -> dict:
        inference = self.mapping(value, "inference")
        n_channels = len(channels)
        options = (
            "crop_nonzero",
            "channel_check",
            "crop_body",
            "channel_fingerprint",
            "max_nonzero_ml",
            "anatomy",
            "bias_field",
        )
        unknown = sorted(set(inference) - set(options))
        if unknown:
            raise self.fail(
                f"inference.{unknown[0]}", f"is not an inference option ({', '.join(options)})"
            )
        for flag in options[:3]:
            if not isinstance(inference.get(flag, True), bool):
                raise self.fail(f"inference.{flag}", "must be true or false")
        if "max_nonzero_ml" in inference:
            limit = self.number(inference["max_nonzero_ml"], "inference.max_nonzero_ml")
            if limit <= 0:
                raise self.fail("inference.max_nonzero_ml", f"must be positive (got {limit})")
        if "anatomy" in inference:
            self.anatomy(inference["anatomy"], channels, labels)
        if "channel_fingerprint" in inference:
            try:
                parse_fingerprint(inference["channel_fingerprint"], n_channels)
            except ValueError as error:
                raise self.fail("inference.channel_fingerprint", str(error)) from error
        if "bias_field" in inference:
            try:
                parse_bias_reference(inference["bias_field"], n_channels)
            except ValueError as error:
                raise self.fail("inference.bias_field", str(error)) from error
        return copy.deepcopy(inference)

    def anatomy(self, value: Any, channels: list[ChannelSpec], labels: list[LabelSpec]) -> None:
        """``inference.anatomy``: an anatomy the result is checked against (anatomy_check.py),
        naming one of the labels (or with a single label), for a model with a channel in HU."""
        if value not in ANATOMIES:
            raise self.fail("inference.anatomy", f"must be one of {', '.join(ANATOMIES)}")
        if not any(channel.normalization["kind"] == "ct" for channel in channels):
            raise self.fail("inference.anatomy", "needs a channel normalised as 'ct' (in HU)")
        if len(labels) > 1 and value not in [label.name for label in labels]:
            raise self.fail(
                "inference.anatomy", f"names no label of this model (a label named {value!r})"
            )

    def validation(self, value: Any) -> dict:
        validation = self.mapping(value, "validation")
        per_depth = validation.get("per_depth", {})
        per_depth = self.mapping(per_depth, "validation.per_depth")
        allowed = {str(d) for d in range(1, MAX_DEPTH + 1)} | {ENSEMBLE}
        for key, figures in per_depth.items():
            if key not in allowed:
                raise self.fail(f"validation.per_depth.{key}", "must be named 1..4 or 'ensemble'")
            self.mapping(figures, f"validation.per_depth.{key}")
        return copy.deepcopy(validation)


_MANIFEST_KEYS = tuple(
    "format_version name task description weights sha256 network channels labels spacing"
    " tile_size overlap depths recommended_depth prompt postprocess test_time_augmentation"
    " inference validation training".split()
)
_REQUIRED_KEYS = tuple(
    "format_version name task sha256 network channels labels spacing tile_size overlap depths"
    " recommended_depth".split()
)
