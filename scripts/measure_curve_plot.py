"""CPU seconds of one ``training_curve.png`` (``training/package.plot_history``, written after
every epoch): the fixed margins it uses against ``tight_layout`` (which draws the figure once
more to measure them), interleaved and paired on a synthetic 40-epoch history; prints the
medians and the load average.

    PYTHONPATH=UNetPlusPlus python scripts/measure_curve_plot.py [--rounds 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from matplotlib.figure import Figure
from UNetPlusPlusLib.training.package import plot_history

FIXED_ADJUST = Figure.subplots_adjust


def _tight(figure: Figure, **_margins) -> None:
    """``subplots_adjust`` replaced by the former ``tight_layout`` (which calls it itself)."""
    Figure.subplots_adjust = FIXED_ADJUST
    try:
        figure.tight_layout()
    finally:
        Figure.subplots_adjust = _tight


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    history = [
        {"epoch": e, "loss": 1.5 / e, **({"validation": {str(d): 0.1 * d for d in (1, 2, 3, 4)}}
                                          if e % 2 == 0 else {})}
        for e in range(1, 41)
    ]  # fmt: skip
    seconds: dict[str, list[float]] = {"fixed": [], "tight_layout": []}
    with tempfile.TemporaryDirectory() as folder:
        plot_history(history, Path(folder) / "warm.png")  # imports, fonts
        for _ in range(args.rounds):
            for mode in seconds:
                Figure.subplots_adjust = FIXED_ADJUST if mode == "fixed" else _tight
                started = time.process_time()
                plot_history(history, Path(folder) / f"{mode}.png")
                seconds[mode].append(time.process_time() - started)
        Figure.subplots_adjust = FIXED_ADJUST
    for mode, values in seconds.items():
        print(f"{mode:<13} median {statistics.median(values):.3f} s CPU per plot")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
