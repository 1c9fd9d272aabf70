"""The one `--device` pre-check of segment, serve and train (device_check.py): a name that is
no device is refused without torch; a missing dataset is named before a missing GPU."""

from __future__ import annotations

import subprocess
import sys

import pytest
from UNetPlusPlusLib.device_check import check_device_exists
from UNetPlusPlusLib.errors import UNetPlusPlusError


@pytest.mark.parametrize("spec", ["auto", "cpu", " CPU ", "Auto", None])
def test_auto_and_cpu_pass_at_once(spec):
    assert check_device_exists(spec) is None


@pytest.mark.parametrize("spec", ["gpu0", "tpu", "cuda:x", ""])
def test_an_unknown_name_is_one_clear_error(spec):
    with pytest.raises(UNetPlusPlusError, match=r"Unknown device .*; choose auto, cpu, cuda"):
        check_device_exists(spec)


def test_a_missing_gpu_gives_the_model_loads_error():
    import torch

    if torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    with pytest.raises(UNetPlusPlusError, match="Device 'cuda:7'"):
        check_device_exists("CUDA:7")


def test_train_refuses_an_unknown_device_without_importing_torch(tmp_path):
    """`unetpp train DATA --device bogus` imported torch (~3 s of CPU) before refusing it."""
    (tmp_path / "data").mkdir()
    argv = [str(tmp_path / "data"), "-o", str(tmp_path / "out"), "--device", "bogus"]
    code = (
        "import sys; from UNetPlusPlusLib.training.cli import main; "
        f"code = main({argv!r}); assert code == 2, code; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stderr.strip() == (
        "error: Unknown device 'bogus'; choose auto, cpu, cuda, cuda:N (N = 0, 1, ...) or mps."
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("spec", ["cuda:7", "gpu0"])
def test_train_names_a_missing_dataset_before_the_device(tmp_path, capsys, spec):
    """A missing DATA_DIR was reported only after the device error (fixing one, then hitting
    the other); now first. A file given as DATA_DIR is said to be a file."""
    from UNetPlusPlusLib.training.cli import main

    out = tmp_path / "out"
    assert main([str(tmp_path / "nodata"), "-o", str(out), "--device", spec]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == [f"error: Data folder {tmp_path / 'nodata'} does not exist."]
    (tmp_path / "cases.txt").write_text("")
    assert main([str(tmp_path / "cases.txt"), "-o", str(out), "--device", spec]) == 2
    assert "cases.txt is a file" in capsys.readouterr().err
    assert not out.exists()
