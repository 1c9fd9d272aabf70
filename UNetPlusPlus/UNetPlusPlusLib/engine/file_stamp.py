"""What a cache keys an input file on (training: the preprocessed cases and the dataset
fingerprint; `unetpp serve`: the input volume it keeps, warm_cache.py).

Path, size and modification time alone miss a same-size replacement that keeps the old
modification time (``cp -p``, ``rsync -t``, a restore from a backup): the stale cache was then
reused, and ``--resume`` compared the checkpoint with the old file's print. The inode change
time (``st_ctime``: set by the kernel on every write, rename into place or ``utime`` call; no
user call sets it back) and the inode number (a new file renamed into place) catch it. A key
made before (without them) no longer matches: the file is read again, nothing else.
"""

from __future__ import annotations

import os
from pathlib import Path


def file_stamp(path: Path) -> list:
    """``[resolved path, size (bytes), mtime (ns), ctime (ns), inode]`` of ``path`` (its
    target for a link). Raises OSError when it cannot be read (stat)."""
    info = os.stat(path)
    return [
        str(Path(path).resolve()),
        info.st_size,
        info.st_mtime_ns,
        info.st_ctime_ns,
        info.st_ino,
    ]
