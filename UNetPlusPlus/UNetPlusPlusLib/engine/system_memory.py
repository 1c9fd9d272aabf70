"""The machine's physical memory and CPU name: the one source for the device list and the grid
check.

A leaf module (the standard library only, nothing from the package), so that any engine module
can import it without an import cycle (``volume`` -> ``grid_memory`` must not reach ``devices``,
which imports torch).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Optional


def physical_memory_bytes() -> Optional[int]:
    """The machine's physical memory in bytes, or None where the OS does not say (Windows, or
    a sysconf that answers -1)."""
    try:
        pages = os.sysconf("SC_PHYS_PAGES")
        page_size = os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None
    if pages <= 0 or page_size <= 0:
        return None
    return int(pages) * int(page_size)


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"
