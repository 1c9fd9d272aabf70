"""Model package manifest: strict validation, round trips, checksums and safetensors IO."""

from __future__ import annotations

import copy
import json

import pytest
import slicerio.segmentation
import torch
from UNetPlusPlusLib.engine.manifest import (
    STANDARD_TERMINOLOGY,
    LabelSpec,
    ModelManifest,
    load_weights,
    save_model_package,
    sha256_file,
    standard_terminology,
    terminology_entry_string,
)
from UNetPlusPlusLib.errors import ChecksumError, UNetPlusPlusError


def example_dict() -> dict:
    """The manifest of docs/ARCHITECTURE.md, "Model package"."""
    return {
        "format_version": 1,
        "name": "liver-ct-demo",
        "task": "liver",
        "description": "test model",
        "weights": "weights.safetensors",
        "sha256": "ab" * 32,
        "network": {
            "in_channels": 1,
            "out_channels": 2,
            "features": [8, 16, 32, 64, 128, 8],
            "norm": "instance",
        },
        "channels": [
            {"name": "CT", "modality": "CT", "normalization": {"kind": "ct", "window": [-160, 240]}}
        ],
        "labels": [
            {
                "value": 1,
                "name": "liver",
                "color": [0.87, 0.56, 0.38],
                "terminology": copy.deepcopy(STANDARD_TERMINOLOGY["liver"]),
            }
        ],
        "spacing": [3.0, 3.0, 2.0],
        "tile_size": [64, 48, 32],
        "overlap": 0.25,
        "depths": [1, 2, 3, 4],
        "recommended_depth": 4,
        "prompt": None,
        "postprocess": {"largest_component": True},
        "validation": {
            "data": "3 CTs",
            "label_source": "expert",
            "per_depth": {
                "1": {"dice": {"liver": 0.81}, "seconds_per_volume": 1.2},
                "ensemble": {},
            },
        },
        "training": {"command": "unetpp train ...", "commit": "abc", "epochs": 0},
    }


def tiny_state_dict() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {
        "conv_0_0.conv.weight": torch.randn(4, 1, 3, 3, 3),
        "conv_0_0.conv.bias": torch.randn(4),
        "final_conv_0_1.weight": torch.randn(2, 4, 1, 1, 1),
        "norm.num_batches_tracked": torch.tensor(7, dtype=torch.int64),
    }


def write_json(tmp_path, data) -> str:
    path = tmp_path / "model.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_example_loads_with_accessors(tmp_path):
    manifest = ModelManifest.load(write_json(tmp_path, example_dict()))
    assert manifest.name == "liver-ct-demo" and manifest.task == "liver"
    assert manifest.spacing == (3.0, 3.0, 2.0)
    assert manifest.tile_size == (64, 48, 32)
    assert manifest.tile_size_zyx == (32, 48, 64)
    assert manifest.num_classes == 2
    assert manifest.depths == (1, 2, 3, 4) and manifest.recommended_depth == 4
    assert manifest.label_by_name("Liver").value == 1
    assert manifest.labels[0].color == (0.87, 0.56, 0.38)
    assert manifest.channels[0].normalization == {"kind": "ct", "window": [-160, 240]}
    assert manifest.validation_for(1)["dice"]["liver"] == 0.81
    assert manifest.validation_for("ensemble") == {}
    assert manifest.validation_for(3) == {}
    assert manifest.weights_path == tmp_path / "weights.safetensors"
    assert manifest.path == tmp_path / "model.json"
    # a folder is accepted in place of its model.json
    assert ModelManifest.load(tmp_path) == manifest


def test_a_relative_path_is_kept_absolute(tmp_path, monkeypatch):
    """A background job's process runs in its own folder: a relative model.json path given in
    the Slicer Logic (start_job) must still name the same file there (tester, session 10)."""
    write_json(tmp_path, example_dict())
    monkeypatch.chdir(tmp_path.parent)
    manifest = ModelManifest.load(f"{tmp_path.name}/model.json")
    assert manifest.path.is_absolute() and manifest.path == tmp_path / "model.json"
    assert manifest.weights_path == tmp_path / "weights.safetensors"


def test_a_pipe_given_as_manifest_is_named_so(tmp_path):
    """Tester 15: a FIFO given as --model was reported as not existing (never opened: a read
    would block)."""
    import os

    fifo = tmp_path / "model.json"
    os.mkfifo(fifo)
    with pytest.raises(UNetPlusPlusError, match="model.json is not a regular file"):
        ModelManifest.load(fifo)
    with pytest.raises(UNetPlusPlusError, match="does not exist"):
        ModelManifest.load(tmp_path / "missing.json")


def test_round_trip_save_load_to_dict(tmp_path):
    manifest = ModelManifest.from_dict(example_dict())
    assert manifest.to_dict() == example_dict()
    manifest.save(tmp_path / "out.json")
    again = ModelManifest.load(tmp_path / "out.json")
    assert again == manifest
    assert again.to_dict() == example_dict()
    assert "path" not in json.loads((tmp_path / "out.json").read_text())


def test_unknown_label_name_lists_labels():
    manifest = ModelManifest.from_dict(example_dict())
    with pytest.raises(UNetPlusPlusError, match="no label 'spleen'.*liver"):
        manifest.label_by_name("spleen")


def _set(path: str, value):
    """Build a mutation that sets a dotted/indexed field of the example; DELETE removes it."""

    def mutate(data: dict) -> dict:
        parts = path.split(".")
        target = data
        for part in parts[:-1]:
            target = target[int(part)] if part.isdigit() else target[part]
        last = int(parts[-1]) if parts[-1].isdigit() else parts[-1]
        if value is DELETE:
            del target[last]
        else:
            target[last] = value
        return data

    return mutate


DELETE = object()

INVALID = [
    # (mutation, field named in the message)
    (_set("name", DELETE), "name"),
    (_set("sha256", DELETE), "sha256"),
    (_set("labels", DELETE), "labels"),
    (_set("tile_size", DELETE), "tile_size"),
    (_set("format_version", 2), "format_version"),
    (_set("format_version", "1"), "format_version"),
    (_set("name", ""), "name"),
    (_set("name", "../escape"), "name"),
    (_set("task", 3), "task"),
    (_set("sha256", "xyz"), "sha256"),
    (_set("weights", "../weights.safetensors"), "weights"),
    (_set("weights", "/tmp/weights.safetensors"), "weights"),
    (_set("spacing", [1.0, 1.0]), "spacing"),
    (_set("spacing", [1.0, 0.0, 1.0]), "spacing"),
    (_set("spacing", [1.0, "a", 1.0]), "spacing[1]"),
    (_set("tile_size", [64, 64, 32.5]), "tile_size[2]"),
    (_set("tile_size", [64, 0, 32]), "tile_size[1]"),
    # tester 6: tiles the full network (depth 4, also the ensemble) cannot run; they failed
    # mid-run with "internal error (ValueError: input (7, 7, 7) is too small ...)"
    (_set("tile_size", [7, 7, 7]), "tile_size"),
    (_set("tile_size", [64, 64, 8]), "tile_size"),
    (_set("tile_size", [24, 24, 24]), "tile_size"),  # instance norm: one voxel at level 4
    (_set("inference", {"max_nonzero_ml": -1}), "inference.max_nonzero_ml"),
    (_set("inference", {"max_nonzero_ml": "big"}), "inference.max_nonzero_ml"),
    (_set("overlap", 1.0), "overlap"),
    (_set("overlap", True), "overlap"),
    (_set("depths", [1, 2, 5]), "depths"),
    (_set("depths", []), "depths"),
    (lambda d: _set("depths", [1, 2])(d), "recommended_depth"),  # 4 is no longer among depths
    (_set("channels", []), "channels"),
    (_set("channels.0.normalization", {"kind": "zscore"}), "channels[0].normalization.kind"),
    (_set("channels.0.normalization", {"kind": "ct", "window": [240, -160]}), "window"),
    (_set("labels", []), "labels"),
    (_set("labels.0.value", 0), "labels[0].value"),
    (_set("labels.0.value", 2), "labels"),
    (_set("labels.0.color", [1.0, 0.5]), "labels[0].color"),
    (_set("labels.0.color", [255, 0, 0]), "labels[0].color"),
    (
        _set("labels.0.terminology", {"type": {"scheme": "SCT", "code": "1", "meaning": "x"}}),
        "labels[0].terminology.category",
    ),  # fmt: skip
    (_set("labels.0.terminology.type.meaning", "a~b"), "labels[0].terminology.type.meaning"),
    (_set("network.in_channels", 2), "network.in_channels"),
    (_set("network.out_channels", 3), "network.out_channels"),
    (_set("network.features", [8, 16]), "network.features"),
    (_set("prompt", {"kind": "box"}), "prompt.kind"),
    (_set("prompt", {"kind": "point", "box_mm": [30, 30]}), "prompt.box_mm"),
    (_set("postprocess", {"largest_component": "yes"}), "postprocess.largest_component"),
    (_set("validation", {"per_depth": {"5": {}}}), "validation.per_depth.5"),
    (_set("colour", [1, 0, 0]), "colour"),
]


def test_smallest_tiles_the_network_runs_are_accepted(tmp_path):
    # 16 voxels on one axis is fine when the coarsest level still holds several voxels (the
    # shipped lung-nodule model's tile is 48 x 48 x 16)
    path = write_json(tmp_path, _set("tile_size", [48, 48, 16])(example_dict()))
    assert ModelManifest.load(path).tile_size == (48, 48, 16)
    path = write_json(tmp_path, _set("tile_size", [32, 16, 16])(example_dict()))
    assert ModelManifest.load(path).tile_size == (32, 16, 16)


@pytest.mark.parametrize("mutate, field_name", INVALID)
def test_invalid_manifest_names_file_and_field(tmp_path, mutate, field_name):
    path = write_json(tmp_path, mutate(example_dict()))
    with pytest.raises(UNetPlusPlusError) as info:
        ModelManifest.load(path)
    message = str(info.value)
    assert path in message
    assert f"'{field_name}'" in message or field_name in message


def test_duplicate_labels_refused(tmp_path):
    data = example_dict()
    data["network"]["out_channels"] = 3
    data["labels"].append(copy.deepcopy(data["labels"][0]))
    with pytest.raises(UNetPlusPlusError, match=r"labels\[1\]\.value.*repeats"):
        ModelManifest.from_dict(data)
    data["labels"][1]["value"] = 2
    with pytest.raises(UNetPlusPlusError, match=r"labels\[1\]\.name.*repeats"):
        ModelManifest.from_dict(data)
    data["labels"][1]["name"] = "tumour"
    assert ModelManifest.from_dict(data).num_classes == 3


def test_pruned_depths_and_point_prompt():
    data = example_dict()
    data["depths"], data["recommended_depth"] = [2, 3], 2
    data["prompt"] = {"kind": "point", "box_mm": [40, 40, 40]}
    manifest = ModelManifest.from_dict(data)
    assert manifest.depths == (2, 3) and manifest.recommended_depth == 2
    assert manifest.prompt["box_mm"] == [40, 40, 40]
    data["recommended_depth"] = "ensemble"  # a depth the network runs, not a recommendation
    with pytest.raises(UNetPlusPlusError, match="recommended_depth"):
        ModelManifest.from_dict(data)


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", ""])
def test_bad_json_names_file(tmp_path, text):
    path = tmp_path / "model.json"
    path.write_text(text)
    with pytest.raises(UNetPlusPlusError, match="model.json"):
        ModelManifest.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(UNetPlusPlusError, match="does not exist"):
        ModelManifest.load(tmp_path / "nowhere" / "model.json")


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_save_package_and_load_weights(tmp_path, dtype):
    state = tiny_state_dict()
    saved = save_model_package(
        tmp_path / "pkg", state, ModelManifest.from_dict(example_dict()), dtype
    )
    assert (tmp_path / "pkg" / "weights.safetensors").is_file()
    assert saved.sha256 == sha256_file(tmp_path / "pkg" / "weights.safetensors")
    manifest = ModelManifest.load(tmp_path / "pkg" / "model.json")
    assert manifest.sha256 == saved.sha256
    weights = load_weights(manifest)
    assert set(weights) == set(state)
    for key, value in state.items():
        if value.is_floating_point():
            assert weights[key].dtype == torch.float32
            tolerance = 1e-3 if dtype == torch.float16 else 0.0
            torch.testing.assert_close(weights[key], value, atol=tolerance, rtol=tolerance)
        else:
            assert torch.equal(weights[key], value)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_package_files_get_the_umask_mode(tmp_path, umask):
    """Tester 6: `unetpp train` wrote model.json and weights.safetensors 0600 (mkstemp), beside a
    0644 CARD.md, so a model shared in a lab folder could not be read by colleagues."""
    import os

    old = os.umask(umask)
    try:
        save_model_package(tmp_path, tiny_state_dict(), ModelManifest.from_dict(example_dict()))
    finally:
        os.umask(old)
    for name in ("model.json", "weights.safetensors"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_float16_size_is_half(tmp_path):
    manifest = ModelManifest.from_dict(example_dict())
    state = {"w": torch.randn(1000)}
    save_model_package(tmp_path / "a", state, manifest, torch.float16)
    save_model_package(tmp_path / "b", state, manifest, torch.float32)
    small = (tmp_path / "a" / "weights.safetensors").stat().st_size
    large = (tmp_path / "b" / "weights.safetensors").stat().st_size
    assert small < 0.6 * large


def test_checksum_mismatch_raises_before_reading(tmp_path):
    save_model_package(tmp_path, tiny_state_dict(), ModelManifest.from_dict(example_dict()))
    manifest = ModelManifest.load(tmp_path / "model.json")
    weights = tmp_path / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # flip bits in the last tensor's payload: still parses as safetensors
    weights.write_bytes(bytes(data))
    with pytest.raises(ChecksumError) as info:
        load_weights(manifest)
    message = str(info.value)
    assert str(weights) in message and manifest.sha256 in message
    assert sha256_file(weights) in message


def test_missing_weights(tmp_path):
    manifest = ModelManifest.from_dict(example_dict(), path=tmp_path / "model.json")
    with pytest.raises(UNetPlusPlusError, match="missing"):
        load_weights(manifest)


def _with_matching_checksum(tmp_path, payload: bytes) -> ModelManifest:
    (tmp_path / "weights.safetensors").write_bytes(payload)
    data = example_dict()
    data["sha256"] = sha256_file(tmp_path / "weights.safetensors")
    return ModelManifest.from_dict(data, path=tmp_path / "model.json")


def test_truncated_safetensors_is_a_user_error(tmp_path):
    save_model_package(tmp_path, tiny_state_dict(), ModelManifest.from_dict(example_dict()))
    payload = (tmp_path / "weights.safetensors").read_bytes()[:-10]
    manifest = _with_matching_checksum(tmp_path, payload)
    with pytest.raises(UNetPlusPlusError, match="not a readable safetensors"):
        load_weights(manifest)


def test_pickle_weights_are_never_unpickled(tmp_path):
    pickle_path = tmp_path / "state.pt"
    torch.save(tiny_state_dict(), pickle_path)
    manifest = _with_matching_checksum(tmp_path, pickle_path.read_bytes())
    with pytest.raises(UNetPlusPlusError, match="not a readable safetensors"):
        load_weights(manifest)


def test_save_refuses_float16_overflow(tmp_path):
    with pytest.raises(ValueError, match="float16"):
        save_model_package(
            tmp_path,
            {"w": torch.tensor([1e6])},
            ModelManifest.from_dict(example_dict()),
            torch.float16,
        )


# ------------------------------------------------------------------------------ terminology
def test_standard_terminology_entries_are_valid_manifest_codes():
    for name, codes in STANDARD_TERMINOLOGY.items():
        data = example_dict()
        data["labels"][0]["name"] = name
        data["labels"][0]["terminology"] = codes
        assert ModelManifest.from_dict(data).labels[0].terminology == codes
    assert standard_terminology("Oedema")["type"]["code"] == "79654002"
    assert standard_terminology("enhancing_tumour")["type"]["code"] == "C113842"
    assert standard_terminology("Necrotic tumour core")["type"]["code"] == "6574001"
    assert standard_terminology("spleen") is None


def test_terminology_string_parses_in_slicerio():
    label = LabelSpec(1, "lung nodule", (1.0, 0.0, 0.0), STANDARD_TERMINOLOGY["lung nodule"])
    text = terminology_entry_string(label)
    assert text == (
        "Segmentation category and type - DICOM master list"
        "~SCT^49755003^Morphologically Altered Structure~SCT^27925004^Nodule~^^"
        "~Anatomic codes - DICOM master list~SCT^39607008^Lung~^^"
    )
    parsed = slicerio.segmentation.terminology_entry_from_string(text)
    assert parsed["category"] == ["SCT", "49755003", "Morphologically Altered Structure"]
    assert parsed["type"] == ["SCT", "27925004", "Nodule"]
    assert parsed["anatomicRegion"] == ["SCT", "39607008", "Lung"]
    assert slicerio.segmentation.terminology_entry_to_string(parsed) == text


def test_terminology_string_fallbacks():
    by_name = terminology_entry_string(LabelSpec(1, "Liver", (1.0, 0.0, 0.0), None))
    assert "~SCT^10200004^Liver~" in by_name
    generic = terminology_entry_string(LabelSpec(1, "thing", (1.0, 0.0, 0.0), None))
    assert "~SCT^85756007^Tissue~SCT^85756007^Tissue~" in generic


def test_a_label_may_name_its_terminology_contexts():
    data = example_dict()
    codes = copy.deepcopy(STANDARD_TERMINOLOGY["enhancing tumor"])
    assert codes["context"] == "UNet++ - brain lesion segmentation types"
    codes["anatomic_context"] = "My anatomic codes"
    data["labels"][0]["terminology"] = codes
    label = ModelManifest.from_dict(data).labels[0]
    assert label.terminology["context"] == codes["context"]
    text = terminology_entry_string(label)
    assert text.startswith("UNet++ - brain lesion segmentation types~SCT^49755003^")
    assert "~My anatomic codes~SCT^12738006^Brain~" in text
    data["labels"][0]["terminology"]["context"] = "a~b"
    with pytest.raises(UNetPlusPlusError, match="context"):
        ModelManifest.from_dict(data)
