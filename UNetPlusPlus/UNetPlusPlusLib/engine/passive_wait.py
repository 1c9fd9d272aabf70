"""Importing this module applies :func:`.runtime_env.apply` (OpenMP sleeps instead of
busy-waiting): for scripts, as their first import from this package, before torch loads.

    import UNetPlusPlusLib.engine.passive_wait  # noqa: F401  (before the Predictor)
"""

from __future__ import annotations

from . import runtime_env

APPLIED_BEFORE_TORCH: bool = runtime_env.apply()
