"""HybridLoss: cross-entropy + soft Dice over deep-supervision heads."""

from __future__ import annotations

import pytest
import torch
from UNetPlusPlusLib.engine.loss import HybridLoss, cross_entropy_term, soft_dice_term
from UNetPlusPlusLib.engine.network import UNetPlusPlus3D


def one_hot_logits(target: torch.Tensor, n_classes: int, scale: float = 30.0) -> torch.Tensor:
    """Logits whose softmax is (almost exactly) the one-hot target."""
    return torch.nn.functional.one_hot(target, n_classes).movedim(-1, 1).float() * scale


def random_target(shape=(2, 8, 8, 8), n_classes=3, seed=0) -> torch.Tensor:
    return torch.randint(0, n_classes, shape, generator=torch.Generator().manual_seed(seed))


def test_perfect_prediction_has_near_zero_dice_and_ce():
    target = random_target()
    logits = one_hot_logits(target, 3)
    assert soft_dice_term(logits, target) < 1e-6
    assert cross_entropy_term(logits, target) < 1e-6
    assert HybridLoss()(logits, target) < 1e-6


def test_wrong_prediction_scores_high():
    target = random_target()
    logits = one_hot_logits((target + 1) % 3, 3)
    assert soft_dice_term(logits, target) > 0.99
    assert HybridLoss()(logits, target) > 10


def test_dice_is_per_class_over_the_batch():
    # class 1 fills sample 0 and is absent from sample 1; predicted perfectly -> Dice 1
    target = torch.zeros(2, 4, 4, 4, dtype=torch.long)
    target[0] = 1
    logits = one_hot_logits(target, 2)
    assert soft_dice_term(logits, target) < 1e-6
    # half of the class-1 voxels missed: Dice = 2*32 / (64 + 32) (smooth aside)
    half = target.clone()
    half[0, :2] = 0
    expected = 1 - (2 * 32 + 1) / (32 + 64 + 1)
    torch.testing.assert_close(
        soft_dice_term(one_hot_logits(half, 2), target), torch.tensor(expected), atol=1e-4, rtol=0
    )


def test_empty_foreground_is_finite_and_rewards_background():
    target = torch.zeros(1, 8, 8, 8, dtype=torch.long)
    right = HybridLoss()(one_hot_logits(target, 3), target)
    wrong = HybridLoss()(torch.zeros(1, 3, 8, 8, 8), target)
    assert torch.isfinite(right) and torch.isfinite(wrong)
    assert right < 1e-3 < wrong


def test_heads_are_averaged_with_weights():
    target = random_target()
    good = one_hot_logits(target, 3)
    bad = one_hot_logits((target + 1) % 3, 3)
    loss = HybridLoss()
    bad_value = loss(bad, target)
    torch.testing.assert_close(loss([good, bad], target), bad_value / 2, rtol=1e-4, atol=1e-4)
    weighted = HybridLoss(head_weights=[3, 1])
    torch.testing.assert_close(weighted([good, bad], target), bad_value / 4, rtol=1e-4, atol=1e-4)
    assert HybridLoss(head_weights=[1, 0])([good, bad], target) < 1e-5
    with pytest.raises(ValueError):
        weighted([good], target)


def test_ignore_index_leaves_voxels_out():
    target = random_target()
    logits = one_hot_logits(target, 3)
    corrupted = target.clone()
    corrupted[:, :4] = 255  # labels unknown there
    # predictions in the ignored region do not matter
    scrambled = logits.clone()
    scrambled[:, :, :4] = one_hot_logits((target + 1) % 3, 3)[:, :, :4]
    loss = HybridLoss(ignore_index=255)
    assert loss(scrambled, corrupted) < 1e-5
    everything_ignored = torch.full_like(target, 255)
    value = loss(scrambled, everything_ignored)
    assert torch.isfinite(value)


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="do not match"):
        HybridLoss()(torch.zeros(1, 2, 8, 8, 8), torch.zeros(1, 8, 8, 4, dtype=torch.long))


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_loss_decreases_when_training_a_tiny_network(one_thread):
    torch.manual_seed(0)
    net = UNetPlusPlus3D(1, 2, features=(4, 8, 8, 16, 16, 4))
    # a bright cube on noise: learnable in a few steps
    x = torch.randn(2, 1, 16, 16, 16) * 0.3
    target = torch.zeros(2, 16, 16, 16, dtype=torch.long)
    target[:, 4:12, 4:12, 4:12] = 1
    x[target.unsqueeze(1) == 1] += 1.5
    loss_fn = HybridLoss()
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        optimiser.zero_grad()
        loss = loss_fn(net.forward_heads(x, depth=3), target)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.6 * losses[0], losses
