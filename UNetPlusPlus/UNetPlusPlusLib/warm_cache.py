"""What `unetpp serve` keeps between requests: the last Predictor and the last input volume.

Successive runs on one volume (nodule clicks, another depth, TTA on or off) use the same model
and the same input files, so the server keeps the loaded model (keyed by manifest path, sha256,
device and threads) and the volume it read (keyed by each input file's resolved path, size,
modification time, inode change time and inode: engine/file_stamp.py, so a same-size copy that
keeps the old modification time is read again; DICOM folders are read again every time). A
request may instead name its volume by an ``input_token`` (the Slicer module's: its nodes' ids,
modification times and world matrices): while the cache holds that token the files are not read,
nor needed, so the module deletes each run's input files (copies of the patient's images) when
the run ends and writes them again only when the server no longer holds the volume. One of each
is kept. For the model and volume it also keeps what a click would otherwise recompute from the
whole volume: the input sanity warnings (``input_checks``, which the CLI runs before it imports
torch) and the MR statistics the crop around a point is normalised with (``channel_norms``), and
the last prepared network input (``memo``: the non-zero box, resampled and normalised), so that
another depth or TTA on the same volume starts at the network; the memo also keeps the liver
anatomy check's lung and body masks (each result still gets its own anatomy warning: the segment
differs between depths).

Memory bound (:meth:`WarmCache.after_request`, called by the server after every request): after
a click (a ``--point`` request) the volume is kept whatever its size, since reading and checking
the whole volume again would cost more than the click's inference; after any other run it is
kept only up to ``keep_bytes`` (default :data:`KEEP_VOLUME_BYTES`, 256 MiB of float32: a BraTS
case, 4 x 240 x 240 x 155, is 136 MiB; a 512 x 512 x 300 CT is 300 MiB and is dropped, to be
read and checked again by the next run, measured in docs/ARCHITECTURE.md). Then CUDA's cached
blocks are returned to the driver (only when torch is already imported and CUDA initialised) and,
on Linux, the C heap's free pages to the system (``malloc_trim``).
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from . import torch_preload
from .engine.file_stamp import file_stamp

KEEP_VOLUME_BYTES = 256 * 2**20  # largest input volume kept after a run that is not a click


class WarmCache:
    """``predictor(...)`` and ``volume(...)`` return the cached object while its key matches.

    ``keep_bytes``: the largest volume (its float32 array, bytes) kept after a request that is
    not a click; see the module docstring.
    """

    def __init__(self, keep_bytes: int = KEEP_VOLUME_BYTES) -> None:
        self.keep_bytes = int(keep_bytes)
        self._predictor: tuple[Any, Any] = (None, None)  # (key, Predictor)
        self._volume: tuple[Any, Any] = (None, None)  # (key, Volume)
        self._checks: tuple[Any, Any] = (None, {})  # ((model, Volume), {"warnings": ...})
        self._read_said: tuple[Any, list] = (None, [])  # (volume key, the readers' warnings)

    def predictor(self, manifest, device: str, threads: Optional[int]):
        """A Predictor for ``manifest`` on ``device`` (loads the weights when the key changes)."""
        from .engine.predictor import Predictor

        key = (str(manifest.path), manifest.sha256, device, threads)
        if self._predictor[0] != key:
            self._predictor = (None, None)  # free the old model first
            self._predictor = (key, Predictor(manifest, device=device, threads=threads))
        return self._predictor[1]

    def threads(self) -> int:
        """The kept model's thread count (its executor's), 1 without a model."""
        executor = getattr(self._predictor[1], "executor", None)
        return max(1, int(getattr(executor, "threads", 1)))

    def idle_probe(self, stop) -> int:
        """Let the kept Predictor's executor probe in idle time (``Predictor.idle_probe``);
        ``stop()``: true when a request is waiting. Returns the tiles run (0: no model)."""
        predictor = self._predictor[1]
        return 0 if predictor is None else predictor.idle_probe(stop)

    def volume(
        self,
        paths: Sequence[str],
        channel_names: Sequence[str],
        series=None,
        token: Optional[str] = None,
    ):
        """``read_volume(paths, channel_names, series)``, reused while every file is unchanged,
        or, with a ``token``, while the token (and the channel names) match: then the files
        are neither read nor needed. Raises UNetPlusPlusError as ``read_volume`` does."""
        from .engine.image_read import read_volume

        if token is not None:
            key = (("token", token), tuple(channel_names), series)
        else:
            key = _files_key(paths, channel_names)
            key = None if key is None else (key, series)
        if key is None or self._volume[0] != key:
            self._volume = (None, None)
            volume = read_volume(paths, channel_names=channel_names, series=series)
            self._volume = (key, volume) if key is not None else (None, None)
            return volume
        return self._volume[1]

    def read_warnings(self, volume, found: Sequence[str]) -> list[str]:
        """The readers' warnings of ``volume`` (read_warnings.py): ``found``, kept with the
        volume when it was just read; those kept when it is the volume read before (a later
        `unetpp serve` request on it, which reads nothing and so is warned nothing)."""
        key = self._volume[0] if self._volume[1] is volume else None
        if found or key is None or self._read_said[0] != key:
            self._read_said = (key, list(found))
        return list(self._read_said[1])

    def holds(self, token: Optional[str], channel_names: Sequence[str], series=None) -> bool:
        """Whether ``volume(..., token=token)`` would return the kept volume without reading."""
        key = (("token", token), tuple(channel_names), series)
        return token is not None and self._volume[0] == key

    def held_token(self, click: bool) -> Optional[str]:
        """The token of the volume kept after ``after_request(click)``; None when none is kept
        or the kept one was read without a token."""
        key = self._volume[0]
        if key is None or self._drops_volume(click) or key[0][0] != "token":
            return None
        return key[0][1]

    def kept_volume_bytes(self) -> int:
        """Bytes of the input volume kept for the next request (0: none)."""
        volume = self._volume[1]
        return 0 if volume is None else int(volume.array.nbytes)

    def after_request(self, click: bool) -> None:
        """Apply the memory bound after a request (whatever its outcome): drop the volume, and
        what was computed from it, if the request was not a click (``click``: it had
        ``--point``) and the volume is larger than ``keep_bytes``; then free CUDA's cache and
        trim the C heap."""
        if self._drops_volume(click):
            self._volume = (None, None)
            self._checks = (None, {})  # it references the Volume too
        free_cuda_cache()
        trim_heap()

    def _drops_volume(self, click: bool) -> bool:
        return not click and self.kept_volume_bytes() > self.keep_bytes

    def input_checks(self, manifest, volume, channel_check: bool = True) -> list[str]:
        """The input sanity warnings of ``volume`` for ``manifest``
        (``sanity.check_model_input``, no torch), computed once per (model, Volume) pair and
        ``channel_check`` (the sequence-order check, ``--no-channel-check``; the zero MR
        background and near-duplicate refusals run either way); raises UNetPlusPlusError as
        that check does."""
        from .engine.sanity import check_model_input

        def check(manifest, volume):  # the coarse CT it measures is kept for the liver check
            memo = self.memo(manifest, volume)
            return check_model_input(manifest, volume, channel_check=channel_check, memo=memo)

        return list(self._once(f"warnings {channel_check}", manifest, volume, check))

    def channel_norms(self, manifest, volume) -> list[dict]:
        """The channels' normalisation with the whole volume's MR statistics (a crop around a
        point is normalised with them), computed once per (model, Volume) pair."""
        from .engine.normalize import with_volume_statistics

        def measure(manifest, volume):
            norms = [channel.normalization for channel in manifest.channels]
            return with_volume_statistics(volume, norms)

        return [dict(n) for n in self._once("norms", manifest, volume, measure)]

    def memo(self, manifest, volume) -> dict:
        """A dict for what ``Predictor.segment(..., memo=)`` keeps of this (model, Volume) pair
        between requests (the prepared network input, ``engine/prepare.py``); dropped with the
        volume."""
        return self._once("memo", manifest, volume, lambda manifest, volume: {})

    def _once(self, what: str, manifest, volume, compute):
        """``compute(manifest, volume)``, kept while the model and the Volume object are the
        same; one pair is kept."""
        model = (str(manifest.path), manifest.sha256)
        pair = self._checks[0]
        if pair is None or pair[0] != model or pair[1] is not volume:
            self._checks = ((model, volume), {})
        found = self._checks[1]
        if what not in found:
            found[what] = compute(manifest, volume)
        return found[what]


def free_cuda_cache() -> None:
    """``torch.cuda.empty_cache()`` if torch is already imported and CUDA initialised (never
    imports torch, never starts CUDA); a CUDA error here is left to the next request. While
    `unetpp serve`'s background import (``torch_preload``) runs, ``sys.modules`` holds a torch
    still without ``torch.cuda``, and CUDA cannot have started: nothing to free (a request that
    failed fast, e.g. a missing input, ended the server with an internal error, tester 20)."""
    torch = sys.modules.get("torch")
    if torch is None or torch_preload.running():
        return
    if not torch.cuda.is_initialized():
        return
    try:
        torch.cuda.empty_cache()
    except RuntimeError:
        pass


def trim_heap() -> None:
    """Give the C heap's free pages back to the system (glibc's ``malloc_trim``; elsewhere
    nothing): after a whole-volume run, tens of MB of freed buffers stay resident otherwise."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        pass


def _files_key(paths: Sequence[str], channel_names: Sequence[str]) -> Optional[tuple]:
    parts = []
    for path in paths:
        try:
            stamp = file_stamp(Path(path))  # path, size, mtime, ctime, inode: cp -p is seen
        except OSError:
            return None  # read_volume reports it
        if not Path(path).is_file():
            return None  # a DICOM folder: its files may change without the folder's time
        parts.append(tuple(stamp))
    return (tuple(parts), tuple(channel_names))
