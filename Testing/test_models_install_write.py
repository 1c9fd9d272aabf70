"""`unetpp models install` into a cache that cannot take the package: one sentence saying why.

On a 40 kB tmpfs as UNETPP_HOME the error was shutil's raw list, "Cannot install the model from
f1: [('.../training_curve.png', '.../.install-eg7o_i2q/package/training_curve.png', "[Errno 28]
No space left on device: ..."), ...]" (tester fresh30). Reproduced without a mount by a real
file-size limit (ulimit -f) in a child process.
"""

from __future__ import annotations

import resource
import signal
import subprocess
import sys

from test_registry import make_package


def test_a_cache_that_cannot_take_the_weights_is_one_clear_error(tmp_path):
    make_package(tmp_path / "pkg", name="kidney-test", task="kidney")
    weights = (tmp_path / "pkg" / "weights.safetensors").stat().st_size
    assert weights > 8 * 1024  # larger than the limit below

    def limit():  # SIGXFSZ ignored: the copy fails with EFBIG instead of killing the process
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (8 * 1024, 8 * 1024))

    home = tmp_path / "home"
    command = [sys.executable, "-m", "UNetPlusPlusLib.cli", "models", "install",
               str(tmp_path / "pkg"), "--quiet"]  # fmt: skip
    env = {"UNETPP_HOME": str(home), "PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path),
           "PYTHONDONTWRITEBYTECODE": "1"}  # fmt: skip  # a .pyc cut at the limit breaks imports
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=120, preexec_fn=limit, env=env
    )
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1, run.stderr
    assert lines[0].startswith(f"error: Cannot install the model from {tmp_path / 'pkg'}: ")
    assert "the file is larger than this process may write (ulimit -f)" in lines[0], lines
    assert "[(" not in lines[0] and ".install-" not in lines[0], lines  # no raw list, no staging
    assert not (home / "models" / "kidney-test").exists()
    assert [p.name for p in (home / "models").iterdir()] == []  # the staging folder removed
