"""A non-finite training loss: float32 fallback under autocast, one clear error otherwise."""

from __future__ import annotations

import types

import pytest
import torch
from UNetPlusPlusLib.engine.network import UNetPlusPlus3D
from UNetPlusPlusLib.training.steps import DeepSupervision, NonFiniteLoss
from UNetPlusPlusLib.training.trainer import Trainer


class NanOnce:
    """The mean of the heads as a loss, NaN on the first ``bad`` calls."""

    def __init__(self, bad: int = 1) -> None:
        self.calls, self.bad = 0, bad

    def __call__(self, heads, labels):
        self.calls += 1
        loss = sum(h.mean() for h in heads)
        return loss * float("nan") if self.calls <= self.bad else loss


def _trainer(loss_fn, amp_dtype):
    torch.manual_seed(0)
    network = UNetPlusPlus3D(in_channels=1, out_channels=2, features=(2, 4, 4, 4, 4, 2))
    logged: list[str] = []
    plan = types.SimpleNamespace(precision="bf16", reasons={})
    fake = types.SimpleNamespace(
        model=DeepSupervision(network),
        network=network,
        optimizer=torch.optim.AdamW(network.parameters(), lr=1e-2),
        loss_fn=loss_fn,
        amp_dtype=amp_dtype,
        scaler=None,
        config=types.SimpleNamespace(precision="bf16" if amp_dtype else "fp32"),
        plan=plan,
        log=logged.append,
    )
    return fake, logged


def _batch():
    return torch.randn(1, 1, 32, 32, 32), torch.zeros(1, 32, 32, 32, dtype=torch.long)


def test_a_nan_loss_under_bf16_switches_the_run_to_float32_and_applies_the_step():
    fake, logged = _trainer(NanOnce(), torch.bfloat16)
    parameters = list(fake.network.parameters())
    before = [p.detach().clone() for p in parameters]
    loss = Trainer._step(fake, parameters, *_batch())
    assert loss == loss  # finite, the float32 retry
    assert fake.amp_dtype is None and fake.config.precision == "fp32"
    assert fake.plan.precision == "fp32" and "not finite" in fake.plan.reasons["precision"]
    assert any("continuing in float32" in line for line in logged)
    assert any(not torch.equal(a, b) for a, b in zip(before, parameters))  # the step was applied
    assert all(bool(torch.isfinite(p).all()) for p in parameters)


def test_a_nan_loss_in_float32_or_twice_is_one_clear_error():
    fake, _ = _trainer(NanOnce(), None)
    with pytest.raises(NonFiniteLoss, match="lower --lr"):
        Trainer._step(fake, list(fake.network.parameters()), *_batch())
    fake, _ = _trainer(NanOnce(bad=2), torch.bfloat16)  # float32 does not help either
    with pytest.raises(NonFiniteLoss):
        Trainer._step(fake, list(fake.network.parameters()), *_batch())


def test_non_finite_weights_are_not_retried():
    fake, _ = _trainer(NanOnce(), torch.bfloat16)
    parameters = list(fake.network.parameters())
    with torch.no_grad():
        parameters[0].fill_(float("nan"))
    with pytest.raises(NonFiniteLoss):
        Trainer._step(fake, parameters, *_batch())
    assert fake.config.precision == "bf16"
