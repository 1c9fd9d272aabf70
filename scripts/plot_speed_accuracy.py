"""Speed/accuracy plot of a model package across the UNet++ depths L1..L4 and the ensemble.

UNet++ (Zhou et al., IEEE TMI 2019, Sec. III-D, Fig. 7) prunes the trained network at inference:
the depth-k sub-network is cheaper and usually a little less accurate. This plots the manifest's
per-depth validation Dice against seconds per volume, so a model card shows the trade-off.

    python scripts/plot_speed_accuracy.py UNetPlusPlus/UNetPlusPlusLib/Resources/Models/liver \\
        [more packages ...]
writes ``speed_accuracy.png`` into each package folder.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DEPTH_KEYS = ("1", "2", "3", "4", "ensemble")


def plot_package(folder: Path) -> Path:
    """Write ``folder/speed_accuracy.png`` from ``folder/model.json``; return its path."""
    manifest = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    per_depth = manifest["validation"]["per_depth"]
    labels = [label["name"] for label in manifest["labels"]]
    keys = [k for k in DEPTH_KEYS if k in per_depth]
    seconds = [per_depth[k]["seconds_per_volume"] for k in keys]
    figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
    series = [("mean", [per_depth[k]["mean_dice"] for k in keys])] if len(labels) > 1 else []
    series += [(name, [per_depth[k]["dice"].get(name) for k in keys]) for name in labels]
    for name, values in series:
        points = [(s, v) for s, v in zip(seconds, values) if v is not None]
        style = {"color": "black", "markersize": 8} if name == "mean" else {}
        # dotted in depth order: timings on a shared CPU are noisy, so x need not grow with k
        axes.plot(*zip(*points), marker="o", linestyle=":", label=name, **style)
    mean = [per_depth[k]["mean_dice"] for k in keys]
    for key, s, v in zip(keys, seconds, mean):
        if v is not None:
            tag = "ens" if key == "ensemble" else f"L{key}"
            mark = " *" if key == str(manifest.get("recommended_depth")) else ""
            axes.annotate(tag + mark, (s, v), textcoords="offset points", xytext=(4, -12))
    axes.set_xlabel(f"seconds per validation volume ({manifest['validation'].get('device', '')})")
    axes.set_ylabel("validation Dice")
    axes.set_title(f"{manifest['name']}: depth L1..L4 and ensemble (* recommended)", fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    out = folder / "speed_accuracy.png"
    figure.savefig(out)
    plt.close(figure)
    return out


def main(argv: list[str]) -> int:
    for folder in argv:
        print(plot_package(Path(folder)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
