"""bench/: the report's last line has the issue's format; the workload is deterministic."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from benchlib import harness, workload  # noqa: E402

LAST_LINE = re.compile(
    r"^speedup_vs_monai_L4=\d+\.\d\d speedup_L1=\d+\.\d\d speedup_L2=\d+\.\d\d "
    r"speedup_L3=\d+\.\d\d frac_peak=\d+\.\d\d mem_growth_2x=\d+\.\d\d agree=[01]\.\d{5}$"
)


def fake_results() -> dict:
    depths = ("4", "3", "2", "1", "ensemble")
    nominal = {"4": 408e9, "3": 271e9, "2": 159e9, "1": 73e9, "ensemble": 408e9}
    executed = {d: 0.8 * f for d, f in nominal.items()}
    tile_seconds = {"4": 4.0, "3": 2.6, "2": 1.5, "1": 0.8, "ensemble": 4.1}
    volume = {"monai:4": {"seconds": [80.0, 75.0], "peak_rss_mb": 1800.0, "tiles": 8}}
    for d in depths:
        volume[f"ours:{d}"] = {
            "seconds": [8 * tile_seconds[d] + 1.0],
            "peak_rss_mb": 900.0,
            "baseline_rss_mb": 390.0,
            "tiles": 8,
        }
    return {
        "shape": (160, 160, 160),
        "double_shape": (320, 160, 160),
        "rounds": 2,
        "tile": {
            "matmul_gflops": 115.0,
            "nominal_flops": nominal,
            "executed_flops": executed,
            "seconds": tile_seconds,
            "monai_seconds": 7.5,
            "bf16": {"skipped": "no native bfloat16"},
        },
        "volume": volume,
        "double": {"peak_rss_mb": 960.0, "baseline_rss_mb": 390.0, "tiles": 20},
        "agree": 0.99987,
        "differing_voxels": 532,
        "models": {"liver": {"seconds": 9.5, "depth": 2, "size_xyz": [119, 119, 185]}},
    }


def test_report_ends_with_the_ratio_line_of_issue_6():
    args = argparse.Namespace(threads=2, quick=False)
    lines = harness.report(fake_results(), args, "0.50 0.40 0.30", "0.60 0.50 0.40")
    assert LAST_LINE.match(lines[-1]), lines[-1]
    values = dict(item.split("=") for item in lines[-1].split())
    assert values["speedup_vs_monai_L4"] == f"{75.0 / 33.0:.2f}"  # best MONAI / best ours L4
    assert values["speedup_L1"] == f"{33.0 / 7.4:.2f}"
    assert values["frac_peak"] == f"{0.8 * 408 / 4.0 / 115.0:.2f}"  # executed FLOPs
    assert values["mem_growth_2x"] == f"{960 / 900:.2f}"
    assert values["agree"] == "0.99987"
    text = "\n".join(lines)
    assert "liver: 9.5 s at L2" in text and "brain: " not in text
    assert "load average (1, 5, 15 min): before 0.50 0.40 0.30" in text


def test_synthetic_volume_is_deterministic_and_ct_like():
    a = workload.synthetic_volume((24, 20, 16), seed=0)
    b = workload.synthetic_volume((24, 20, 16), seed=0)
    assert a.shape == (1, 24, 20, 16) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert 0.0 <= a.min() and a.max() <= 1.0 and a.std() > 0.05
    assert not np.array_equal(a, workload.synthetic_volume((24, 20, 16), seed=1))


def test_running_maximum_argmax_matches_torch_argmax_including_ties():
    import torch
    from benchlib.worker import argmax_classes

    probabilities = torch.rand(4, 6, 7, 8, generator=torch.Generator().manual_seed(0))
    probabilities[2, 0, 0, 0] = probabilities[1, 0, 0, 0] = 2.0  # a tie: the lower class wins
    labels = argmax_classes(probabilities)
    assert labels.dtype == torch.uint8 and labels[0, 0, 0] == 1
    assert torch.equal(labels, probabilities.argmax(dim=0).to(torch.uint8))
