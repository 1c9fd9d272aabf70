"""A model.json edited away from what its weights were trained for is refused at load.

The sha256 protects the weights only: before the training contract (engine/manifest_contract.py),
a manifest edited to another spacing, normalisation or label order loaded and gave a confident
segmentation on the wrong grid or with swapped label names (tester 7, session 6).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from test_manifest import example_dict, tiny_state_dict
from UNetPlusPlusLib.engine.manifest import ModelManifest, load_weights, save_model_package
from UNetPlusPlusLib.engine.manifest_contract import CONTRACT_KEY, contract_of
from UNetPlusPlusLib.engine.manifest_weights import sha256_file
from UNetPlusPlusLib.errors import UNetPlusPlusError

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "UNetPlusPlus" / "UNetPlusPlusLib" / "Resources" / "Models"


def two_label_dict() -> dict:
    data = example_dict()
    second = json.loads(json.dumps(data["labels"][0]))
    second.update(value=2, name="liver tumour")
    data["labels"].append(second)
    data["network"]["out_channels"] = 3
    return data


@pytest.fixture
def package(tmp_path) -> Path:
    save_model_package(tmp_path, tiny_state_dict(), ModelManifest.from_dict(two_label_dict()))
    return tmp_path / "model.json"


def edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_the_saved_weights_carry_the_contract_and_load(package):
    manifest = ModelManifest.load(package)
    with safe_open(str(manifest.weights_path), framework="pt") as handle:
        stored = json.loads(handle.metadata()[CONTRACT_KEY])
    assert stored == contract_of(manifest)
    assert stored["spacing"] == [3.0, 3.0, 2.0]
    assert stored["labels"] == [[1, "liver"], [2, "liver tumour"]]
    assert set(load_weights(manifest)) == set(tiny_state_dict())


@pytest.mark.parametrize(
    "field, change",
    [
        ("spacing", lambda d: d.update(spacing=[1.0, 1.0, 1.0])),
        ("channels", lambda d: d["channels"][0]["normalization"].update(window=[-1000, 400])),
        ("channels", lambda d: d["channels"][0].update(name="T1")),
        ("labels", lambda d: d["labels"].reverse()),  # the names swapped between the values
        ("labels", lambda d: d["labels"][1].update(name="vessel")),
        ("network", lambda d: d["network"].update(norm="batch")),
    ],
)
def test_an_edited_training_field_is_refused_naming_it(package, field, change):
    edit(package, change)
    manifest = ModelManifest.load(package)  # still a valid manifest on its own
    with pytest.raises(UNetPlusPlusError, match="does not describe its weights") as error:
        load_weights(manifest)
    message = str(error.value)
    assert f"{field}: model.json" in message and "reinstall the model" in message
    assert message.count(": model.json ") == 1  # only the edited field is named


def test_fields_that_may_change_after_training_still_load(package):
    def change(d):
        d.update(recommended_depth=2, overlap=0.5, tile_size=[48, 48, 32])
        d["postprocess"] = {"largest_component": False, "min_component_fraction": 0.2}
        d["labels"][0]["color"] = [1.0, 0.0, 0.0]
        d["inference"] = {"max_nonzero_ml": 2500}
        d["validation"] = {}

    edit(package, change)
    assert set(load_weights(ModelManifest.load(package))) == set(tiny_state_dict())


def test_weights_without_a_contract_load_as_before(tmp_path):
    """Packages written before the contract (or by other tools) have no such metadata."""
    tensors = {k: v.to(torch.float16) for k, v in tiny_state_dict().items()}
    save_file(tensors, str(tmp_path / "weights.safetensors"), metadata={"format": "pt"})
    data = example_dict()
    data["sha256"] = sha256_file(tmp_path / "weights.safetensors")
    data["spacing"] = [9.0, 9.0, 9.0]
    (tmp_path / "model.json").write_text(json.dumps(data))
    assert set(load_weights(ModelManifest.load(tmp_path))) == set(tensors)


@pytest.mark.parametrize("task", ["liver", "lung-nodule", "brain-tumor"])
def test_the_shipped_models_carry_a_contract_that_matches(task):
    manifest = ModelManifest.load(MODELS / task / "model.json")
    with safe_open(str(manifest.weights_path), framework="pt") as handle:
        assert json.loads(handle.metadata()[CONTRACT_KEY]) == contract_of(manifest)


def test_the_cli_refuses_an_edited_copy_of_a_shipped_model_in_one_line(tmp_path, capsys):
    """`unetpp segment --model` on a copy of the liver model whose spacing was edited."""
    for name in ("model.json", "weights.safetensors"):
        (tmp_path / name).write_bytes((MODELS / "liver" / name).read_bytes())
    edit(tmp_path / "model.json", lambda d: d.update(spacing=[1.5, 1.5, 1.5]))
    rng = np.random.default_rng(0)
    ct = rng.normal(-200, 300, (24, 40, 40)).astype(np.int16)
    ct[:, :4] = -1000  # some air, as a CT has
    image = sitk.GetImageFromArray(ct)
    image.SetSpacing((3.0, 3.0, 3.0))
    sitk.WriteImage(image, str(tmp_path / "ct.nrrd"))
    out = tmp_path / "out.seg.nrrd"
    from UNetPlusPlusLib.cli import main

    args = [str(tmp_path / "ct.nrrd"), "--model", str(tmp_path / "model.json"), "--quiet"]
    assert main(["segment", *args, "-o", str(out)]) != 0  # an exception would fail the test
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert (
        len(errors) == 1
        and "spacing: model.json [1.5, 1.5, 1.5], weights [3.0, 3.0, 3.0]" in errors[0]
    )
    assert not out.exists()


def test_train_init_refuses_an_edited_manifest_before_reading_the_dataset(tmp_path, capsys):
    """`unetpp train --init` on an edited copy read and preprocessed the whole dataset before
    the contract refused it at weight loading (tester 9); now it is the first error, before any
    case of the (here empty) data folder is looked for."""
    from UNetPlusPlusLib.training.cli import main as train_main

    for name in ("model.json", "weights.safetensors"):
        (tmp_path / name).write_bytes((MODELS / "liver" / name).read_bytes())
    edit(tmp_path / "model.json", lambda d: d.update(spacing=[1.5, 1.5, 1.5]))
    out = tmp_path / "out"
    (data := tmp_path / "data").mkdir()  # empty: listing its cases would be another error
    argv = [str(data), "-o", str(out), "--init", str(tmp_path / "model.json")]
    assert train_main(argv) == 2
    error = capsys.readouterr().err
    assert "does not describe its weights (spacing: model.json [1.5, 1.5, 1.5]" in error
    assert not out.exists()
