"""Weights that do not fit their manifest's network, or hold NaN, are refused at install and at
load (tester 12). Before: a package whose weights.safetensors gained, lost or reshaped a tensor
(sha256 recomputed) installed and replaced a working model of the same name, and only `unetpp
segment` then failed, with "Error(s) in loading state_dict for UNetPlusPlus3D:" and no detail;
a NaN in one weight installed and segmented an empty result ("Nothing (liver) was found")."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from UNetPlusPlusLib.engine import registry
from UNetPlusPlusLib.engine.manifest import ModelManifest, load_weights, save_model_package
from UNetPlusPlusLib.engine.predictor import Predictor
from UNetPlusPlusLib.errors import UNetPlusPlusError


def _package(folder: Path, sphere_model, edit=None) -> Path:
    """A copy of the sphere test model, its state dict changed by ``edit`` (sha256 rewritten)."""
    manifest = ModelManifest.load(sphere_model)
    state = load_weights(manifest)
    if edit is not None:
        edit(state)
    save_model_package(folder, state, manifest)
    return folder


def _extra(state):
    state["bogus.weight"] = torch.zeros(3)


def _missing(state):
    del state[sorted(state)[-1]]


def _reshaped(state):
    key = sorted(k for k in state if state[k].dim() == 5)[0]
    state[key] = torch.zeros((1, *state[key].shape[1:]))


def _nan(state):
    key = sorted(k for k in state if state[k].dim() == 5)[0]
    state[key] = state[key].clone()
    state[key].view(-1)[0] = float("nan")


def _integer(state):
    """Tester 13: every floating tensor stored as int32 (same names and shapes) installed and
    segmented nothing ('Nothing (nodule) was found'): load_state_dict casts ints silently."""
    for key in [k for k in state if state[k].is_floating_point()]:
        state[key] = state[key].round().to(torch.int32)


def _zeroed(state):
    """Tester 13: all-zero float weights installed and loaded (an empty training export)."""
    for key in [k for k in state if state[k].is_floating_point()]:
        state[key] = torch.zeros_like(state[key])


CASES = {
    "zeroed": (_zeroed, "hold only zeros in convolution kernel(s) "),
    "integer": (_integer, "tensor(s) of an integer type where the network has floats "),
    "extra": (_extra, "unexpected tensor(s) bogus.weight"),
    "missing": (_missing, "missing tensor(s) "),
    "reshaped": (_reshaped, "tensor(s) of another shape "),
    "nan": (_nan, "hold NaN or infinite values (tensor "),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_install_refuses_weights_that_do_not_fit_and_keeps_the_installed_model(
    tmp_path, sphere_model, case
):
    edit, said = CASES[case]
    cache = tmp_path / "cache"
    good = registry.install_model(str(_package(tmp_path / "good", sphere_model)), cache_dir=cache)
    before = {p.name: p.read_bytes() for p in (cache / good.name).iterdir()}
    bad = _package(tmp_path / "bad", sphere_model, edit)

    with pytest.raises(UNetPlusPlusError) as error:
        registry.install_model(str(bad), cache_dir=cache)

    message = str(error.value)
    assert message.startswith(f"Cannot install the model from {bad}: The weights in ")
    assert said in message and ".install-" not in message
    assert "\n" not in message
    assert {p.name: p.read_bytes() for p in (cache / good.name).iterdir()} == before
    assert sorted(p.name for p in cache.iterdir()) == [good.name]  # no staging left


@pytest.mark.parametrize("case", sorted(CASES))
def test_loading_weights_that_do_not_fit_names_the_tensors(tmp_path, sphere_model, case):
    edit, said = CASES[case]
    bad = _package(tmp_path / "bad", sphere_model, edit)
    with pytest.raises(UNetPlusPlusError, match="Reinstall or retrain") as error:
        Predictor.from_manifest_path(bad / "model.json", device="cpu", threads=1)
    assert said in str(error.value)


def test_the_cli_gives_one_error_line(tmp_path, sphere_model, capsys, monkeypatch):
    from UNetPlusPlusLib.cli import main

    monkeypatch.setenv("UNETPP_HOME", str(tmp_path / "home"))
    bad = _package(tmp_path / "bad", sphere_model, _nan)
    assert main(["models", "install", "--no-prepare", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: Cannot install the model from ") and "\n" not in err
    assert not (tmp_path / "home" / "models" / "sphere-test").exists()


def test_the_shipped_and_fixture_models_fit(sphere_model):
    from UNetPlusPlusLib.engine.weights_fit import check_weights_fit

    for manifest in [ModelManifest.load(sphere_model), *registry.list_models()]:
        check_weights_fit(manifest, load_weights(manifest))  # raises if not
