"""The package as a user installs it: the wheel carries the built-in models, a non-editable
install finds them, and the Makefile's install levels (issue 13, items 1 and 2)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LIB = REPO / "UNetPlusPlus" / "UNetPlusPlusLib"
TASKS = ("liver", "lung-nodule", "brain-tumor")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the sources (no build/ or egg-info left in the checkout)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE", "NOTICE"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(
        LIB,
        source / "UNetPlusPlus" / "UNetPlusPlusLib",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    command += ["-q", "-w", str(out), str(source)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (path,) = out.glob("unetplusplus_slicer-*.whl")
    return path


def test_wheel_holds_the_models_and_dataset_descriptions(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for task in TASKS:
        for file in ("model.json", "weights.safetensors", "CARD.md"):
            assert f"UNetPlusPlusLib/Resources/Models/{task}/{file}" in names
    for dataset in ("liver", "brats2018", "lidc-vois"):
        assert f"UNetPlusPlusLib/Resources/Datasets/{dataset}.json" in names


def _isolated_env(tmp_path: Path, site: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNETPP_")}
    env["PYTHONPATH"] = str(site)
    env["UNETPP_HOME"] = str(tmp_path / "home")  # an empty user cache
    return env


def test_non_editable_install_finds_the_builtin_models(wheel, tmp_path):
    """The wheel unpacked as pip would into site-packages, used from another folder."""
    site = tmp_path / "site-packages"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "UNetPlusPlusLib.cli", "models", "list"],
        cwd=elsewhere,
        env=_isolated_env(tmp_path, site),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for task in TASKS:
        assert f"{task}: " in done.stdout
    assert str(site / "UNetPlusPlusLib" / "Resources" / "Models") in done.stdout


def test_slicer_module_layout_finds_the_models(tmp_path):
    """An installed Slicer extension: qt-scripted-modules/UNetPlusPlusLib/Resources/Models,
    as UNetPlusPlus/CMakeLists.txt installs it (the package data keeps its relative path)."""
    cmake = (REPO / "UNetPlusPlus" / "CMakeLists.txt").read_text()
    assert "${MODULE_NAME}Lib/Resources/Models/*" in cmake
    modules = tmp_path / "lib" / "Slicer-5.8" / "qt-scripted-modules"
    shutil.copytree(LIB, modules / "UNetPlusPlusLib", ignore=shutil.ignore_patterns("__pycache__"))
    code = "from UNetPlusPlusLib.engine.registry import find_model; print(find_model('liver').path)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=_isolated_env(tmp_path, modules),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(str(modules / "UNetPlusPlusLib" / "Resources"))


# ------------------------------------------------------------------------------ Makefile
def _make_dry_run(target: str, venv: Path) -> str:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    done = subprocess.run(
        ["make", "-n", target, f"VENV={venv}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_demo_installs_no_test_extras(tmp_path):
    commands = _make_dry_run("demo", tmp_path / "venv")
    assert "pip install -q -e ." in commands and "torch==" in commands
    assert "[test]" not in commands


def test_make_test_after_make_demo_adds_the_test_extras(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / ".installed-demo").touch()  # as `make demo` leaves it
    os.utime(venv / ".installed-demo", (2**31 - 1, 2**31 - 1))  # newer than pyproject.toml
    commands = _make_dry_run("test", venv)
    assert '-e ".[test]"' in commands
    assert "torch==" not in commands  # the demo level is not reinstalled


def test_make_test_runs_pytest_on_xdist_workers_and_keeps_its_exit_status(tmp_path):
    """`make test` runs pytest on pytest-xdist workers (`-n auto`: conftest's
    pytest_xdist_auto_num_workers) and fails when pytest fails: a stand-in venv whose python
    records its arguments and exits with the status asked for."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for stamp in (".installed-demo", ".installed-test"):  # newer than pyproject.toml
        (venv / stamp).touch()
        os.utime(venv / stamp, (2**31 - 1, 2**31 - 1))
    (venv / "bin" / "ruff").write_text("#!/bin/sh\nexit 0\n")
    (venv / "bin" / "python").write_text(
        f'#!/bin/sh\necho "$@" >> "{tmp_path / "argv"}"\nexit "$PYTEST_STATUS"\n'
    )
    for tool in ("ruff", "python"):
        (venv / "bin" / tool).chmod(0o755)

    def make_test(status: int, *settings: str) -> int:
        env = {**os.environ, "PYTEST_STATUS": str(status)}
        done = subprocess.run(["make", "test", f"VENV={venv}", *settings], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        return done.returncode

    assert make_test(0) == 0
    assert (tmp_path / "argv").read_text() == (  # byte-compiled once, then the suite
        "-m compileall -q UNetPlusPlus Testing\n-m pytest -q -n auto --dist worksteal\n"
    )
    assert make_test(1) != 0  # a failing suite fails `make test` (and so .ci/run)
    assert make_test(0, "TEST_WORKERS=0") == 0
    assert (tmp_path / "argv").read_text().splitlines()[-1] == "-m pytest -q -n 0 --dist worksteal"


def test_one_python_version_everywhere_and_the_pinned_torch_supports_it(tmp_path):
    """README said Python 3.9+ and pyproject >=3.9, but the torch==2.13.0 that `make demo`,
    `make test` and CI install requires 3.10 (no cp39 wheel; the newest for 3.9 is 2.8.0):
    README, requires-python, ruff's target and the Makefile's check say the same version, the
    installed pin's own Requires-Python allows it, and `make demo` with an older Python stops
    with that reason before creating anything (review cli20)."""
    import re
    from importlib.metadata import metadata, version

    pyproject = (REPO / "pyproject.toml").read_text()
    (minimum,) = re.findall(r'^requires-python = ">=3\.(\d+)"$', pyproject, re.M)
    assert f'target-version = "py3{minimum}"' in pyproject
    assert f"Requirements: Python 3.{minimum}+" in (REPO / "README.md").read_text()
    makefile = (REPO / "Makefile").read_text()
    assert f"sys.version_info >= (3, {minimum})" in makefile
    (pin,) = re.findall(r"^TORCH_PIN \?= torch==([\d.]+)$", makefile, re.M)
    if version("torch").split("+")[0] == pin:
        (needs,) = re.findall(r">=\s*3\.(\d+)", metadata("torch")["Requires-Python"])
        assert int(needs) <= int(minimum)
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    old = tmp_path / "python3.9"  # the real interpreter, claiming to be 3.9
    old.write_text(
        f'#!/bin/sh\n[ "$1" = -c ] && exec "{sys.executable}" -c "import sys; '
        'sys.version_info = (3, 9, 18); sys.version = \'3.9.18\'; exec(sys.argv[1])" "$2"\n'
        f'exec "{sys.executable}" "$@"\n'
    )
    old.chmod(0o755)
    venv = tmp_path / "venv"
    done = subprocess.run(["make", "demo", f"VENV={venv}", f"PYTHON={old}"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode != 0
    assert f"is Python 3.9.18; UNet++ needs 3.{minimum} or newer" in done.stderr
    assert not venv.exists()


def test_the_module_code_keeps_to_slicer_5_8s_python_3_9(tmp_path):
    """pyproject asks Python 3.10 for a pip install (the pinned torch), but 3D Slicer runs the
    module and its engine (PythonSlicer) on its own Python: 3.9.10 in Slicer 5.8, which
    docs/SLICER.md supports. ruff, told 3.9, finds no syntax of a later Python in them (and
    does find a ``match`` statement, so the check can fail)."""
    # the test extras install ruff beside this interpreter; `make test` does not put the
    # venv's bin/ on PATH (a fresh clone's `make test` skipped this check)
    beside = Path(sys.executable).parent / ("ruff.exe" if os.name == "nt" else "ruff")
    ruff = str(beside) if beside.is_file() else shutil.which("ruff")
    ruff = ruff or pytest.skip("ruff is not installed (pip install -e '.[test]')")

    def syntax_errors(path: Path) -> list[str]:
        done = subprocess.run(
            [ruff, "check", "--no-cache", "--isolated", "--target-version", "py39",
             "--select", "F821", "--output-format", "concise", str(path)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        return [line for line in done.stdout.splitlines() if "SyntaxError" in line or
                "invalid-syntax" in line]  # fmt: skip

    later = tmp_path / "later.py"
    later.write_text("def f(x):\n    match x:\n        case 1:\n            return 1\n")
    assert syntax_errors(later), "ruff no longer reports a match statement on Python 3.9"
    assert syntax_errors(REPO / "UNetPlusPlus") == []
