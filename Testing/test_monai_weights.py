"""MONAI BasicUNetPlusPlus weights load into UNetPlusPlus3D by renaming and give the same heads."""

from __future__ import annotations

import contextlib
import io

import pytest
import torch
from UNetPlusPlusLib.engine.monai_weights import (
    load_monai_weights,
    monai_state_dict_to_ours,
    network_config_from_monai,
)
from UNetPlusPlusLib.engine.network import UNetPlusPlus3D
from UNetPlusPlusLib.errors import UNetPlusPlusError

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py

FEATURES = (4, 8, 16, 32, 64, 6)


def monai_net(norm: str = "instance", features=FEATURES, in_channels=2, out_channels=3):
    # imported here, not at module level: every pytest-xdist worker collects every module, and
    # importing MONAI costs about 2 CPU-s (a skip without MONAI, as before)
    nets = pytest.importorskip("monai.networks.nets")
    torch.manual_seed(0)
    norm_arg = ("instance", {"affine": True}) if norm == "instance" else norm
    with contextlib.redirect_stdout(io.StringIO()):  # MONAI prints its features
        net = nets.BasicUNetPlusPlus(
            spatial_dims=3,
            in_channels=in_channels,
            out_channels=out_channels,
            features=features,
            deep_supervision=True,
            norm=norm_arg,
        )
    if norm == "batch":  # non-trivial running statistics, so that they must be mapped too
        with torch.no_grad():
            for module in net.modules():
                if isinstance(module, torch.nn.BatchNorm3d):
                    module.running_mean.uniform_(-0.5, 0.5)
                    module.running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.mark.parametrize("norm", ["instance", "batch"])
@pytest.mark.parametrize("shape", [(32, 32, 32), (33, 20, 23)])
def test_all_four_heads_match_monai(norm, shape):
    reference = monai_net(norm)
    config = network_config_from_monai(reference.state_dict())
    assert config == {
        "in_channels": 2,
        "out_channels": 3,
        "features": list(FEATURES),
        "norm": norm,
        "dropout": 0.0,
    }
    ours = UNetPlusPlus3D.from_config(config).eval()
    load_monai_weights(ours, reference.state_dict())
    x = torch.randn(1, 2, *shape)
    with torch.no_grad():
        expected = reference(x)
        heads = ours.forward_heads(x, depth=4)
        pruned = [ours(x, depth=k) for k in range(1, 5)]
    assert len(expected) == 4
    for k in range(4):
        torch.testing.assert_close(heads[k], expected[k], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(pruned[k], expected[k], rtol=1e-4, atol=1e-4)


def test_every_key_is_mapped_one_to_one():
    state = monai_net().state_dict()
    renamed = monai_state_dict_to_ours(state)
    assert len(renamed) == len(state)
    assert set(renamed) == set(UNetPlusPlus3D(2, 3, FEATURES).state_dict())
    assert renamed["conv_2_1.up.weight"] is state["upcat_2_1.upsample.deconv.weight"]
    assert renamed["conv_3_0.conv_1.norm.bias"] is state["conv_3_0.convs.conv_1.adn.N.bias"]


def test_data_parallel_prefix_is_accepted():
    state = {f"module.{k}": v for k, v in monai_net().state_dict().items()}
    ours = UNetPlusPlus3D(2, 3, FEATURES)
    load_monai_weights(ours, state)


def test_foreign_keys_are_a_user_error():
    state = dict(monai_net().state_dict())
    state["decoder.extra.weight"] = torch.zeros(1)
    with pytest.raises(UNetPlusPlusError, match="decoder.extra.weight"):
        monai_state_dict_to_ours(state)


def test_wrong_architecture_is_a_user_error():
    ours = UNetPlusPlus3D(2, 3, (8, 16, 32, 64, 128, 8))
    with pytest.raises(UNetPlusPlusError, match="do not fit"):
        load_monai_weights(ours, monai_net().state_dict())
