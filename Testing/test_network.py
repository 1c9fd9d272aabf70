"""UNetPlusPlus3D: shapes, exact pruning, work actually skipped, ensemble, gradients, config."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from UNetPlusPlusLib.engine.network import UNetPlusPlus3D, count_flops, node_indices
from UNetPlusPlusLib.errors import UNetPlusPlusError

FEATURES = (4, 8, 8, 16, 16, 6)


@pytest.fixture(autouse=True)
def _few_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_net(**kw) -> UNetPlusPlus3D:
    torch.manual_seed(0)
    kw.setdefault("features", FEATURES)
    return UNetPlusPlus3D(**kw).eval()


def test_nodes_and_heads_are_named_after_the_paper():
    net = make_net()
    names = {name for name, _ in net.named_children()}
    expected = {f"conv_{i}_{j}" for i, j in node_indices()}
    expected |= {f"final_conv_0_{j}" for j in range(1, 5)}
    assert names == expected
    assert len(node_indices()) == 15
    assert net.conv_0_4.conv_1.conv.out_channels == FEATURES[5]
    assert net.final_conv_0_4.in_channels == FEATURES[5]
    assert net.conv_0_3.conv_0.conv.in_channels == 3 * FEATURES[0] + FEATURES[1]
    assert net.conv_1_2.conv_0.conv.in_channels == 2 * FEATURES[1] + FEATURES[2] // 2


@pytest.mark.parametrize("depth", [1, 2, 3, 4, "ensemble"])
@pytest.mark.parametrize("shape", [(32, 32, 32), (33, 20, 23)])
def test_output_shape(depth, shape):
    net = make_net(in_channels=2, out_channels=3)
    x = torch.randn(1, 2, *shape)
    with torch.no_grad():
        y = net(x, depth)
    assert y.shape == (1, 3, *shape)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
def test_pruned_forward_equals_head_of_the_full_network(norm):
    net = make_net(in_channels=2, out_channels=3, norm=norm)
    x = torch.randn(2, 2, 33, 20, 23)  # odd sizes exercise the replicate padding
    with torch.no_grad():
        heads = net.forward_heads(x, depth=4)
        for k in range(1, 5):
            torch.testing.assert_close(net(x, depth=k), heads[k - 1], rtol=1e-5, atol=1e-5)


def test_inference_buffers_match_the_autograd_path():
    net = make_net(in_channels=2, out_channels=3)
    x = torch.randn(1, 2, 33, 20, 23)
    with torch.no_grad():
        fast = net.forward_heads(x, depth=4)
    slow = net.forward_heads(x, depth=4)  # grad on: torch.cat and nn.Conv3d path
    assert slow[0].requires_grad
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b.detach(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_pruned_forward_calls_only_nodes_with_i_plus_j_at_most_depth(k):
    net = make_net()
    called = []
    for i, j in node_indices():
        node = net.node(i, j)
        node.register_forward_hook(lambda module, args, out, name=(i, j): called.append(name))
    with torch.no_grad():
        net(torch.randn(1, 1, 32, 32, 32), depth=k)
    assert sorted(called) == sorted((i, j) for i, j in node_indices() if i + j <= k)
    assert len(called) == len(set(called))  # each node once


def test_flops_strictly_increase_with_depth():
    net = make_net()
    flops = [count_flops(net, (32, 32, 32), depth=k) for k in range(1, 5)]
    assert all(a < b for a, b in zip(flops, flops[1:])), flops
    assert flops[0] < 0.5 * flops[3]  # pruning saves real work, not a rounding error
    assert count_flops(net, (1, 1, 32, 32, 32), "ensemble") >= flops[3]


def test_ensemble_is_log_of_mean_softmax():
    net = make_net(out_channels=3)
    x = torch.randn(1, 1, 32, 32, 32)
    with torch.no_grad():
        heads = net.forward_heads(x, depth=4)
        ensemble = net(x, depth="ensemble")
    mean_probs = torch.stack([F.softmax(h, dim=1) for h in heads]).mean(0)
    torch.testing.assert_close(ensemble.exp(), mean_probs, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(F.softmax(ensemble, dim=1), mean_probs, rtol=1e-5, atol=1e-6)


def test_gradients_reach_all_heads_and_nodes():
    net = make_net(out_channels=2).train()
    x = torch.randn(2, 1, 32, 32, 32)
    heads = net.forward_heads(x, depth=4)
    assert len(heads) == 4
    sum(h.square().mean() for h in heads).backward()
    for name, param in net.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_forward_heads_at_lower_depth_only_builds_that_subnetwork():
    net = make_net()
    heads = net.forward_heads(torch.randn(1, 1, 16, 16, 16), depth=2)
    assert len(heads) == 2
    sum(h.mean() for h in heads).backward()
    assert net.conv_0_3.conv_0.conv.weight.grad is None
    assert net.conv_3_0.conv_0.conv.weight.grad is None
    assert net.conv_1_1.conv_0.conv.weight.grad is not None


def test_dropout_is_active_in_training_only():
    net = make_net(dropout=0.5)
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(net(x, 2), net(x, 2))
        net.train()
        assert not torch.allclose(net(x, 2), net(x, 2))


@pytest.mark.parametrize("bad", [0, 5, "all", True, 2.5])
def test_bad_depth_is_rejected(bad):
    net = make_net()
    with pytest.raises(ValueError, match="depth"):
        net(torch.randn(1, 1, 16, 16, 16), bad)


def test_bad_input_is_rejected():
    net = make_net(in_channels=2)
    with pytest.raises(ValueError, match="expected input"):
        net(torch.randn(1, 1, 16, 16, 16))
    with pytest.raises(ValueError, match="too small"):
        net(torch.randn(1, 2, 8, 16, 16), depth=4)
    with pytest.raises(ValueError, match="instance norm"):
        net(torch.randn(1, 2, 16, 16, 16), depth=4)
    with torch.no_grad():
        assert net(torch.randn(1, 2, 16, 16, 16), depth=3).shape == (1, 2, 16, 16, 16)


def test_flop_count_leaves_batch_norm_statistics_alone():
    net = make_net(norm="batch").train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    count_flops(net, (16, 16, 16), depth=2)
    assert net.training
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_config_round_trips_through_json():
    net = make_net(in_channels=4, out_channels=4, norm="batch", dropout=0.1)
    config = json.loads(json.dumps(net.config()))
    assert config == {
        "in_channels": 4,
        "out_channels": 4,
        "features": list(FEATURES),
        "norm": "batch",
        "dropout": 0.1,
    }
    clone = UNetPlusPlus3D.from_config(config)
    assert clone.config() == net.config()
    clone.load_state_dict(net.state_dict())  # same structure, strict
    # the manifest may omit dropout
    minimal = {"in_channels": 1, "out_channels": 2, "features": [8, 16, 32, 64, 128, 8]}
    assert UNetPlusPlus3D.from_config({**minimal, "norm": "instance"}).dropout == 0.0


@pytest.mark.parametrize(
    "config",
    [
        {"features": [8, 16, 32]},
        {"norm": "group"},
        {"dropout": 1.5},
        {"channels": 3},
    ],
)
def test_bad_config_is_a_user_error(config):
    with pytest.raises(UNetPlusPlusError):
        UNetPlusPlus3D.from_config(config)
