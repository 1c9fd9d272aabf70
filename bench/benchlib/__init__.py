"""The engine benchmark (issue 6): our UNet++ against MONAI's on one volume, config and machine.

``bench/run`` drives it; every measured configuration runs in a fresh subprocess
(``benchlib.worker``) so that its peak memory is its own. See docs/BENCHMARK.md.
"""
