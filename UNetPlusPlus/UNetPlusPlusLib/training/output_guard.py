"""A failed training leaves no half-written model folder.

:func:`remove_on_failure` wraps a training run: if the run raises (a user error, a bug,
Ctrl-C) and the output folder did not exist before it, the folder is removed, unless it already
holds a checkpoint (``checkpoint/``), which is kept so that ``--resume`` can continue; that is
said on stderr. A folder that existed before the run is never removed.
"""

from __future__ import annotations

import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union

from .checkpoint import CHECKPOINT_DIR


@contextmanager
def remove_on_failure(out_dir: Union[str, Path]) -> Iterator[None]:
    """Remove ``out_dir`` when the body raises, if this run created it and left no checkpoint."""
    out = Path(out_dir)
    created = not out.exists()
    try:
        yield
    except BaseException:
        if created and out.exists():
            if (out / CHECKPOINT_DIR).is_dir():
                print(
                    f"warning: training failed; {out / CHECKPOINT_DIR} is kept: continue with "
                    "--resume, or delete the folder",
                    file=sys.stderr,
                )
            else:
                shutil.rmtree(out, ignore_errors=True)
        raise
