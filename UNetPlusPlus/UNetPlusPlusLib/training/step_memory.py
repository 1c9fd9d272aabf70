"""Memory of one training step, and the refusal of a batch or tile that cannot fit.

``unetpp train --batch-size 100000`` (or ``--batch-size 64`` with a 96^3 tile on a CPU, a habit
from GPU training) was accepted; the calibration then built that many augmented patches and
trained on them until the kernel killed the process, with no message. :func:`step_bytes`
estimates one step (forward, backward, AdamW step) from the plan, before any preprocessing, and
:func:`fit_batch` refuses a given batch or tile that does not fit, or reduces a planned batch.

The estimate counts, per sample and voxel of level i (1 / 8^i of the tile's voxels), what
autograd keeps for the backward pass of the UNet++ (``engine/network.py``): of each node X(i, j)
its input (the pooled tensor with its int64 indices, or the concatenated skips and the
upsampling) and, per conv-norm-act block, the convolution's and the norm's outputs
(2 x 2 x f_i); the deep-supervision heads' loss-side values (6 x classes per head). That sum
(float32 bytes) times :data:`ACTIVATION_FACTOR` (times :data:`AUTOCAST_SHARE` under autocast),
plus the input batch (float32) and labels (int64), three batches at once as the calibration
holds them, grows with batch x tile voxels; fixed: the parameters with their gradients and
AdamW's two moments (16 bytes each), twice (the calibration trains a copy), and
:data:`WORKSPACE_BYTES`.

Measured on this machine (2 logical CPUs of an AMD EPYC with avx512_bf16, torch on the CPU, 2
threads): one fresh process per row, the project's network (channels-last), deep supervision,
HybridLoss and AdamW, two real training steps on a random batch; peak RSS growth (VmHWM after
the steps minus VmRSS before the batch) in MB, the higher of two runs; raw: the activations'
count above without the factor; ``bench/training_step_memory.py``::

    tile      batch precision f0 ch classes measured  raw  measured/raw  estimate  est/measured
    32x32x32      1 fp32       8  1    2         133    61      2.18          213      1.60
    32x32x32      4 fp32       8  1    2         407   243      1.67          508      1.25
    48x48x16      4 fp32       8  1    2         431   274      1.57          558      1.29
    48x48x48      1 fp32       8  1    2         342   205      1.67          447      1.31
    48x48x48      2 fp32       8  1    2         600   411      1.46          779      1.30
    48x48x48      2 bf16       8  1    2         380   411      0.92          582      1.53
    64x64x64      1 fp32       8  1    2         746   487      1.53          903      1.21
    64x64x64      2 fp32       8  4    4        1459  1070      1.36         1862      1.28
    48x48x48      2 fp32      16  1    2        1249   781      1.60         1523      1.22

Beyond the fixed part (the 1-patch rows' surplus) the growth is at most about 1.5 x raw
(32^3: (407 - 133) / (243 - 61) = 1.51), so :data:`ACTIVATION_FACTOR` 1.6 keeps every
estimate above the measurement (by 21-60 %) without refusing the planner's defaults: the
shipped models' settings (48^3 or 64^3 tiles, batch 2-4, narrow features) need under 2 GB.
CUDA (amp) was not measured here; its estimate is the CPU's with :data:`AUTOCAST_SHARE`.
No torch, no numpy: the planner imports it.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

from ..errors import UNetPlusPlusError

LEVELS = 5
#: Measured peak over the raw count of saved activations: about 1.5 at most beyond the fixed
#: part (the table above), rounded up.
ACTIVATION_FACTOR = 1.6
#: Share of the float32 activations kept under autocast (bf16 on the CPU measured 0.63 of
#: fp32, the table; CUDA amp assumed the same: not measured here).
AUTOCAST_SHARE = 0.7
#: Copies of the parameters (and their optimizer state) at once: the run's network and the
#: calibration's throw-away copy.
PARAMETER_COPIES = 2
#: oneDNN workspaces and the allocator's slack per step, besides what grows with the batch.
WORKSPACE_BYTES = 64 << 20
#: Batches the calibration holds at once (``steps.calibrate``: 2 timed steps and a warm-up).
HELD_BATCHES = 3
#: Bytes per parameter: float32 weights, gradients, AdamW's exp_avg and exp_avg_sq.
BYTES_PER_PARAMETER = 16
#: Loss-side float32 values per class and voxel of each head: logits' float copy, softmax,
#: log-softmax, one-hot and their gradients (a rough count; the factor covers the rest).
LOSS_VALUES_PER_CLASS = 6
#: What the process holds besides the step (torch, the cases' arrays are not counted): the
#: refusal compares the step with the memory minus this.
BASELINE_BYTES = 1 << 30


def _node_channels(features: Sequence[int], i: int, j: int) -> int:
    return features[LEVELS] if (i, j) == (0, LEVELS - 1) else features[i]


def _up_channels(features: Sequence[int], i: int) -> int:
    return features[1] if i == 0 else features[i + 1] // 2


def parameter_count(features: Sequence[int], in_channels: int, out_channels: int) -> int:
    """Parameters of ``UNetPlusPlus3D(in_channels, out_channels, features)`` with instance norm
    (``features``: f0..f4, f_final)."""

    def node(cin: int, cout: int) -> int:  # two 3x3x3 conv + bias + affine norm
        return (27 * cin * cout + 3 * cout) + (27 * cout * cout + 3 * cout)

    total = 0
    for i in range(LEVELS):
        total += node(in_channels if i == 0 else features[i - 1], features[i])
    for i in range(LEVELS - 1):
        for j in range(1, LEVELS - i):
            below, up = features[i + 1], _up_channels(features, i)
            total += 8 * below * up + up  # stride-2 transposed convolution
            total += node(j * features[i] + up, _node_channels(features, i, j))
    for j in range(1, LEVELS):
        total += (_node_channels(features, 0, j) + 1) * out_channels
    return total


def activation_values(features: Sequence[int], in_channels: int, out_channels: int) -> float:
    """Raw float32 values autograd keeps per sample and per tile voxel (level 0) in training:
    the nodes' inputs and their conv and norm outputs, and the heads' loss-side values."""
    total = 0.0
    for i in range(LEVELS):
        share = 1.0 / 8**i
        for j in range(LEVELS - i):
            out = _node_channels(features, i, j)
            if j == 0:
                given = 0 if i == 0 else features[i - 1] * 3  # pooled input + int64 indices
            else:
                given = j * features[i] + 2 * _up_channels(features, i)  # concat + upsampled
            total += share * (given + 4 * out)
    total += (LEVELS - 1) * LOSS_VALUES_PER_CLASS * out_channels
    return total


def step_bytes(
    tile_xyz: Sequence[int],
    batch_size: int,
    features: Sequence[int],
    in_channels: int,
    out_channels: int,
    precision: str = "fp32",
) -> int:
    """Estimated peak bytes of one training step: ``tile_xyz`` voxels, ``batch_size`` patches,
    ``features`` (f0..f4, f_final), ``in_channels`` image channels, ``out_channels`` classes
    (background included); ``precision`` fp32, bf16 or amp (estimated as float32: autocast
    x :data:`AUTOCAST_SHARE`). Linear in the batch and in the tile's voxels."""
    voxels = math.prod(int(v) for v in tile_xyz)
    factor = ACTIVATION_FACTOR * (1.0 if precision == "fp32" else AUTOCAST_SHARE)
    per_sample = 4 * factor * activation_values(features, in_channels, out_channels)
    per_sample += HELD_BATCHES * (4 * in_channels + 8)  # images float32, labels int64
    parameters = BYTES_PER_PARAMETER * parameter_count(features, in_channels, out_channels)
    fixed = PARAMETER_COPIES * parameters + WORKSPACE_BYTES
    return int(math.ceil(batch_size * voxels * per_sample)) + fixed


def largest_batch(
    tile_xyz: Sequence[int],
    features: Sequence[int],
    in_channels: int,
    out_channels: int,
    memory_bytes: int,
    precision: str = "fp32",
) -> int:
    """The largest batch whose :func:`step_bytes` fits in ``memory_bytes`` (0: not even one)."""
    one = step_bytes(tile_xyz, 1, features, in_channels, out_channels, precision)
    fixed = step_bytes(tile_xyz, 0, features, in_channels, out_channels, precision)
    if memory_bytes < one:
        return 0
    return max(1, int((memory_bytes - fixed) // max(1, one - fixed)))


def available_bytes(
    device_kind: str, device_memory_gb: Optional[float], processes: int = 1
) -> Optional[int]:
    """Memory one training step may use on the device: a CUDA device's total memory, else the
    machine's physical memory (``engine/system_memory.py``) shared by ``processes`` training
    processes (torchrun's ``--nproc_per_node`` on a CPU: each holds its own step), less
    :data:`BASELINE_BYTES` each; None where unknown (no check)."""
    if device_kind == "cuda":
        return int(device_memory_gb * 2**30) if device_memory_gb else None
    from ..engine.system_memory import physical_memory_bytes

    total = physical_memory_bytes()
    return None if total is None else max(0, total // max(1, processes) - BASELINE_BYTES)


def _gb(value: float, decimals: int = 1) -> str:
    gb = value / 2**30
    return f"{gb:.{decimals}f}" if gb < 100 else f"{gb:.{decimals - 1}f}"


def _gb_pair(need: float, available: float) -> tuple[str, str]:
    """``need`` and ``available`` (bytes) in GB, with as many decimals (up to 3) as it takes
    for a need above the memory not to read as the same figure ("0.2 GB ... 0.2 GB"); one
    decimal where even 3 do not tell them apart."""
    for decimals in (1, 2, 3):
        shown = _gb(need, decimals), _gb(available, decimals)
        if shown[0] != shown[1]:
            return shown
    return _gb(need), _gb(available)


def fit_batch(
    plan,
    in_channels: int,
    out_channels: int,
    memory_bytes: Optional[int],
    precision: str = "fp32",
    holder: str = "this machine",
    resumed: bool = False,
) -> None:
    """Check the ``plan`` (planner.Plan: tile_size (x, y, z), features, batch_size, sources)
    against ``memory_bytes`` (None: no check) of ``holder`` (named in the message), at the
    run's ``precision`` (fp32, bf16, amp). A planned batch that does not fit is reduced,
    with the reason in the plan; a batch or tile given by an option (``plan.sources``) that
    does not fit raises UNetPlusPlusError naming the batch, tile, estimate, memory and the
    largest batch that fits. ``resumed``: the plan of a ``--resume``, whose batch and tile
    are kept: one that does not fit raises, whoever chose it."""
    if memory_bytes is None:
        return
    tile, features = tuple(plan.tile_size), tuple(plan.features)
    need = step_bytes(tile, plan.batch_size, features, in_channels, out_channels, precision)
    if need <= memory_bytes:
        return
    most = largest_batch(tile, features, in_channels, out_channels, memory_bytes, precision)
    if resumed:
        raise _resume_refusal(plan, need, most, memory_bytes, holder)
    batch_given = plan.sources.get("batch_size")
    if most >= 1 and not batch_given:
        shown_need, shown_memory = _gb_pair(need, memory_bytes)
        plan.reasons["batch_size"] = (
            f"{plan.batch_size} would need about {shown_need} GB per step, "
            f"{shown_memory} GB available: the most that fits"
        )
        plan.batch_size = most
        return
    shown_tile = "x".join(str(v) for v in tile)
    tile_given = plan.sources.get("tile_size")
    what = f"a batch of {plan.batch_size}" + (f" ({batch_given})" if batch_given else "")
    if batch_given and batch_given.startswith("--"):
        what = f"{batch_given} {plan.batch_size}"
    where = f" ({tile_given})" if tile_given else ""
    if most >= 1 and batch_given == "--batch-size":
        remedy = f"at most {most} fits, or leave --batch-size out to let the planner choose"
    elif most >= 1:
        remedy = f"at most {most} fits: give --batch-size {most} or less"
    else:
        remedy = "not even a batch of 1 fits; give a smaller --tile" + (
            "" if tile_given else " or a coarser --spacing"
        )
        features_given = plan.sources.get("features")
        fixed = step_bytes(tile, 0, features, in_channels, out_channels, precision)
        if fixed >= memory_bytes:  # no tile helps: the network itself is too wide
            remedy = (
                f"the network's weights and optimizer state alone need about {_gb(fixed)} GB; "
                f"give narrower --features ({features_given or 'planned'})"
            )
        elif features_given:
            remedy += f" or narrower --features ({features_given})"
    what = what[0].upper() + what[1:]
    shown_need, shown_memory = _gb_pair(need, memory_bytes)
    raise UNetPlusPlusError(
        f"{what} with a {shown_tile} tile{where} needs about {shown_need} GB per training step; "
        f"{holder} has {shown_memory} GB available; {remedy}. Nothing was trained."
    )


def _resume_refusal(
    plan, need: int, most: int, memory_bytes: int, holder: str
) -> UNetPlusPlusError:
    """The refusal of a resumed ``plan`` whose step (``need`` bytes) does not fit in
    ``memory_bytes``: its batch and tile cannot change on ``--resume`` (the checkpoint trains
    on with them), so the remedy is another machine or a new run."""
    shown_tile = "x".join(str(v) for v in plan.tile_size)
    if most >= 1:
        remedy = (
            f"at most a batch of {most} fits: resume where the memory holds the plan, or start "
            f"a new run (--overwrite) with --batch-size {most}"
        )
    else:
        remedy = (
            "not even a batch of 1 fits: resume where the memory holds the plan, or start a new "
            "run (--overwrite) with a smaller --tile"
        )
    shown_need, shown_memory = _gb_pair(need, memory_bytes)
    return UNetPlusPlusError(
        f"--resume: this run's plan.json trains a batch of {plan.batch_size} with a "
        f"{shown_tile} tile, about {shown_need} GB per training step; {holder} has "
        f"{shown_memory} GB available; {remedy}. Nothing was trained or changed."
    )
