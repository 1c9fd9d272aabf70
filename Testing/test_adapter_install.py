"""adapter/install: the dependency checks the Widget runs before it offers to install anything."""

from __future__ import annotations

import numpy as np
from UNetPlusPlusLib.adapter import install


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
