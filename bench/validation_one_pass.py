"""Validation of every depth from one pass vs one pass per depth: equivalence and CPU time.

For random-weight tiny networks (instance, batch (eval, trained statistics), no norm) on
synthetic cases larger than the tile (sliding window with overlap), compares
``evaluate_depths(timed=True)`` (L1..L4 and the ensemble each run on its own) with
``timed=False`` (one full pass per tile, all heads): label maps per depth, blended probabilities
(max |difference|) and Dice. Then CPU seconds (``time.process_time``, in-process, interleaved
pairs) per validation of each way.

    PYTHONPATH=UNetPlusPlus python bench/validation_one_pass.py [--pairs 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
from UNetPlusPlusLib.engine.network import UNetPlusPlus3D, ensemble_logits
from UNetPlusPlusLib.engine.tiling import sliding_window_inference
from UNetPlusPlusLib.training.preprocess import PreprocessedCase, foreground_points
from UNetPlusPlusLib.training.validation import DEPTHS, evaluate_depths

FEATURES = (4, 8, 8, 8, 8, 4)
TILE = (32, 32, 32)


def _case(seed: int, shape=(40, 44, 48)) -> PreprocessedCase:
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, dtype=np.uint8)
    labels[8:30, 10:34, 6:40] = 1
    labels[14:22, 16:26, 12:30] = 2
    image = (labels * 0.6 + rng.normal(0, 0.5, shape)).astype(np.float32)[None]
    return PreprocessedCase(
        f"c{seed}", f"c{seed}", image, labels, foreground_points(labels, 0), np.zeros(1)
    )


def _model(norm: str) -> UNetPlusPlus3D:
    torch.manual_seed(0)
    model = UNetPlusPlus3D(1, 3, FEATURES, norm=norm)
    if norm == "batch":  # running statistics away from (0, 1)
        model.train()
        with torch.no_grad():
            for _ in range(3):
                model.forward_heads(torch.randn(2, 1, 32, 32, 32) * 2 + 1)
    return model.eval()


def _probabilities(model, image, depth):
    def predict(tiles):
        if depth == "one-pass":
            heads = model.forward_heads(tiles, 4)
            return torch.cat(
                [torch.softmax(h.float(), 1) for h in [*heads, ensemble_logits(heads)]], 1
            )
        return torch.softmax(model(tiles, depth=depth).float(), 1)

    k = 15 if depth == "one-pass" else 3
    with torch.inference_mode():
        return sliding_window_inference(torch.from_numpy(image.copy()), TILE, predict, k, 0.25)


def check_equivalence(cases) -> None:
    for norm in ("instance", "batch", "none"):
        model = _model(norm)
        worst, labels_differ = 0.0, 0
        for case in cases:
            joint = _probabilities(model, case.image, "one-pass")
            for n, depth in enumerate(DEPTHS):
                alone = _probabilities(model, case.image, depth)
                part = joint[3 * n : 3 * n + 3]
                worst = max(worst, float((part - alone).abs().max()))
                labels_differ += int((part.argmax(0) != alone.argmax(0)).sum())
        old = evaluate_depths(model, cases, ["a", "b"], TILE, 0.25, torch.device("cpu"), timed=True)
        new = evaluate_depths(
            model, cases, ["a", "b"], TILE, 0.25, torch.device("cpu"), timed=False
        )
        dice_diff = max(
            abs(old[k]["dice"][name] - new[k]["dice"][name]) for k in old for name in ("a", "b")
        )
        print(
            f"{norm:9s} max|p_one_pass - p_alone| = {worst:.3g}; voxels whose label differs: "
            f"{labels_differ}; max |Dice difference| = {dice_diff:.3g}; "
            f"mean Dice {[old[k]['mean_dice'] for k in old]}"
        )


def measure(cases, pairs: int) -> None:
    model = _model("instance")
    cpu = torch.device("cpu")
    times: dict = {True: [], False: []}
    for _ in range(pairs):
        for timed in (True, False):
            started = time.process_time()
            evaluate_depths(model, cases, ["a", "b"], TILE, 0.25, cpu, timed=timed)
            times[timed].append(time.process_time() - started)
    ratios = [a / b for a, b in zip(times[True], times[False])]
    print(
        f"CPU s per validation ({len(cases)} cases {cases[0].labels.shape}, tile {TILE}, "
        f"{pairs} interleaved pairs, {torch.get_num_threads()} thread(s)): per depth "
        f"median {statistics.median(times[True]):.3f} {[round(t, 3) for t in times[True]]}; "
        f"one pass median {statistics.median(times[False]):.3f} "
        f"{[round(t, 3) for t in times[False]]}; ratio median {statistics.median(ratios):.2f}; "
        f"load average {os.getloadavg()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cases = [_case(0), _case(1, (36, 50, 40))]
    check_equivalence(cases)
    measure(cases, args.pairs)


if __name__ == "__main__":
    main()
