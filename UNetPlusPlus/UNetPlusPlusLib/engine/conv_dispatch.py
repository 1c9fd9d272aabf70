"""Which kernel computes a convolution of the UNet++ (``network.py``), and when.

* float32 CPU inference without autograd: oneDNN directly (``torch.mkldnn_convolution``);
* float32 CPU training of one sample (3x3x3): ``cpu_train_conv`` (oneDNN forward and backward);
* float32 CPU training, up-sampling (2x2x2 stride-2 transposed): ``cpu_train_upconv`` (a GEMM);
* otherwise, and always within :func:`plain_modules` or while a tracer or ``torch.compile``
  records: the plain ``nn`` module.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

import torch
import torch.autograd.forward_ad as _forward_ad
from torch import Tensor, nn

from .cpu_train_conv import conv3d_one_sample
from .cpu_train_upconv import conv_transpose3d_2x

_PLAIN = contextvars.ContextVar("unetpp_plain_modules", default=False)


@contextlib.contextmanager
def plain_modules() -> Iterator[None]:
    """Within this block, forward runs the plain ``nn`` modules (``nn.Conv3d``, ``torch.cat``):
    no direct oneDNN calls and no ``cpu_inference`` path. This is "torch eager" in the bench, and
    the graph an ONNX export traces (``onnx_export.py``)."""
    token = _PLAIN.set(True)
    try:
        yield
    finally:
        _PLAIN.reset(token)


def _plain() -> bool:
    """Plain modules were asked for, or a tracer (ONNX export, TorchScript) is recording."""
    return _PLAIN.get() or torch.jit.is_tracing()


def _use_onednn(x: Tensor, weight: Tensor) -> bool:
    """Whether to call oneDNN (MKLDNN) directly for a 3x3x3 convolution of ``x``.

    PyTorch's backend heuristic was tuned for 2D: for one 3D sample with few channels it picks
    the im2col kernel (``slow_conv3d``), which is up to 10x slower here. oneDNN computes the
    same convolution (up to float rounding); we use it for CPU float32 inference only.
    """
    return (
        x.device.type == "cpu"
        and not _compiling()  # torch.compile traces nn.Conv3d, not oneDNN's eager entry point
        and not _plain()
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and not torch.is_grad_enabled()
        and torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled
    )


def _compiling() -> bool:
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and compiler.is_compiling())


def _register_onednn_flops() -> None:
    """Let ``torch.utils.flop_counter`` count the direct oneDNN convolutions (it has no formula)."""
    try:
        from torch.utils.flop_counter import conv_flop_count, flop_registry, register_flop_formula
    except ImportError:  # pragma: no cover - older torch
        return
    target = torch.ops.aten.mkldnn_convolution
    if target in flop_registry:
        return

    @register_flop_formula(target)
    def _onednn_conv_flops(x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:
        return conv_flop_count(x_shape, w_shape, out_shape, transposed=False)


_register_onednn_flops()


def _conv3d(conv: nn.Conv3d, x: Tensor) -> Tensor:
    if _use_onednn(x, conv.weight):
        return torch.mkldnn_convolution(
            x, conv.weight, conv.bias, conv.padding, conv.stride, conv.dilation, conv.groups
        )
    if _train_one_sample(conv, x):
        return conv3d_one_sample(x, conv.weight, conv.bias)
    return conv(x)


_SAME_3X3X3 = ((3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1))


def _train_one_sample(conv: nn.Conv3d, x: Tensor) -> bool:
    """Whether a training (autograd) convolution of one CPU sample goes through oneDNN
    (``cpu_train_conv``): PyTorch itself would take its im2col kernel, several times slower
    forward and backward, for N = 1 only."""
    return (
        x.shape[0] == 1
        and (conv.kernel_size, conv.padding, conv.stride, conv.dilation) == _SAME_3X3X3
        and conv.groups == 1
        and torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled
        and _cpu_float32_training(conv, x)
    )


def _conv_transpose3d(up: nn.ConvTranspose3d, x: Tensor) -> Tensor:
    """``up(x)``; in float32 CPU training a 2x2x2 stride-2 one runs as a matrix product
    (``cpu_train_upconv``), cheaper than PyTorch's own kernels at N = 1 and 2."""
    if _train_upsample(up, x):
        return conv_transpose3d_2x(x, up.weight, up.bias)
    return up(x)


_UP_2X = ((2, 2, 2), (2, 2, 2), (0, 0, 0), (0, 0, 0), (1, 1, 1))


def _train_upsample(up: nn.ConvTranspose3d, x: Tensor) -> bool:
    """Whether a training transposed convolution goes through ``cpu_train_upconv``."""
    geometry = (up.kernel_size, up.stride, up.padding, up.output_padding, up.dilation)
    return (
        geometry == _UP_2X
        and up.groups == 1
        and x.dim() == 5
        and up.padding_mode == "zeros"
        and _cpu_float32_training(up, x)
    )


def _cpu_float32_training(module: nn.Module, x: Tensor) -> bool:
    """Float32 autograd on the CPU, where our ``autograd.Function`` s may replace the module:
    not within ``plain_modules()``, a tracer or ``torch.compile``, not under CPU autocast (the
    module would run bfloat16 there), forward-mode AD or functorch transforms, nor with hooks
    on the module or global ones."""
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and module.weight.dtype == torch.float32
        and torch.is_grad_enabled()
        and not _plain()
        and not _compiling()
        and not torch.is_autocast_enabled("cpu")
        and _forward_ad._current_level < 0
        and torch._C._functorch.maybe_current_level() is None
        and not (module._forward_hooks or module._forward_pre_hooks or module._backward_hooks)
        and not _global_hooks()
    )


def _global_hooks() -> bool:
    from torch.nn.modules import module as module_globals

    return bool(module_globals._global_forward_hooks or module_globals._global_forward_pre_hooks)
