"""Learning curves: validation Dice against training iterations for several `unetpp train` runs.

For issue 11's question "what limits the targets": runs that differ in one thing only (e.g. the
same recipe with ``--train-fraction 0.5`` and ``1.0``) are drawn on one plot, from each run's
``history.json`` (the trainer's per-epoch records; validation every ``val_every`` epochs) and
``plan.json`` (iterations per epoch, batch size). The Dice is the trainer's validation on the
held-out cases, on the model grid, before post-processing; ``--depth`` picks the head
(``best``: the best of L1..L4 at each point).

    python scripts/plot_learning_curves.py -o docs/learning_curves_brain.png \\
        "all 14=/work/runs/s4/brain-f1.0" "half (7)=/work/runs/s4/brain-f0.5"

prints a Markdown table (run, iterations, Dice per depth) and writes the PNG.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DEPTHS = ("1", "2", "3", "4")


def curve(run: Path) -> list[tuple[int, dict]]:
    """``[(iterations, {depth: mean Dice}), ...]`` of a run folder's validations."""
    history = json.loads((run / "history.json").read_text(encoding="utf-8"))
    plan = json.loads((run / "plan.json").read_text(encoding="utf-8"))
    per_epoch = int(plan["iterations_per_epoch"])
    return [
        (int(entry["epoch"]) * per_epoch, dict(entry["validation"]))
        for entry in history
        if entry.get("validation")
    ]


def pick(dice: dict, depth: str) -> float:
    if depth == "best":
        return max(float(dice[d]) for d in DEPTHS if d in dice)
    return float(dice[depth])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="NAME=RUN_DIR")
    parser.add_argument("-o", "--output", required=True, help="PNG to write")
    parser.add_argument("--depth", default="best", choices=(*DEPTHS, "best"))
    parser.add_argument("--title", default="validation Dice (held-out cases, model grid)")
    args = parser.parse_args(argv)
    figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
    print("| run | iterations | " + " | ".join(f"L{d}" for d in DEPTHS) + " |")
    print("|---|---|" + "---|" * len(DEPTHS))
    for item in args.runs:
        name, _, folder = item.partition("=")
        points = curve(Path(folder))
        for iterations, dice in points:
            cells = " | ".join(f"{float(dice[d]):.3f}" if d in dice else "-" for d in DEPTHS)
            print(f"| {name} | {iterations} | {cells} |")
        xs = [p[0] for p in points]
        axes.plot(xs, [pick(p[1], args.depth) for p in points], marker="o", label=name)
    axes.set_xlabel("training iterations")
    axes.set_ylabel(f"mean Dice ({'best depth' if args.depth == 'best' else 'L' + args.depth})")
    axes.set_title(args.title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(args.output)
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
