"""Files of background jobs: the inputs in their own voxel types, and folder removal.

No Qt, no Slicer; never blocks the caller for longer than one write of the inputs.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Optional, Union

from ..engine.volume import Volume, array_to_sitk, volume_to_sitk
from .geometry import NativeImages


def input_file_paths(channels: int, folder: Path) -> list[Path]:
    """The files ``write_inputs`` writes in ``folder``, one per channel."""
    return [folder / f"input_{channel}.nrrd" for channel in range(channels)]


def write_inputs(volume: Union[Volume, NativeImages], folder: Path) -> list[Path]:
    """One uncompressed NRRD per channel in ``folder`` (``input_file_paths``): native voxel
    types for ``NativeImages`` (one copy in that type, no float conversion), float32 for a
    ``Volume``. Raises what SimpleITK raises for a file that cannot be written."""
    import SimpleITK as sitk

    paths = input_file_paths(volume.num_channels, folder)
    for channel, path in enumerate(paths):
        if isinstance(volume, NativeImages):
            image = array_to_sitk(volume.arrays[channel], volume.grid)
        else:
            image = volume_to_sitk(volume, channel)
        sitk.WriteImage(image, str(path), False)
        del image
    return paths


def remove_folder(folder: Optional[Path], process: Optional[subprocess.Popen] = None) -> None:
    """Remove ``folder`` now; if that fails (Windows keeps a dying child's files locked), retry
    from a daemon thread for up to 30 s. Never blocks the caller."""
    if folder is None:
        return
    shutil.rmtree(folder, ignore_errors=True)
    if not folder.exists():
        return

    def retry() -> None:
        deadline = time.monotonic() + 30.0
        while folder.exists() and time.monotonic() < deadline:
            if process is not None:
                try:
                    process.wait(timeout=0.2)
                except subprocess.TimeoutExpired:
                    pass
            else:
                time.sleep(0.2)
            shutil.rmtree(folder, ignore_errors=True)

    threading.Thread(target=retry, name="unetpp-cleanup", daemon=True).start()
