"""The machine's physical memory: the one source for the device list and the grid check.

A leaf module (the standard library only, nothing from the package), so that any engine module
can import it without an import cycle (``volume`` -> ``grid_memory`` must not reach ``devices``,
which imports torch).
"""

from __future__ import annotations

import os
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
