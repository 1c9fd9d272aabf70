"""adapter/install: the dependency checks the Widget runs before it offers to install anything."""

from __future__ import annotations

import numpy as np
import pytest
from UNetPlusPlusLib.adapter import install
from UNetPlusPlusLib.errors import UNetPlusPlusError


def test_requirements_are_checked_by_name_and_version():
    assert install.missing_requirements(["numpy>=1.0"]) == []
    assert install.missing_requirements([f"numpy>{np.__version__}"]) == [f"numpy>{np.__version__}"]
    assert install.missing_requirements(["no-such-package-unetpp>=1"]) == [
        "no-such-package-unetpp>=1"
    ]


def test_this_environment_has_everything_the_cli_needs():
    assert install.torch_installed()
    assert install.missing_requirements() == []
    assert install.dependencies_ready()


def test_nothing_is_installed_when_all_is_present():
    asked = []
    install.ensure_dependencies(confirm=lambda message: asked.append(message) or False, log=print)
    assert asked == []  # torch and the packages are present: no question, no pip


# ------------------------------------------------------------------ optional packages
def pyproject_dependencies() -> dict:
    import re

    from conftest import REPO_ROOT

    text = (REPO_ROOT / "pyproject.toml").read_text()
    block = text.split("dependencies = [", 1)[1].split("]", 1)[0]
    found = re.findall(r'^\s*"([^"]+)"', block, flags=re.M)
    return {re.split("[<>=!~ ]", r, maxsplit=1)[0].lower(): r for r in found}


def test_slicer_installs_what_pyproject_lists_with_the_same_bounds():
    """openvino and onnx (the CPU default `fastest`) and zlib-ng (the faster inflate) are core
    dependencies of the pip package: Slicer installs them too, as optional requirements, with
    the same version bounds."""
    core = pyproject_dependencies()
    for requirement in (*install.RUNTIME_REQUIREMENTS, *install.OPTIONAL_REQUIREMENTS):
        name = requirement.split(">=")[0]
        assert core[name] == requirement
    optional = {r.split(">=")[0] for r in install.OPTIONAL_REQUIREMENTS}
    assert optional == {"openvino", "onnx", "zlib-ng"}


class Pip:
    """An installer like Slicer's pip: 'installs' a distribution by writing its metadata into a
    folder on sys.path (so importlib.metadata finds it), or raises CalledProcessError as
    slicer.util.pip_install / slicer.packaging.pip_ensure do when pip fails."""

    def __init__(self, site, fail=()):
        self.site, self.fail, self.calls = site, set(fail), []

    def __call__(self, requirements, optional=False):
        import subprocess

        self.calls.append((list(requirements), optional))
        if self.fail & set(requirements):
            raise subprocess.CalledProcessError(1, ["pip", "install", *requirements])
        for requirement in requirements:
            name, version = requirement.split(">=")
            info = self.site / f"{name.replace('-', '_')}-{version}.dist-info"
            info.mkdir()
            (info / "METADATA").write_text(
                f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            )


REQUIRED = ("unetpp-test-required>=1.0",)
OPTIONAL = ("unetpp-test-openvino>=2024.0", "unetpp-test-onnx>=1.15")


@pytest.fixture()
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def ensure(pip, confirm=None):
    questions, log = [], []

    def agree(message):
        questions.append(message)
        return True if confirm is None else confirm

    install.ensure_packages(agree, log.append, REQUIRED, OPTIONAL, pip=pip)
    return questions, log


def test_a_failed_optional_install_leaves_one_warning_and_the_module_usable(site):
    pip = Pip(site, fail=OPTIONAL)
    questions, log = ensure(pip)
    assert len(questions) == 1  # one question for both
    assert all(r in questions[0] for r in REQUIRED + OPTIONAL) and "optionally" in questions[0]
    assert install.missing_requirements(REQUIRED) == []  # the required ones are installed
    assert install.missing_requirements(OPTIONAL) == list(OPTIONAL)
    warnings = [line for line in log if line.startswith("warning:")]
    assert len(warnings) == 1 and "'ours'" in warnings[0]
    assert all(r in warnings[0] for r in OPTIONAL)
    assert pip.calls == [(list(REQUIRED), False), (list(OPTIONAL), True)]  # required first


def test_optional_packages_are_installed_with_the_required_ones(site):
    questions, log = ensure(Pip(site))
    assert install.missing_requirements(REQUIRED + OPTIONAL) == []
    assert len(questions) == 1 and not any(line.startswith("warning:") for line in log)


def test_nothing_is_installed_without_the_users_agreement(site):
    pip = Pip(site)
    with pytest.raises(UNetPlusPlusError, match="not installed"):
        ensure(pip, confirm=False)
    assert install.missing_requirements(REQUIRED + OPTIONAL) == list(REQUIRED + OPTIONAL)


def test_a_failed_required_install_is_an_error_and_skips_the_optional_ones(site):
    pip = Pip(site, fail=REQUIRED)
    with pytest.raises(UNetPlusPlusError, match="unetpp-test-required"):
        ensure(pip)
    assert len(pip.calls) == 1 and install.missing_requirements(OPTIONAL) == list(OPTIONAL)


def test_only_optional_packages_missing_asks_nothing(site):
    pip = Pip(site)
    pip(REQUIRED)
    questions, log = ensure(pip)
    assert questions == [] and log == [] and len(pip.calls) == 1  # never nags after first use
