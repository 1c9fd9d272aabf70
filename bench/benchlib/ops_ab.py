"""Single operations of the CPU path, before (session 10) and after (session 11), interleaved.

``python -m benchlib.ops_ab [ROUNDS]`` from ``bench/``, with ``OMP_WAIT_POLICY=PASSIVE``; 2
threads. Each round times every variant 7 times and keeps the best; prints per case the best
over rounds (us) and the median over rounds of after / before (< 1: faster now). Cases: the
norm of the nodule tile's deep nodes, max pooling, the 1x1x1 head and a node's first
convolution (zeroed buffer + in-place add, or a fresh output), on the shapes of the shipped
tiles (16x48x48 nodule, 48^3 liver).
"""

from __future__ import annotations

import statistics
import sys
import time

import torch
import torch.nn.functional as F
from UNetPlusPlusLib.engine import cpu_inference, cpu_norm

_ONE = [1, 1, 1]


def _cl(*shape: int) -> torch.Tensor:
    return torch.randn(*shape).contiguous(memory_format=torch.channels_last_3d)


def _pair(before, after, rounds: int) -> str:
    times: dict = {"before": [], "after": []}
    for _ in range(rounds):
        for name, f in (("before", before), ("after", after)):
            best = float("inf")
            for _ in range(7):
                started = time.perf_counter()
                f()
                best = min(best, time.perf_counter() - started)
            times[name].append(best)
    ratio = statistics.median(a / b for a, b in zip(times["after"], times["before"]))
    return f"{min(times['before']) * 1e6:8.1f} {min(times['after']) * 1e6:8.1f} us  {ratio:.3f}"


def _cases():
    ws = cpu_inference.Workspace()
    for c, spatial in [(128, (1, 3, 3)), (64, (2, 6, 6)), (32, (4, 12, 12)), (16, (8, 24, 24))]:
        norm = torch.nn.InstanceNorm3d(c, affine=True)
        y5, src = _cl(1, c, *spatial), _cl(1, c, *spatial)
        yield (
            f"norm {c}x{spatial}",
            lambda y5=y5, src=src, n=norm: (y5.copy_(src), cpu_norm._norm_act_(n, y5, 0.1, ws)),
            lambda y5=y5, src=src, n=norm: (y5.copy_(src), cpu_norm._norm_act_small_(n, y5, 0.1)),
        )
    executor = cpu_inference._Executor.__new__(cpu_inference._Executor)
    executor.ws = ws
    for c, spatial in [(8, (16, 48, 48)), (8, (48, 48, 48))]:
        x = _cl(1, c, *spatial)
        yield (
            f"max pool {c}x{spatial}",
            lambda x=x: F.max_pool3d(x, 2),
            lambda x=x: executor.max_pool_pairwise(x, 0),
        )
    for spatial in [(16, 48, 48), (48, 48, 48)]:
        net = torch.nn.Conv3d(8, 2, 1)
        x = _cl(1, 8, *spatial)
        executor.model = type("Heads", (), {"head": lambda self, j, net=net: net})()
        executor.shapes = [spatial]

        def old_head(x=x, net=net, spatial=spatial):
            rows = x.permute(0, 2, 3, 4, 1).reshape(-1, 8)
            logits = torch.addmm(net.bias, rows, net.weight.reshape(2, 8).t())
            return logits.view(1, *spatial, 2).permute(0, 4, 1, 2, 3).contiguous()

        yield f"head 8->2 {spatial}", old_head, lambda x=x: executor.head(1, x)
    for cin, cout, spatial in [(1, 8, (16, 48, 48)), (8, 8, (16, 48, 48)), (8, 8, (48,) * 3)]:
        conv = torch.nn.Conv3d(cin, cout, 3, padding=1)
        x, out = _cl(1, cin, *spatial), _cl(1, cout, *spatial)

        def zero_add(conv=conv, x=x, out=out):
            out.zero_()
            packed = ws.packed(conv, slice(0, conv.in_channels), x.shape)
            cpu_inference._convolve_add(out, x, packed, conv.bias, conv, ws)

        yield (
            f"first conv {cin}->{cout} {spatial}",
            zero_add,
            lambda conv=conv, x=x, out=out: cpu_inference._convolve_into(conv, [x], out, ws),
        )


def main(argv: list[str]) -> int:
    rounds = int(argv[0]) if argv else 20
    torch.set_num_threads(2)
    with torch.no_grad():  # not inference_mode: packed weights check version counters
        print("case                              before    after      after/before")
        for name, before, after in _cases():
            print(f"{name:32s} {_pair(before, after, rounds)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
