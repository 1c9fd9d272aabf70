"""The fast CPU path (channels-last oneDNN, reused buffers) computes exactly the module graph."""

from __future__ import annotations

import pytest
import torch
from UNetPlusPlusLib.engine import cpu_inference, cpu_norm
from UNetPlusPlusLib.engine.network import UNetPlusPlus3D

FEATURES = (4, 8, 8, 16, 16, 6)

pytestmark = [
    pytest.mark.skipif(
        not torch.backends.mkldnn.is_available(), reason="the fast path needs oneDNN (MKLDNN)"
    ),
    pytest.mark.usefixtures("one_torch_thread"),  # conftest.py
]


def make_net(norm: str = "instance", in_channels: int = 2, out_channels: int = 3):
    torch.manual_seed(0)
    net = UNetPlusPlus3D(in_channels, out_channels, features=FEATURES, norm=norm).eval()
    if norm == "batch":  # non-trivial running statistics, so that they must be used
        with torch.no_grad():
            for module in net.modules():
                if isinstance(module, torch.nn.BatchNorm3d):
                    module.running_mean.uniform_(-0.5, 0.5)
                    module.running_var.uniform_(0.5, 2.0)
    return net


def reference_heads(net: UNetPlusPlus3D, x: torch.Tensor) -> list[torch.Tensor]:
    """All four heads through the modules (grad on: torch.cat and nn.Conv3d, no fast path)."""
    heads = net.forward_heads(x, depth=4)
    assert heads[0].requires_grad
    return [h.detach() for h in heads]


def count_fast_runs(monkeypatch) -> list:
    calls: list = []
    original = cpu_inference.run

    def spy(*args, **kwargs):
        calls.append(args[2])
        return original(*args, **kwargs)

    monkeypatch.setattr(cpu_inference, "run", spy)
    return calls


@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
@pytest.mark.parametrize("shape", [(32, 32, 32), (33, 20, 23)])  # odd: replicate padding
def test_every_pruned_depth_equals_the_module_graph(norm, shape, monkeypatch):
    net = make_net(norm)
    x = 2.0 * torch.randn(2, 2, *shape) + 0.5  # a batch of two tiles, an offset mean
    expected = reference_heads(net, x)
    calls = count_fast_runs(monkeypatch)
    with torch.no_grad():
        for k in range(1, 5):
            torch.testing.assert_close(net(x, depth=k), expected[k - 1], rtol=1e-5, atol=1e-5)
        heads = net.forward_heads(x, depth=4)
    assert calls == [1, 2, 3, 4, 4]  # the fast path really ran
    for got, want in zip(heads, expected):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert all(h.is_contiguous() for h in heads)


def test_ensemble_equals_the_module_graph():
    net = make_net()
    x = torch.randn(1, 2, 32, 32, 32)
    with torch.enable_grad():
        expected = net(x, depth="ensemble").detach()
    with torch.no_grad():
        torch.testing.assert_close(net(x, depth="ensemble"), expected, rtol=1e-5, atol=1e-5)


def test_reused_buffers_give_identical_results_and_never_alias_outputs():
    net = make_net()
    small, large = torch.randn(1, 2, 32, 32, 32), torch.randn(1, 2, 48, 32, 32)
    with torch.no_grad():
        want_small, want_large = net(small, 4), net(large, 3)
        with net.reuse_buffers() as workspace:
            first = net(small, 4)
            kept = first.clone()
            second = net(small, 4)
            other = net(large, 3)  # another shape in the same block
            again = net(small, 2)
            held = workspace.nbytes
    assert torch.equal(first, kept)  # a later call did not overwrite an earlier result
    assert torch.equal(first, second) and torch.equal(first, want_small)
    torch.testing.assert_close(other, want_large, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(again, net.forward_heads(small, 2)[1].detach(), rtol=1e-5, atol=1e-5)
    assert held > 0


def test_weights_changed_in_place_inside_a_reuse_block_are_noticed():
    net = make_net()
    x = torch.randn(1, 2, 32, 32, 32)
    with torch.no_grad(), net.reuse_buffers():
        before = net(x, 4)
        net.conv_0_1.conv_0.conv.weight.mul_(-1.5)  # packed weights must be rebuilt
        after = net(x, 4)
    expected = reference_heads(net, x)[3]
    torch.testing.assert_close(after, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(before, after)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_fast_path_runs_only_the_nodes_of_the_pruned_network(k):
    net = make_net()
    names = {id(m): name for name, m in net.named_modules()}
    with torch.no_grad(), net.reuse_buffers() as workspace:
        net(torch.randn(1, 2, 32, 32, 32), depth=k)
    nodes = {
        tuple(int(v) for v in names[c].split(".")[0].split("_")[1:3])
        for c in workspace.convolutions
    }
    assert nodes == {(i, j) for i in range(5) for j in range(5 - i) if i + j <= k}


def test_training_double_precision_and_hooks_take_the_module_path(monkeypatch):
    net = make_net()
    calls = count_fast_runs(monkeypatch)
    x = torch.randn(1, 2, 32, 32, 32)
    with torch.no_grad():
        net.train()(x, 2)
        net.eval().double()(x.double(), 2)
        net.float()
        seen = []
        handle = net.conv_0_0.register_forward_hook(lambda *args: seen.append(1))
        net(x, 2)
        handle.remove()
        net(x, 2)
    assert seen == [1] and calls == [2]


def test_a_fast_run_does_not_walk_the_module_tree_again(monkeypatch):
    """``modules()`` (nested generators over ~150 modules) cost ~0.3 ms a tile, 2-3 % of the
    nodule tile: it runs once, and again only when the tree changed."""
    net = make_net()
    walks = []
    original = torch.nn.Module.named_modules

    def counting(self, *args, **kwargs):
        if self is net:
            walks.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "named_modules", counting)
    x = torch.randn(1, 2, 16, 16, 16)
    with torch.no_grad():
        net(x, 1)
        first = len(walks)
        net(x, 2)
        net(x, 1)
        assert len(walks) == first
        net.conv_0_0.conv_1.drop = torch.nn.Identity()  # a new module: one new walk
        net(x, 1)
        net(x, 1)
    assert len(walks) == first + 1


def test_hooks_and_modules_changed_after_a_fast_run_still_take_the_module_path(monkeypatch):
    """The fast path's check of the module tree is cached; a hook registered later on a deep
    module, a replaced or added module (with a hook) or a batch norm that lost its statistics
    must still send the call through the modules."""
    net = make_net()
    calls = count_fast_runs(monkeypatch)
    x = torch.randn(1, 2, 16, 16, 16)
    seen = []

    def hook(*args):
        seen.append(1)

    with torch.no_grad():
        net(x, 1)  # the tree is walked and cached here
        handle = net.conv_0_0.conv_1.norm.register_forward_pre_hook(hook)
        net(x, 1)
        handle.remove()
        net(x, 1)
        block = net.conv_0_0.conv_1
        replacement = torch.nn.LeakyReLU(0.01)
        replacement.register_forward_hook(hook)
        block.drop = replacement  # a leaf swapped for another one that carries a hook
        net(x, 1)
        del block.drop
        net(x, 1)  # no hook left: fast again (the module path would fail without ``drop``)
        block.drop = torch.nn.Identity()
        extra = torch.nn.Identity()
        extra.register_forward_hook(hook)
        net.conv_0_0.conv_0.norm.add_module("watch", extra)  # a leaf gains a child
        net(x, 1)
        del net.conv_0_0.conv_0.norm.watch
        net(x, 1)
    # the module path ran 3 times (the norm never calls its new child, so its hook stays quiet)
    assert seen == [1, 1] and calls == [1, 1, 1, 1]
    batch = make_net("batch")
    calls.clear()
    with torch.no_grad():
        batch(x, 1)
        norm = batch.conv_0_0.conv_0.norm
        norm.running_mean = norm.running_var = None  # eval batch norm: batch statistics now
        batch(x, 1)
    assert calls == [1]


@pytest.mark.parametrize("c", [16, 8])  # per-channel rows, and folded ones
def test_instance_statistics_are_exact_despite_a_large_mean(c):
    workspace = cpu_inference.Workspace()
    norm = torch.nn.InstanceNorm3d(c)  # no affine: scale = 1 / std, shift = -mean / std
    y = 3.0 + 0.01 * torch.randn(2, 5056, c)  # mean >> std: a naive E[y^2] - E[y]^2 fails
    wide, fold = cpu_norm._folded(y)
    assert fold == (1 if c == 16 else 64)
    scale, shift = cpu_norm._instance_affine(y, wide, fold, norm, workspace)
    var, want_mean = torch.var_mean(y.double(), dim=1, keepdim=True, unbiased=False)
    torch.testing.assert_close(scale.double(), (var + 1e-5).rsqrt(), rtol=1e-4, atol=0)
    torch.testing.assert_close((-shift / scale).double(), want_mean, rtol=1e-6, atol=0)


@pytest.mark.parametrize("spatial", [(6, 4, 5), (1, 3, 2)])
def test_upsampling_folded_into_the_next_convolution_equals_the_two_layers(spatial):
    torch.manual_seed(1)
    up = torch.nn.ConvTranspose3d(6, 4, kernel_size=2, stride=2)
    conv = torch.nn.Conv3d(3 + 4, 5, kernel_size=3, padding=1)  # 3 skip channels, then Up
    below = torch.randn(2, 6, *spatial)
    with torch.no_grad():
        upsampled = up(below)
        masked = conv.weight.clone()
        masked[:, :3] = 0  # only the Up channels' share of the convolution
        expected = torch.nn.functional.conv3d(
            torch.cat([torch.zeros(2, 3, *upsampled.shape[2:]), upsampled], 1),
            masked,
            conv.bias,
            padding=1,
        )
        kernel, bias, corrections = cpu_inference.compose_up_conv(up, conv, first=3)
        got = torch.nn.functional.conv_transpose3d(below, kernel, bias, stride=2, padding=1)
        patterns = cpu_inference._shell_patterns(corrections, got.shape[2:])
        cpu_inference._add_shell_corrections(got, patterns)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_executed_flops_shrink_with_depth_and_stay_below_the_nominal_graph():
    from UNetPlusPlusLib.engine.network import count_flops

    net = make_net()
    x = torch.randn(1, 2, 32, 32, 32)
    executed = []
    with torch.no_grad():
        for k in range(1, 5):
            with net.reuse_buffers() as workspace:
                net(x, depth=k)
            executed.append(workspace.flops)
            nominal = count_flops(net, x.shape, k)
            assert 0.5 * nominal < workspace.flops < nominal
    assert all(a < b for a, b in zip(executed, executed[1:])), executed


def _norm_act_per_channel_rows(norm, y5: torch.Tensor, slope: float) -> torch.Tensor:
    """The norm as it ran before session 10, every operation over (N, V, C) rows, with the
    statistics of session 14 (the mean over V, the mean of the squared deviations)."""
    n, c = y5.shape[:2]
    y = y5.permute(0, 2, 3, 4, 1).reshape(n, -1, c).clone()
    if isinstance(norm, torch.nn.InstanceNorm3d):
        mean = y.mean(1, keepdim=True)
        squares = torch.empty_like(y)
        torch.ops.aten.mse_loss.out(y, mean.expand_as(y), 0, out=squares)
        scale = squares.mean(1, keepdim=True).add_(norm.eps).rsqrt_() * norm.weight
        shift = torch.addcmul(norm.bias, mean, scale, value=-1)
    else:
        scale = (norm.running_var + norm.eps).rsqrt() * norm.weight
        shift = norm.bias - norm.running_mean * scale
    torch.addcmul(shift, y, scale, out=y)
    return torch.nn.functional.leaky_relu_(y, slope)


@pytest.mark.parametrize("kind", ["instance", "batch"])
@pytest.mark.parametrize("spatial", [(4, 8, 8), (3, 5, 7)])  # voxels a multiple of 64, and odd
@pytest.mark.parametrize("c", [8, 16])  # folded rows below 16 channels, unchanged from 16 on
def test_norm_over_folded_rows_is_bit_identical_to_per_channel_rows(kind, spatial, c):
    # the per-channel operands are laid out fold times side by side (rows of fold * C, about
    # twice as fast for 8 channels); every element must meet the same numbers as before
    torch.manual_seed(3)
    if kind == "instance":
        norm = torch.nn.InstanceNorm3d(c, affine=True)
    else:
        norm = torch.nn.BatchNorm3d(c).eval()
        norm.running_mean.uniform_(-0.5, 0.5)
        norm.running_var.uniform_(0.5, 2.0)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.uniform_(-1.0, 1.0)
        y5 = (3.0 * torch.randn(2, c, *spatial) + 1.0).contiguous(
            memory_format=torch.channels_last_3d
        )
        want = _norm_act_per_channel_rows(norm, y5, 0.01)
        cpu_norm._norm_act_(norm, y5, 0.01, cpu_inference.Workspace())
    got = y5.permute(0, 2, 3, 4, 1).reshape(2, -1, c)
    assert torch.equal(got, want)
