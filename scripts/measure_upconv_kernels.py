#!/usr/bin/env python3
"""CPU milliseconds of forward + backward of each up-sampling (2x2x2 stride-2 transposed
convolution) of a training step: PyTorch's kernel ("native": slow_conv_transpose3d at batch 1,
oneDNN at batch 2), the same on a batch-1 sample viewed as two z-halves ("zsplit", oneDNN), and
the GEMM + depth-to-space of ``engine/cpu_train_upconv.py`` ("gemm"). The shapes of the tiny
network (4..64, 32^3) and the shipped one (8..128, 48^3), channels-last, one thread; per shape
the best of 5 interleaved repetitions, then the sum over the step's ten up-samplings. Checks the
values and gradients against ``F.conv_transpose3d`` first.

    PYTHONPATH=UNetPlusPlus OMP_NUM_THREADS=1 python scripts/measure_upconv_kernels.py
"""

from __future__ import annotations

import os
import time

import torch
import torch.nn.functional as F
from UNetPlusPlusLib.engine.cpu_train_upconv import conv_transpose3d_2x

CL = torch.channels_last_3d


def native(x, w, b):
    return F.conv_transpose3d(x, w, b, stride=2)


def zsplit(x, w, b):
    n, c, d, h, wd = x.shape
    if n != 1 or d % 2:
        return native(x, w, b)
    halves = x.permute(0, 2, 3, 4, 1).reshape(2, d // 2, h, wd, c).permute(0, 4, 1, 2, 3)
    y = native(halves, w, b)
    return y.permute(0, 2, 3, 4, 1).reshape(1, 2 * d, 2 * h, 2 * wd, -1).permute(0, 4, 1, 2, 3)


FORMS = {"native": native, "zsplit": zsplit, "gemm": conv_transpose3d_2x}
NETS = {"tiny 32^3": ((4, 8, 16, 32, 64), 32), "shipped 48^3": ((8, 16, 32, 64, 128), 48)}


def _ms(form, x, w, b, g, reps: int) -> float:
    started = time.process_time()
    for _ in range(reps):
        torch.autograd.grad(form(x, w, b), (x, w, b), g)
    return (time.process_time() - started) / reps * 1e3


def main() -> None:
    torch.set_num_threads(1)
    print(f"load average before {os.getloadavg()}")
    for n in (1, 2):
        for name, (features, size) in NETS.items():
            total = dict.fromkeys(FORMS, 0.0)
            for row in range(4):  # Up(X(row+1, .)) into row `row`, used 4 - row times
                c_in = features[row + 1]
                c_out = features[1] if row == 0 else features[row + 1] // 2
                side = size >> (row + 1)
                x = torch.randn(n, c_in, side, side, side).contiguous(memory_format=CL)
                x.requires_grad_()
                w = torch.randn(c_in, c_out, 2, 2, 2, requires_grad=True)
                b = torch.randn(c_out, requires_grad=True)
                g = torch.randn(n, c_out, 2 * side, 2 * side, 2 * side)
                g = g.contiguous(memory_format=CL)
                want = native(x, w, b)
                grads = torch.autograd.grad(want, (x, w, b), g)
                for form in FORMS.values():
                    got = form(x, w, b)
                    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)
                    for f, e in zip(torch.autograd.grad(got, (x, w, b), g), grads):
                        torch.testing.assert_close(f, e, rtol=1e-3, atol=1e-2)
                reps = max(3, int(2000 / (side**3 * c_in / 64 + 1)))
                best = {
                    key: min(_ms(f, x, w, b, g, reps) for _ in range(5)) for key, f in FORMS.items()
                }
                for key in FORMS:
                    total[key] += (4 - row) * best[key]
                cells = " ".join(f"{key} {ms:.2f}" for key, ms in best.items())
                print(f"batch {n} {name} row {row} ({c_in}->{c_out}, {side}^3): {cells} ms")
            cells = " ".join(f"{key} {ms:.1f}" for key, ms in total.items())
            print(f"batch {n} {name}, the step's ten up-samplings: {cells} ms")
    print(f"load average after {os.getloadavg()}")


if __name__ == "__main__":
    main()
