#!/usr/bin/env python3
"""CPU seconds of one training step with the decoder's up-sampling as a GEMM
(``engine/cpu_train_upconv.py``, "gemm") against PyTorch's own transposed convolution
("native": ``slow_conv_transpose3d`` at batch 1, oneDNN's deconvolution at batch 2).

Two networks, as ``unetpp train`` runs them (training/steps.training_step, instance norm,
channels-last, AdamW, hybrid loss): the sphere test model's (features 4 8 16 32 64 4, 32^3 tile)
and the shipped models' (8 16 32 64 128 8, 48^3 tile); batch 1 and 2; one thread, passive
OpenMP waits. Each configuration runs in a fresh process, interleaved in rounds; per process one
warm-up step, then ``--steps`` timed. Prints the median user+system CPU per step, the ratio
native / gemm, and the load average. ``--profile`` instead prints, per configuration, the
profiler's transposed-convolution rows of one step (legacy autograd profiler).

    PYTHONPATH=UNetPlusPlus python scripts/measure_upconv_step.py [--rounds 3] [--steps 3]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NETS = {"tiny 32^3": ((4, 8, 16, 32, 64, 4), 32), "shipped 48^3": ((8, 16, 32, 64, 128, 8), 48)}

WORKER = r"""
import json, resource, sys
import torch
from UNetPlusPlusLib.engine import conv_dispatch
from UNetPlusPlusLib.engine.loss import HybridLoss
from UNetPlusPlusLib.engine.network import UNetPlusPlus3D
from UNetPlusPlusLib.training.optimizer import AdamW
from UNetPlusPlusLib.training.steps import DeepSupervision, channels_last, training_step

features, size, batch, native, steps, prof = json.loads(sys.argv[1])
if native:
    conv_dispatch._train_upsample = lambda up, x: False
torch.set_num_threads(1)
torch.manual_seed(0)
network = UNetPlusPlus3D(1, 2, features, norm="instance")
channels_last(network)
model = DeepSupervision(network).train()
optimizer = AdamW(network.parameters(), lr=3e-4, weight_decay=3e-5)
loss = HybridLoss()
generator = torch.Generator().manual_seed(1)
images = torch.randn(batch, 1, size, size, size, generator=generator)
images = images.contiguous(memory_format=torch.channels_last_3d)
labels = torch.randint(0, 2, (batch, size, size, size), generator=generator)
parameters = list(network.parameters())
step = lambda: training_step(model, parameters, optimizer, loss, images, labels, None)
step()
if prof:
    from torch.autograd.profiler_legacy import profile
    with profile() as p:
        step()
    rows = {e.key: [e.count, round(e.cpu_time_total / 1e3, 2)] for e in p.key_averages()
            if "transpose" in e.key or "UpConv" in e.key or e.key in ("aten::addmm", "aten::mm")}
    print(json.dumps(rows))
    sys.exit()
rows = []
for index in range(steps):
    before = resource.getrusage(resource.RUSAGE_SELF)
    step()
    after = resource.getrusage(resource.RUSAGE_SELF)
    rows.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
print(json.dumps(rows))
"""


def _run(config: list) -> list:
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", KMP_BLOCKTIME="0")
    env["PYTHONPATH"] = str(ROOT / "UNetPlusPlus")
    done = subprocess.run(
        [sys.executable, "-c", WORKER, json.dumps(config)],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    args = parser.parse_args()
    print(f"load average before {os.getloadavg()}", flush=True)
    cells = list(itertools.product(args.nets, (1, 2), ("gemm", "native")))
    rows: dict = {cell: [] for cell in cells}
    for _ in range(1 if args.profile else args.rounds):
        for cell in cells:
            net, batch, up = cell
            features, size = NETS[net]
            found = _run([features, size, batch, up == "native", args.steps, args.profile])
            if args.profile:
                print(f"{net} batch {batch} {up}: {json.dumps(found)}", flush=True)
            else:
                rows[cell] += found
    if not args.profile:
        for net, batch in itertools.product(args.nets, (1, 2)):
            gemm, native = (statistics.median(rows[(net, batch, up)]) for up in ("gemm", "native"))
            low = {up: min(rows[(net, batch, up)]) for up in ("gemm", "native")}
            high = {up: max(rows[(net, batch, up)]) for up in ("gemm", "native")}
            print(
                f"{net} batch {batch}: CPU per step gemm {gemm:.3f} s, native {native:.3f} s "
                f"(native/gemm {native / gemm:.2f}x; min-max gemm {low['gemm']:.3f}-"
                f"{high['gemm']:.3f}, native {low['native']:.3f}-{high['native']:.3f}; "
                f"{len(rows[(net, batch, 'gemm')])} steps each)"
            )
    print(f"load average after {os.getloadavg()}")


if __name__ == "__main__":
    main()
