"""scripts/gpu_check.sh --dry-run: the CPU-side plumbing of the GPU check runs and summarises."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_dry_run_prints_one_summary_line(repo_root):
    env = dict(os.environ, PYTHON=sys.executable)
    process = subprocess.run(
        ["bash", str(repo_root / "scripts" / "gpu_check.sh"), "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    last = process.stdout.strip().splitlines()[-1]
    assert process.returncode == 0, process.stdout + process.stderr
    assert re.match(
        r"^gpu_check: device=cpu cuda_tests=skipped speedup_vs_monai_L4=\d+\.\d\d "
        r"oom_fallback=pass\(uncapped-cpu\)$",
        last,
    ), last
    assert "pytest -q Testing -k cuda" in process.stdout
