"""AdamW without the ``torch._dynamo`` import.

``torch.optim.Optimizer`` guards ``add_param_group``, ``zero_grad``, ``state_dict`` and
``load_state_dict`` with ``torch._disable_dynamo`` and ``step`` with
``_use_grad_for_differentiable``; both import ``torch._dynamo`` when first called (the step on
every call), which costs about 2.5 s of CPU on a quiet machine (6 s under load) in every process
that trains, whatever ``foreach`` or ``fused`` says: it is the guard, not the algorithm. These
guards only matter inside ``torch.compile``, which training never uses. :class:`AdamW` calls the
same methods without their guards (``inspect.unwrap``), so its arithmetic, state and
``state_dict`` are those of ``torch.optim.AdamW`` (the same kernels: single-tensor on the CPU,
``foreach`` on CUDA, by torch's own default), and its step hooks and profiler label still run.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Optional

import torch
from torch.optim import Optimizer


def _unguarded(method: Callable) -> Callable:
    """``method`` without its ``functools.wraps`` decorators (itself where there are none)."""
    return inspect.unwrap(method)


class AdamW(torch.optim.AdamW):
    """``torch.optim.AdamW`` (decoupled weight decay, the same arguments and results) that does
    not import ``torch._dynamo``; not for use inside ``torch.compile``."""

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        _unguarded(Optimizer.add_param_group)(self, param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        _unguarded(Optimizer.zero_grad)(self, set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return _unguarded(Optimizer.state_dict)(self)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        _unguarded(Optimizer.load_state_dict)(self, state_dict)

    def step(self, closure: Optional[Callable[[], float]] = None) -> Optional[float]:
        """One AdamW update of every parameter with a gradient (without autograd recording,
        as ``torch.optim`` does unless ``differentiable``); returns the closure's loss."""
        with torch.set_grad_enabled(bool(self.defaults.get("differentiable", False))):
            return _unguarded(torch.optim.AdamW.step)(self, closure)
