"""One training step, and the calibration that times a few of them before a run is planned.

The calibration trains throw-away copies of the freshly initialised network on real patches
(augmentation included), so the run itself is untouched: it times float32 steps and, on CPUs
with native bfloat16 (AVX512_BF16 / AMX), bfloat16-autocast steps; where bfloat16 is at least
10 % faster, both copies train a short run on the same batches and bfloat16 is chosen only when
its Dice on held-out patches is not worse (within 0.01). It also times one inference tile, from
which the cost of a validation is estimated.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..engine.cpu_inference import reuse_buffers
from ..engine.network import UNetPlusPlus3D
from ..engine.tiling import tile_starts
from ..errors import UNetPlusPlusError
from .augment import AugmentConfig, training_batch
from .optimizer import AdamW
from .sampler import PatchSampler
from .schedule import LAST_VALIDATION_FACTOR

GRAD_CLIP = 12.0
BF16_MIN_SPEEDUP = 1.10
BF16_DICE_TOLERANCE = 0.01
SHORT_RUN = 8  # steps of each precision in the bf16-vs-fp32 Dice check
# Validation cost in full L4 forward passes per tile, with blending. The last validation runs
# L1..L4 and the ensemble (one full pass) each on its own: the per-depth seconds of two runs here
# summed to 3.1-3.2x the L4 seconds. Those before it score every depth from one pass per tile:
# 1/LAST_VALIDATION_FACTOR of that (bench/validation_one_pass.py), about one pass.
VALIDATION_PASSES = 3.2
ONE_PASS_VALIDATION_PASSES = VALIDATION_PASSES / LAST_VALIDATION_FACTOR


class DeepSupervision(nn.Module):
    """``forward`` returns the logits of heads X(0, 1..4), so DDP synchronises them."""

    def __init__(self, network: UNetPlusPlus3D) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.network.forward_heads(x, 4)


def channels_last(network: nn.Module) -> None:
    """Channels-last 3D weights: about 20% faster training steps with oneDNN on the CPU (and
    what cuDNN prefers). 1x1x1 kernels keep their layout, whose gradients come back contiguous
    (DDP would warn about mismatched gradient strides). A one-channel weight, (f0, 1, k, k, k),
    gets channels-last strides explicitly: ``contiguous`` keeps it as it is (a size-1 channel
    is contiguous in both layouts), but its gradient comes back channels-last, and DDP warned
    "Grad strides do not match bucket view strides" on every CT model's run."""
    with torch.no_grad():
        for parameter in network.parameters():
            if parameter.dim() == 5 and math.prod(parameter.shape[2:]) > 1:
                layout = torch.empty_like(parameter.data, memory_format=torch.channels_last_3d)
                parameter.data = layout.copy_(parameter.data)


def learning_rate(config, iteration: int) -> float:
    """The scheduled learning rate at a global iteration (poly exponent 0.9, as nnU-Net) of a
    TrainConfig (lr, schedule, epochs, iterations_per_epoch)."""
    total = max(1, config.epochs * config.iterations_per_epoch)
    progress = min(iteration / total, 1.0)
    if config.schedule == "poly":
        return config.lr * (1.0 - progress) ** 0.9
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.lr


class NonFiniteLoss(UNetPlusPlusError):
    """The loss of a training step was NaN or infinite (the step was not applied)."""


def autocast_dtype(precision: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast type of a plan's precision on ``device`` (None: float32)."""
    if device.type == "cuda" and precision == "amp":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and precision == "bf16":
        return torch.bfloat16
    return None


def training_step(
    model: nn.Module,
    parameters: Sequence[nn.Parameter],
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable,
    images: torch.Tensor,
    labels: torch.Tensor,
    amp_dtype: Optional[torch.dtype],
    scaler=None,
) -> float:
    """Forward (deep supervision heads), hybrid loss, backward, clipped AdamW step; the loss.

    Raises NonFiniteLoss (a UNetPlusPlusError) when the loss is not finite; nothing has been
    updated then.
    """
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(images.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        heads = model(images)
    loss = loss_fn([h.float() for h in heads], labels)
    if not torch.isfinite(loss):
        raise NonFiniteLoss(
            "The training loss became NaN or infinite; lower --lr or check the data."
        )
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(parameters, GRAD_CLIP)
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        nn.utils.clip_grad_norm_(parameters, GRAD_CLIP)
        optimizer.step()
    return float(loss.detach())


@dataclass
class Calibration:
    """What a few timed steps said about this machine."""

    seconds_per_iteration: float
    seconds_per_tile: float  # one inference tile, full network
    precision: str
    note: str = ""
    timings: dict = field(default_factory=dict)


def _batches(sampler, rng, count, batch_size, augment, spacing, device):
    out, seconds = [], []
    for _ in range(count):
        started = time.perf_counter()
        images, labels = training_batch(sampler, rng, batch_size, augment, spacing)
        seconds.append(time.perf_counter() - started)
        out.append((images.to(device, memory_format=torch.channels_last_3d), labels.to(device)))
    return out, float(np.median(seconds))


def _copy(network: nn.Module, lr: float, weight_decay: float, wrap: Callable):
    clone = copy.deepcopy(network)
    optimizer = AdamW(clone.parameters(), lr=lr, weight_decay=weight_decay)
    return clone, wrap(clone), optimizer


def _time_steps(network, wrap, loss_fn, batches, dtype, lr, weight_decay, device) -> float:
    clone, model, optimizer = _copy(network, lr, weight_decay, wrap)
    model.train()
    seconds = []
    for index, (images, labels) in enumerate(batches):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        try:
            training_step(
                model, list(clone.parameters()), optimizer, loss_fn, images, labels, dtype
            )
        except UNetPlusPlusError:  # a non-finite loss: the step's time still counts
            pass
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if index:  # the first step warms up oneDNN / cuDNN
            seconds.append(time.perf_counter() - started)
    return float(np.median(seconds))


def _patch_dice(network: nn.Module, batches) -> float:
    """Mean foreground Dice of the full network's argmax on held-out patches."""
    network.eval()
    hits = total = 0.0
    with torch.no_grad():
        for images, labels in batches:
            prediction = torch.argmax(network(images.float(), depth=4), dim=1)
            found, truth = prediction > 0, labels > 0
            hits += 2.0 * float((found & truth).sum())
            total += float(found.sum() + truth.sum())
    network.train()
    return hits / total if total else 1.0


def _short_run_dice(network, wrap, loss_fn, batches, held_out, dtype, lr, wd) -> float:
    clone, model, optimizer = _copy(network, lr, wd, wrap)
    model.train()
    try:
        for images, labels in batches:
            training_step(
                model, list(clone.parameters()), optimizer, loss_fn, images, labels, dtype
            )
    except UNetPlusPlusError:
        return -1.0  # the loss diverged: worse than any Dice
    return _patch_dice(clone, held_out)


def calibrate(
    network: nn.Module,
    wrap: Callable[[nn.Module], nn.Module],
    loss_fn: Callable,
    sampler: PatchSampler,
    held_out: PatchSampler,
    augment: AugmentConfig,
    spacing_xyz: Sequence[float],
    batch_size: int,
    tile_zyx: Sequence[int],
    device: torch.device,
    lr: float,
    weight_decay: float,
    precision: str,
    seed: int,
    log: Callable[[str], None],
    steps: int = 2,
    short_run: int = SHORT_RUN,
    comparison_allowed: Callable[[float], bool] = lambda seconds: True,
) -> Calibration:
    """Time ``steps`` training steps (after one warm-up) on copies of ``network``.

    ``precision`` "auto" compares float32 with bfloat16 autocast where the CPU has native
    bfloat16 (and uses CUDA autocast on a GPU); "fp32", "bf16" or "amp" are taken as they are.
    The short bf16-vs-fp32 run happens only when ``comparison_allowed(its estimated seconds)``
    (the trainer allows at most 10 % of the run); without it fp32 stays.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7919]).generate_state(1)[0])
    batches, batch_seconds = _batches(
        sampler, rng, steps + 1, batch_size, augment, spacing_xyz, device
    )
    timings: dict = {"batch_preparation_s": round(batch_seconds, 4)}
    candidates = precision_candidates(precision, device)
    for name in candidates:
        dtype = autocast_dtype(name, device)
        seconds = _time_steps(network, wrap, loss_fn, batches, dtype, lr, weight_decay, device)
        timings[f"{name}_step_s"] = round(seconds, 4)
    chosen, note = candidates[0], ""
    if candidates == ["fp32", "bf16"]:
        speedup = timings["fp32_step_s"] / max(timings["bf16_step_s"], 1e-9)
        timings["bf16_speedup"] = round(speedup, 3)
        cost = short_run * (timings["fp32_step_s"] + timings["bf16_step_s"])
        if speedup < BF16_MIN_SPEEDUP:
            note = f"fp32: bf16 autocast was not faster here ({speedup:.2f}x)"
        elif not comparison_allowed(cost):
            note = (
                f"fp32: bf16 was {speedup:.2f}x faster, but the Dice check ({cost:.0f} s) "
                "costs more than 10% of this run"
            )
        else:
            run, _ = _batches(sampler, rng, short_run, batch_size, augment, spacing_xyz, device)
            held, _ = _batches(held_out, rng, 2, batch_size, AugmentConfig(enabled=False),
                               spacing_xyz, device)  # fmt: skip
            dice = {
                name: _short_run_dice(network, wrap, loss_fn, run, held,
                                      autocast_dtype(name, device), lr, weight_decay)
                for name in candidates
            }  # fmt: skip
            timings["short_run_dice"] = {k: round(v, 4) for k, v in dice.items()}
            if dice["bf16"] >= dice["fp32"] - BF16_DICE_TOLERANCE:
                chosen = "bf16"
                note = (
                    f"bf16: {speedup:.2f}x faster than fp32, Dice after {short_run} steps "
                    f"{dice['bf16']:.3f} vs {dice['fp32']:.3f}"
                )
            else:
                note = (
                    f"fp32: bf16 was {speedup:.2f}x faster but its Dice after {short_run} "
                    f"steps was worse ({dice['bf16']:.3f} vs {dice['fp32']:.3f})"
                )
    elif precision == "auto":
        note = untimed_precision_note(chosen, device)
    per_step = timings[f"{chosen}_step_s"]
    tile_seconds = _time_forward(network, batches[0][0][:1], device)
    timings["inference_tile_s"] = round(tile_seconds, 4)
    log(f"calibration: {timings}")
    return Calibration(per_step + batch_seconds, tile_seconds, chosen, note, timings)


def precision_candidates(precision: str, device: torch.device) -> list[str]:
    """The precisions a calibration times for a requested ``precision`` ("auto", "fp32",
    "bf16", "amp"): one, except "auto" on a CPU with native bfloat16 (["fp32", "bf16"], which
    only timed steps and a short run can decide between)."""
    if precision != "auto":
        return [precision]
    if device.type == "cuda":
        return ["amp"]
    if device.type == "cpu" and _native_bf16():
        return ["fp32", "bf16"]
    return ["fp32"]


def untimed_precision_note(chosen: str, device: torch.device) -> str:
    """Why "auto" means ``chosen`` where no comparison was possible (empty on CUDA)."""
    if device.type == "cpu" and chosen == "fp32":
        return "fp32: this CPU has no native bf16 (AVX512_BF16/AMX)"
    return ""


def _native_bf16() -> bool:
    from ..engine.devices import cpu_autocast_supported

    return cpu_autocast_supported()


def _time_forward(network: nn.Module, tile: torch.Tensor, device: torch.device) -> float:
    """Seconds of one L4 forward of ``tile`` (1, C, z, y, x), the second of two in one kept
    workspace, as a validation runs its tiles (``validation.evaluate_depths``)."""
    was_training = network.training
    network.eval()
    seconds = []
    with torch.inference_mode(), reuse_buffers():
        for _ in range(2):
            started = time.perf_counter()
            network(tile.float(), depth=4)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds.append(time.perf_counter() - started)
    network.train(was_training)
    return seconds[-1]


def validation_seconds(
    shapes_zyx: Sequence[Sequence[int]], tile_zyx: Sequence[int], overlap: float, tile_s: float
) -> float:
    """Estimated seconds of one validation of these cases from one pass per tile (every depth
    and the ensemble scored from the same pass), given ``tile_s`` seconds per L4 tile; the
    last validation, per depth, costs ``schedule.LAST_VALIDATION_FACTOR`` times this."""
    tiles = sum(
        math.prod(len(tile_starts(int(n), int(t), overlap)) for n, t in zip(shape, tile_zyx))
        for shape in shapes_zyx
    )
    return ONE_PASS_VALIDATION_PASSES * tiles * tile_s + 0.02 * len(shapes_zyx)
