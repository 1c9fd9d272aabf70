"""`unetpp models list` marks a model whose weights are damaged, and `unetpp models verify`
checks them fully (engine/weights_status.py, polish 2). Before: a package with NaN weights or a
replaced weights file was listed as if it were fine."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.engine.manifest import ModelManifest, sha256_file
from UNetPlusPlusLib.engine.weights_status import weights_problem


def _copy(sphere_model: Path, folder: Path, name: str, edit=None, dtype=None) -> Path:
    """A copy of the sphere test model named ``name``; ``edit`` changes its tensors (in
    ``dtype`` when given) and the sha256 in model.json is rewritten to match."""
    shutil.copytree(sphere_model.parent, folder)
    manifest = json.loads((folder / "model.json").read_text())
    manifest["name"] = name
    weights = folder / "weights.safetensors"
    if edit is not None:
        with safe_open(str(weights), framework="pt") as handle:
            metadata = handle.metadata()
            state = {k: handle.get_tensor(k) for k in handle.keys()}
        state = {
            k: (v.to(dtype) if dtype and v.is_floating_point() else v) for k, v in state.items()
        }
        edit(state)
        save_file(state, str(weights), metadata=metadata)
        manifest["sha256"] = sha256_file(weights)
    (folder / "model.json").write_text(json.dumps(manifest))
    return folder / "model.json"


def _nan(state):
    key = sorted(k for k in state if state[k].dim() == 5)[0]
    state[key] = state[key].clone()
    state[key].view(-1)[3] = float("nan")


def _inf(state):
    key = sorted(k for k in state if state[k].is_floating_point())[-1]
    state[key] = state[key].clone()
    state[key].view(-1)[0] = float("inf")


def _extra(state):
    state["bogus.weight"] = torch.zeros(3)


def _reshaped(state):
    state["final_conv_0_1.bias"] = state["final_conv_0_1.bias"][:1].clone()


def _ints(state):
    state["final_conv_0_2.bias"] = state["final_conv_0_2.bias"].to(torch.int32)


@pytest.fixture()
def models(tmp_path, sphere_model, monkeypatch) -> Path:
    root = tmp_path / "models"
    _copy(sphere_model, root / "good", "good")
    _copy(sphere_model, root / "nan", "nan", _nan)
    _copy(sphere_model, root / "inf16", "inf16", _inf, torch.float16)
    _copy(sphere_model, root / "nanbf16", "nanbf16", _nan, torch.bfloat16)
    _copy(sphere_model, root / "extra", "extra", _extra)
    _copy(sphere_model, root / "reshaped", "reshaped", _reshaped)
    _copy(sphere_model, root / "ints", "ints", _ints)
    wide = _copy(sphere_model, root / "wide", "wide")  # model.json: batch norm, weights: not
    manifest = json.loads(wide.read_text())
    manifest["network"]["norm"] = "batch"
    wide.write_text(json.dumps(manifest))
    replaced = _copy(sphere_model, root / "replaced", "replaced")
    weights = replaced.parent / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one byte changed after install: another sha256
    weights.write_bytes(bytes(data))
    gone = _copy(sphere_model, root / "gone", "gone")
    (gone.parent / "weights.safetensors").unlink()
    monkeypatch.setenv("UNETPP_MODELS", str(root))
    monkeypatch.setenv("UNETPP_HOME", str(tmp_path / "home"))
    return root


def _statuses(text: str) -> dict[str, str]:
    """model name -> its status line, from `models list`."""
    found, name = {}, None
    for line in text.splitlines():
        if not line.startswith(" ") and ": " in line:
            name = line.split(": ", 1)[1].split()[0]
        elif line.startswith("  status: ") and name:
            found[name] = line[len("  status: ") :]
    return found


def test_models_list_marks_broken_weights(models, capsys):
    assert main(["models", "list"]) == 0
    status = _statuses(capsys.readouterr().out)
    assert status["good"] == "ok", status
    assert status["extra"] == (  # from the safetensors header alone, without torch
        "broken: the weights do not fit the network in model.json (unexpected tensor(s) "
        "bogus.weight)"
    )
    assert status["reshaped"].startswith(
        "broken: the weights do not fit the network in model.json (tensor(s) of another shape "
        "final_conv_0_1.bias (final_conv_0_1.bias: [1] in the weights, [2] in the network)"
    ), status
    assert status["ints"].startswith("broken: the weights do not fit the network in model.json")
    assert "integer type where the network has floats" in status["ints"] and "I32" in status["ints"]
    assert status["wide"] == (
        "broken: the weights do not fit the network in model.json (missing tensor(s) "
        "conv_0_0.conv_0.norm.num_batches_tracked, conv_0_0.conv_0.norm.running_mean, "
        "conv_0_0.conv_0.norm.running_var and 87 more)"
    ), status
    assert status["nan"].startswith("broken: the weights hold NaN or infinite values (tensor ")
    assert status["inf16"].startswith("broken: the weights hold NaN or infinite"), status
    assert status["nanbf16"].startswith("broken: the weights hold NaN or infinite"), status
    assert status["replaced"] == (
        "broken: the weights do not match the sha256 in model.json (corrupt or replaced)"
    )
    assert status["gone"] == "broken: the weights file weights.safetensors is missing"
    assert {"liver-ct", "lung-nodule-ct", "brain-tumor-mr"} <= {
        k for k, v in status.items() if v == "ok"
    }


def test_models_verify_checks_the_fit_and_names_the_broken(models, capsys):
    assert main(["models", "verify", "good"]) == 0
    assert capsys.readouterr().out.strip() == "good: ok"
    assert main(["models", "verify", "good", "extra", "nan"]) == 2
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert lines[0] == "good: ok" and lines[1].startswith("extra: broken: the weights do not"), (
        lines
    )
    assert "unexpected tensor(s) bogus.weight" in lines[1] and lines[2].startswith("nan: broken")
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "2 of 3 model(s) broken: extra, nan" in err[0], err


def test_an_unreadable_safetensors_file_is_named(tmp_path, sphere_model):
    path = _copy(sphere_model, tmp_path / "junk", "junk")
    weights = path.parent / "weights.safetensors"
    weights.write_bytes(b"\xff" * 64)
    manifest = ModelManifest.load(path)
    manifest = type(manifest)(**{**manifest.__dict__, "sha256": sha256_file(weights)})
    assert weights_problem(manifest) == "the weights are not a readable safetensors file"


@pytest.mark.parametrize(
    "dtype, kind",
    [
        (torch.float16, "F16"),
        (torch.bfloat16, "BF16"),
        (torch.float32, "F32"),
        (torch.float64, "F64"),
    ],
)
def test_the_byte_check_finds_nan_and_infinity_only(dtype, kind):
    from UNetPlusPlusLib.engine.weights_status import _EXPONENTS, _nonfinite

    info = torch.finfo(dtype)
    edges = [info.max, -info.max, info.tiny, info.tiny / 4, 0.0, -0.0, 1.0, -2.5, info.eps]
    finite = torch.tensor(edges * 50, dtype=dtype)
    raw = finite.view(torch.uint8).numpy().tobytes()
    assert not _nonfinite(raw, *_EXPONENTS[kind])
    for bad in (float("nan"), float("inf"), float("-inf")):
        values = finite.clone()
        values[217] = bad
        assert _nonfinite(values.view(torch.uint8).numpy().tobytes(), *_EXPONENTS[kind]), bad


@pytest.mark.parametrize(
    "config",
    [
        {"in_channels": 1, "out_channels": 2},
        {"in_channels": 4, "out_channels": 4, "features": [8, 12, 16, 20, 24, 6], "norm": "batch"},
        {"in_channels": 2, "out_channels": 3, "features": [4, 4, 2, 2, 2, 4], "norm": "none"},
        {"in_channels": 1, "out_channels": 2, "features": [16, 32, 64, 128, 256, 16],
         "norm": "instance", "dropout": 0.2},
    ],
)  # fmt: skip
def test_the_torch_free_tensor_list_is_the_networks_state_dict(config):
    """``models list`` compares the weights' header with network_tensors.expected_tensors:
    the same names, shapes and floating types as the real network's state_dict."""
    from UNetPlusPlusLib.engine.network import UNetPlusPlus3D
    from UNetPlusPlusLib.engine.network_tensors import expected_tensors

    with torch.device("meta"):
        state = UNetPlusPlus3D.from_config(config).state_dict()
    real = {k: (tuple(v.shape), v.is_floating_point()) for k, v in state.items()}
    assert expected_tensors(config) == real


@pytest.mark.parametrize(
    "config",
    [{"features": [8, 8]}, {"norm": "group"}, {"features": [8, 8, 1, 8, 8, 8]}, {"depth": 3}],
)
def test_an_entry_the_network_refuses_is_refused_without_torch_too(config):
    from UNetPlusPlusLib.engine.network import UNetPlusPlus3D
    from UNetPlusPlusLib.engine.network_tensors import expected_tensors
    from UNetPlusPlusLib.errors import UNetPlusPlusError

    with pytest.raises(UNetPlusPlusError):
        UNetPlusPlus3D.from_config(config)
    with pytest.raises(ValueError):
        expected_tensors(config)
