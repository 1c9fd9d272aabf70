"""What the numbers were measured on: CPU, threads, library versions, machine load."""

from __future__ import annotations

import os
import platform

from UNetPlusPlusLib.engine.devices import cpu_flags, cpu_name


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def describe(threads: int) -> list[str]:
    from importlib import metadata

    import torch

    try:  # the installed version, without importing MONAI (2 CPU s)
        monai_version = metadata.version("monai")
    except metadata.PackageNotFoundError:
        monai_version = "not installed"
    flags = cpu_flags()
    simd = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return [
        f"cpu: {cpu_name()} ({os.cpu_count()} logical CPUs visible; {' '.join(simd) or 'no AVX'})",
        f"threads: {threads} (torch.set_num_threads, OMP_NUM_THREADS)",
        f"torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}), "
        f"MONAI {monai_version}, python {platform.python_version()}",
    ]
