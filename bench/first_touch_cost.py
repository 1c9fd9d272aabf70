"""What touching fresh memory costs on this machine: seconds per GiB, right after other memory
was freed, and after a pause.

A fresh ``unetpp segment`` of the 512x512x300 liver CT touches about 1 GB once (the float32
volume alone is 300 MiB; ``memray`` peak 0.78 GB, RSS 0.98 GB). On a bare-metal Linux machine
a first touch costs the kernel's page fault and zeroing, about 0.1-0.2 s per GiB. In a VM whose
guest reports free pages to the host (Linux ``page_reporting``; this bench machine is a
Firecracker VM booted with ``page_reporting.page_reporting_order=11``), memory freed a few
seconds ago has been handed back to the host, and touching it again also pays the host's
fault: session 19 measured ~2.6 s per GiB for 16 GiB, against ~0.15 s for memory just freed.
That cost lands in whichever stage allocates (reading, preparing, the output), varies with what
ran before, and is one reason why the same run varies by seconds from hour to hour here.

Each measurement runs in a fresh process that allocates ``--gib`` GiB with numpy and writes
one byte per 4 KiB page: "just freed" right after another process touched and freed as much,
"after a pause" ``--pause`` seconds later (page reporting waits about 2 s). Interleaved
``--rounds`` times. Run: ``python bench/first_touch_cost.py [--gib 1] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

TOUCH = (
    "import sys, time, numpy as np\n"
    "n = int(float(sys.argv[1]) * 2**30)\n"
    "started = time.perf_counter()\n"
    "a = np.empty(n, np.uint8)\n"
    "a[::4096] = 1\n"
    "print(time.perf_counter() - started)\n"
)


def touch_seconds(gib: float) -> float:
    """Seconds a fresh process takes to allocate and first touch ``gib`` GiB."""
    out = subprocess.run(
        [sys.executable, "-c", TOUCH, str(gib)], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip())


def _number(kind: type, low: float, strict: bool):
    """An argparse type: a ``kind`` number above ``low`` (or at least, ``strict`` False)."""

    def check(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (value > low if strict else value >= low):  # also refuses nan
            raise argparse.ArgumentTypeError(f"must be {'above' if strict else 'at least'} {low}")
        return value

    return check


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--gib", type=_number(float, 0, True), default=1.0, help="memory touched per run (GiB)"
    )
    parser.add_argument("--rounds", type=_number(int, 1, False), default=3)
    parser.add_argument(
        "--pause", type=_number(float, 0, False), default=10.0,
        help="seconds before 'after a pause'",
    )  # fmt: skip
    args = parser.parse_args(argv)
    paused, freed = [], []
    for _ in range(args.rounds):
        time.sleep(args.pause)
        paused.append(touch_seconds(args.gib) / args.gib)
        touch_seconds(args.gib)  # memory touched and freed just before the next
        freed.append(touch_seconds(args.gib) / args.gib)
    for name, values in (("after a pause", paused), ("just freed", freed)):
        shown = ", ".join(f"{v:.2f}" for v in values)
        print(f"{name:>14}: median {statistics.median(values):.2f} s/GiB ({shown})")
    ratio = statistics.median(paused) / statistics.median(freed)
    print(f"first_touch_paused_vs_freed={ratio:.1f}")


if __name__ == "__main__":
    main()
