"""What `unetpp serve` keeps between requests: the last Predictor and the last input volume.

Successive nodule clicks on one CT use the same model and the same input file, so the server
keeps the loaded model (keyed by manifest path, sha256, device and threads) and the volume it read
(keyed by each input file's resolved path, modification time and size; DICOM folders are read
again every time). One of each is kept, to bound memory. For that pair it also keeps what a click
would otherwise recompute from the whole volume: the input sanity warnings and the MR statistics
the crop around a point is normalised with (``input_checks``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence


class WarmCache:
    """``predictor(...)`` and ``volume(...)`` return the cached object while its key matches."""

    def __init__(self) -> None:
        self._predictor: tuple[Any, Any] = (None, None)  # (key, Predictor)
        self._volume: tuple[Any, Any] = (None, None)  # (key, Volume)
        self._checks: tuple[Any, Any] = (None, None)  # ((Predictor, Volume), (warnings, norms))

    def predictor(self, manifest, device: str, threads: Optional[int]):
        """A Predictor for ``manifest`` on ``device`` (loads the weights when the key changes)."""
        from .engine.predictor import Predictor

        key = (str(manifest.path), manifest.sha256, device, threads)
        if self._predictor[0] != key:
            self._predictor = (None, None)  # free the old model first
            self._predictor = (key, Predictor(manifest, device=device, threads=threads))
        return self._predictor[1]

    def volume(self, paths: Sequence[str], channel_names: Sequence[str], series=None):
        """``read_volume(paths, channel_names, series)``, reused while every file is unchanged."""
        from .engine.volume import read_volume

        key = _files_key(paths, channel_names)
        key = None if key is None else (key, series)
        if key is None or self._volume[0] != key:
            self._volume = (None, None)
            volume = read_volume(paths, channel_names=channel_names, series=series)
            self._volume = (key, volume) if key is not None else (None, None)
            return volume
        return self._volume[1]

    def input_checks(self, predictor, volume) -> tuple[list[str], list[dict]]:
        """(``predictor.check_input(volume)`` warnings, the channels' normalisation with the
        whole volume's MR statistics), computed once per (Predictor, Volume) pair; raises
        UNetPlusPlusError as check_input does."""
        from .engine.normalize import with_volume_statistics

        pair = self._checks[0]
        if pair is None or pair[0] is not predictor or pair[1] is not volume:
            self._checks = (None, None)
            warnings = predictor.check_input(volume)
            norms = [channel.normalization for channel in predictor.manifest.channels]
            self._checks = ((predictor, volume), (warnings, with_volume_statistics(volume, norms)))
        warnings, norms = self._checks[1]
        return list(warnings), [dict(n) for n in norms]


def _files_key(paths: Sequence[str], channel_names: Sequence[str]) -> Optional[tuple]:
    parts = []
    for path in paths:
        try:
            status = os.stat(path)
        except OSError:
            return None  # read_volume reports it
        if not Path(path).is_file():
            return None  # a DICOM folder: its files may change without the folder's time
        parts.append((str(Path(path).resolve()), status.st_mtime_ns, status.st_size))
    return (tuple(parts), tuple(channel_names))
