"""Training throughput (issue 15): patches per second of one training step at the shipped
models' plans, ours against a plain PyTorch step on MONAI's BasicUNetPlusPlus.

Ours: ``training.steps.training_step`` on our UNet++ with deep supervision (the four heads'
hybrid loss), channels-last 3D weights and inputs, the precision ``--precision`` names (fp32 by
default: what the planner picks on this CPU is measured per run, see docs/TRAINING.md). The plain
step: MONAI BasicUNetPlusPlus with the same features, ``deep_supervision=True``, contiguous
float32, the same loss on its four outputs, AdamW, clipping. Same tile, batch, channels, classes
and threads; random inputs and labels (the speed does not depend on them). One warm-up step,
then the median of ``steps``.

Usage: python bench/benchlib/training.py [--quick] [--threads N]; bench/run prints its line first.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import torch

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "UNetPlusPlus" / "UNetPlusPlusLib" / "Resources" / "Models"


def shipped_plans(models_dir: Path = MODELS) -> dict[str, dict]:
    """Per shipped model: tile (x, y, z), features, channels, classes, batch from its manifest."""
    plans = {}
    for path in sorted(models_dir.glob("*/model.json")):
        manifest = json.loads(path.read_text(encoding="utf-8"))
        plans[path.parent.name] = {
            "tile_xyz": [int(v) for v in manifest["tile_size"]],
            "features": [int(v) for v in manifest["network"]["features"]],
            "channels": int(manifest["network"]["in_channels"]),
            "classes": int(manifest["network"]["out_channels"]),
            "batch": int((manifest.get("training") or {}).get("batch_size") or 2),
        }
    return plans


def _seconds(step: Callable[[], None], steps: int) -> float:
    step()  # warm-up: oneDNN primitives
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _batch(plan: dict, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    shape = (plan["batch"], plan["channels"], *plan["tile_xyz"][::-1])
    images = torch.randn(shape, generator=generator)
    labels = torch.randint(0, plan["classes"], (plan["batch"], *plan["tile_xyz"][::-1]),
                           generator=generator)  # fmt: skip
    return images, labels


def ours_step(plan: dict, precision: str = "fp32") -> Callable[[], None]:
    """One of our training steps, as the trainer runs it."""
    from UNetPlusPlusLib.engine.loss import HybridLoss
    from UNetPlusPlusLib.engine.network import UNetPlusPlus3D
    from UNetPlusPlusLib.training.optimizer import AdamW
    from UNetPlusPlusLib.training.steps import (
        DeepSupervision,
        autocast_dtype,
        channels_last,
        training_step,
    )

    torch.manual_seed(0)
    network = UNetPlusPlus3D(plan["channels"], plan["classes"], tuple(plan["features"]))
    channels_last(network)
    model = DeepSupervision(network).train()
    optimizer = AdamW(network.parameters(), lr=3e-4, weight_decay=3e-5)
    images, labels = _batch(plan)
    images = images.contiguous(memory_format=torch.channels_last_3d)
    dtype = autocast_dtype(precision, torch.device("cpu"))
    parameters, loss = list(network.parameters()), HybridLoss()
    return lambda: training_step(model, parameters, optimizer, loss, images, labels, dtype)


def monai_step(plan: dict) -> Callable[[], None]:
    """A plain PyTorch training step on MONAI BasicUNetPlusPlus (deep supervision)."""
    import contextlib
    import io

    from monai.networks.nets import BasicUNetPlusPlus
    from UNetPlusPlusLib.engine.loss import HybridLoss

    torch.manual_seed(0)
    with contextlib.redirect_stdout(io.StringIO()):
        net = BasicUNetPlusPlus(
            spatial_dims=3,
            in_channels=plan["channels"],
            out_channels=plan["classes"],
            features=tuple(plan["features"]),
            deep_supervision=True,
        ).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-4, weight_decay=3e-5)
    images, labels = _batch(plan)
    loss_fn = HybridLoss()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(list(net(images)), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 12.0)
        optimizer.step()

    return step


def measure(threads: int, steps: int, precision: str = "fp32", models: Optional[list] = None):
    """{model: {"ours": patches/s, "monai": patches/s, ...plan}} at ``threads`` threads."""
    torch.set_num_threads(threads)
    out = {}
    for name, plan in shipped_plans().items():
        if models and name not in models:
            continue
        ours = _seconds(ours_step(plan, precision), steps)
        monai = _seconds(monai_step(plan), steps)
        out[name] = {**plan, "ours": plan["batch"] / ours, "monai": plan["batch"] / monai}
    return out


def line(results: dict, threads: int, precision: str) -> str:
    """``training_patches_per_s (2 threads, fp32): liver 48x48x48 b2 ours 1.23 monai 0.80
    (1.54x); ...`` (patches per second; the ratio is ours / MONAI)."""
    parts = []
    for name, r in results.items():
        tile = "x".join(str(v) for v in r["tile_xyz"])
        ratio = r["ours"] / r["monai"] if r["monai"] else float("nan")
        parts.append(
            f"{name} {tile} b{r['batch']} ours {r['ours']:.2f} monai {r['monai']:.2f} "
            f"({ratio:.2f}x)"
        )
    return f"training_patches_per_s ({threads} threads, {precision}): " + "; ".join(parts)


def main(argv: list[str]) -> int:
    """Print the training-throughput line (unknown arguments are left to the other bench)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    args, _rest = parser.parse_known_args(argv)
    sys.path.insert(0, str(ROOT / "UNetPlusPlus"))
    steps = 2 if args.quick else 4
    print(f"bench: training throughput, {steps} steps per engine and model", file=sys.stderr)
    print(line(measure(args.threads, steps, args.precision), args.threads, args.precision),
          flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
