"""Peak memory of one training step vs ``training/step_memory.step_bytes``.

Each configuration runs in a fresh process: the project's UNet++ (channels-last, as the
trainer builds it), deep supervision, HybridLoss and AdamW; two real training steps (forward,
backward, clipped optimizer step) on a random batch. The peak RSS growth is VmHWM after the
steps minus VmRSS before the batch was made (/proc/self/status, Linux). Prints one row per
configuration: tile, batch, precision, measured MB, raw activations MB (step_memory's count
without its factor), measured / raw, and the estimate in MB.

    PYTHONPATH=UNetPlusPlus python bench/training_step_memory.py [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CONFIGS = [  # tile (x, y, z), batch, precision, features, in channels, classes
    ((32, 32, 32), 1, "fp32", (8, 16, 32, 64, 128, 8), 1, 2),
    ((32, 32, 32), 4, "fp32", (8, 16, 32, 64, 128, 8), 1, 2),
    ((48, 48, 16), 4, "fp32", (8, 16, 32, 64, 128, 8), 1, 2),
    ((48, 48, 48), 1, "fp32", (8, 16, 32, 64, 128, 8), 1, 2),
    ((48, 48, 48), 2, "fp32", (8, 16, 32, 64, 128, 8), 1, 2),
    ((48, 48, 48), 2, "bf16", (8, 16, 32, 64, 128, 8), 1, 2),
    ((64, 64, 64), 1, "fp32", (8, 16, 32, 64, 128, 8), 1, 2),
    ((64, 64, 64), 2, "fp32", (8, 16, 32, 64, 128, 8), 4, 4),
    ((48, 48, 48), 2, "fp32", (16, 32, 64, 128, 256, 16), 1, 2),
]


def _status(key: str) -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(key)


def child(spec: str) -> None:
    import torch
    from UNetPlusPlusLib.engine.loss import HybridLoss
    from UNetPlusPlusLib.engine.network import UNetPlusPlus3D
    from UNetPlusPlusLib.training.optimizer import AdamW
    from UNetPlusPlusLib.training.steps import (
        DeepSupervision,
        autocast_dtype,
        channels_last,
        training_step,
    )

    tile, batch, precision, features, channels, classes = json.loads(spec)
    torch.manual_seed(0)
    network = UNetPlusPlus3D(channels, classes, features)
    channels_last(network)
    model = DeepSupervision(network)
    optimizer = AdamW(network.parameters(), lr=3e-4, weight_decay=3e-5)
    loss_fn = HybridLoss()
    before = _status("VmRSS")
    shape = (batch, channels, *tile[::-1])
    images = torch.randn(shape).contiguous(memory_format=torch.channels_last_3d)
    labels = torch.randint(0, classes, (batch, *tile[::-1]))
    dtype = autocast_dtype(precision, torch.device("cpu"))
    for _ in range(2):
        training_step(model, list(network.parameters()), optimizer, loss_fn, images, labels, dtype)
    print(json.dumps({"peak": _status("VmHWM") - before}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        child(args.child)
        return
    from UNetPlusPlusLib.training.step_memory import (
        ACTIVATION_FACTOR,
        activation_values,
        step_bytes,
    )

    mb = 2**20
    print("tile      batch precision features  ch cls measured_MB raw_MB ratio estimate_MB")
    for tile, batch, precision, features, channels, classes in CONFIGS:
        spec = json.dumps([tile, batch, precision, features, channels, classes])
        run = subprocess.run(
            [sys.executable, __file__, "--child", spec, "--threads", str(args.threads)],
            capture_output=True,
            text=True,
            check=True,
        )
        peak = json.loads(run.stdout.strip().splitlines()[-1])["peak"]
        voxels = tile[0] * tile[1] * tile[2]
        raw = 4 * batch * voxels * activation_values(features, channels, classes)
        estimate = step_bytes(tile, batch, features, channels, classes, precision)
        print(
            f"{'x'.join(map(str, tile)):<9} {batch:>5} {precision:<9} {features[0]:>8} "
            f"{channels:>3} {classes:>3} {peak / mb:>11.0f} {raw / mb:>6.0f} "
            f"{peak / raw:>5.2f} {estimate / mb:>11.0f}"
        )
    print(f"ACTIVATION_FACTOR = {ACTIVATION_FACTOR}")


if __name__ == "__main__":
    main()
