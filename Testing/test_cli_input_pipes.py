"""An input that is a named pipe or a device (tester 14): `unetpp segment FIFO` blocked forever
and ignored SIGTERM (`timeout 20` did not stop it; only SIGKILL did). Process substitution,
`unetpp segment <(zcat ct.nii.gz)`, gives such a path. Now one error line, exit 2, nothing
written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from UNetPlusPlusLib.engine.image_read import read_image
from UNetPlusPlusLib.errors import UNetPlusPlusError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_fifo_input_is_one_error_not_a_hang(tmp_path):
    fifo = tmp_path / "ct.nii.gz"
    os.mkfifo(fifo)
    out = tmp_path / "out" / "liver.seg.nrrd"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "UNetPlusPlus"))
    argv = [sys.executable, "-m", "UNetPlusPlusLib.cli", "segment", str(fifo), "--task", "liver"]
    try:
        done = subprocess.run(
            argv + ["-o", str(out)], env=env, capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired:
        pytest.fail("unetpp segment blocked on a FIFO input")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {fifo} is not a file or a folder but a pipe or a device (for example "
        "`<(zcat ...)`); unetpp reads an image more than once: save it to a file first."
    ]
    assert not out.parent.exists()


def test_read_image_refuses_a_device():
    with pytest.raises(UNetPlusPlusError, match="not a file or a folder"):
        read_image("/dev/null")
