"""Each session-11 change of the CPU path toggled on and off in one process, interleaved.

``python -m benchlib.toggles_ab CONFIGS ROUNDS [--old FILE]`` from ``bench/`` with
``OMP_WAIT_POLICY=PASSIVE``; CONFIGS as in ``tile_ab`` (shipped tasks only), FILE main's
``cpu_inference.py`` (variant "main"). Variants: none of the size-gated changes (``_SMALL`` = 0,
no pairwise pooling, ``_FRESH_BYTES`` = 0; the head GEMM has no switch), each alone, all. Prints
per config the median wall and CPU ms per tile and the median of the rounds' ratios to "none".
"""

import importlib.util
import json
import os
import statistics
import sys
import time

import torch
from UNetPlusPlusLib.engine import cpu_inference as ci
from UNetPlusPlusLib.engine import cpu_norm, network

from . import interleave
from .executor_worker import _shipped


def main() -> None:
    torch.set_num_threads(2)
    OLD = sys.argv[sys.argv.index("--old") + 1] if "--old" in sys.argv else "/tmp/old_ci.py"
    spec = importlib.util.spec_from_file_location("UNetPlusPlusLib.engine._old_ci", OLD)
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    BIG = 1 << 60
    variants = {
        "main": None,
        "none": dict(S=0, P=BIG, F=0),
        "norm": dict(S=1 << 17, P=BIG, F=0),
        "pool": dict(S=0, P=1 << 17, F=0),
        "fresh": dict(S=0, P=BIG, F=4 << 20),
        "all": dict(S=1 << 17, P=1 << 17, F=4 << 20),
    }
    names = list(variants)

    def setv(v):
        if v is None:
            network.cpu_inference = old
            return
        network.cpu_inference = ci
        cpu_norm._SMALL = v["S"]
        ci._PAIRWISE_POOL = v["P"]
        ci._FRESH_BYTES = v["F"]

    cfgs = json.loads(sys.argv[1])
    rounds = int(sys.argv[2])
    models = {}
    times = {}
    load0 = os.getloadavg()[0]
    for task, _ in cfgs:
        if task not in models:
            b = _shipped(task, 2, [1])
            models[task] = (b["model"], b["tile"])
    with torch.inference_mode(), ci.reuse_buffers(), old.reuse_buffers():
        for task, d in cfgs:
            m, x = models[task]
            for n in names:
                setv(variants[n])
                m(x, depth=d)
                m(x, depth=d)

        def measure(cell: tuple) -> tuple:
            (task, d), n = cell
            m, x = models[task]
            setv(variants[n])
            s = []
            c = []
            for _ in range(5):
                a = time.perf_counter()
                p = time.process_time()
                m(x, depth=d)
                s.append(time.perf_counter() - a)
                c.append(time.process_time() - p)
            return statistics.median(s), statistics.median(c)

        groups = [[((task, d), n) for n in names] for task, d in cfgs]
        samples = interleave.collect(rounds, groups, measure, rotate=True)
        for ((task, d), n), values in samples.items():
            times.setdefault(f"{task}:L{d}", {})[n] = [wall for wall, _ in values]
            times.setdefault(f"{task}:L{d}:cpu", {})[n] = [cpu for _, cpu in values]
    out = {"load": [round(load0, 1), round(os.getloadavg()[0], 1)]}
    out.update(interleave.summarize(times, "none", scale=1e3, digits=2))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
