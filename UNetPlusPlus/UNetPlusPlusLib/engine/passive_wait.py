"""Importing this module applies :func:`.runtime_env.apply`: for scripts, as their first import
from this package, before torch loads, so that OpenMP's wait policy is chosen as the CLI chooses
it (sleep when other programs share the cores, spin on a quiet machine, guarded by
``spin_guard``; ``UNETPP_WAIT_POLICY=passive`` always sleeps).

    import UNetPlusPlusLib.engine.passive_wait  # noqa: F401  (before the Predictor)
"""

from __future__ import annotations

from . import runtime_env

APPLIED_BEFORE_TORCH: bool = runtime_env.apply()
