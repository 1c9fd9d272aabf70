"""Downloading a model file over http(s): streamed to disk, bounded in size, a stall detected.

Network problems, a stalled server and an endless stream each become one user error
(``UNetPlusPlusError``) naming the URL. Used by ``model_install``.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Callable, Optional

from UNetPlusPlusLib.errors import UNetPlusPlusError

Progress = Callable[[str, int, int], None]

DOWNLOAD_TIMEOUT_S = 60.0
#: A download that brings fewer bytes than this in DOWNLOAD_TIMEOUT_S (about 1 KiB/s) has
#: stalled: a server trickling a byte at a time never hit the socket timeout (tester 16).
MIN_BYTES_PER_TIMEOUT = 64 << 10
#: The most a download may bring: a server streaming without end filled the disk (tester 16).
MAX_DOWNLOAD_BYTES = 2 << 30  # an archive or weights (the shipped ones are 3.3 MB)
_CHUNK = 1 << 20


def _content_length(text: Optional[str]) -> int:
    """A Content-Length header's bytes; 0 (unknown) when absent or not a whole number >= 0, as
    http.client reads it (it was a 'Could not download' error, a "-5" a download cut short)."""
    try:
        return max(0, int((text or "0").strip()))
    except ValueError:
        return 0


def download(
    url: str,
    dest: Path,
    progress: Optional[Progress],
    timeout: float,
    max_bytes: Optional[int] = None,
) -> None:
    """Stream ``url`` to the file ``dest``, at most ``max_bytes`` (default MAX_DOWNLOAD_BYTES);
    ``progress("download", done, total)`` in bytes (``total`` 0 when the server does not say);
    ``timeout`` in seconds, per read and per window of MIN_BYTES_PER_TIMEOUT bytes.

    Raises UNetPlusPlusError (one line naming the URL) on an HTTP error, no answer, a stall,
    a larger or truncated file, or a network or disk error."""
    import urllib.error  # here, not at the top: urllib.request pulls in http.client and ssl,
    import urllib.request  # 0.15 s of every `unetpp segment`'s start (registry imports us)

    max_bytes = MAX_DOWNLOAD_BYTES if max_bytes is None else max_bytes
    request = urllib.request.Request(url, headers={"User-Agent": "unetpp-model-installer"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as out:
            total = _content_length(response.headers.get("Content-Length"))
            if total > max_bytes:
                raise _too_large(url, total, max_bytes)
            done = 0
            if progress:
                progress("download", done, total)
            window_start, window_done = time.monotonic(), 0
            while True:
                chunk = response.read1(_CHUNK)  # what has arrived: the stall check runs
                if not chunk:
                    break
                done += len(chunk)
                if done > max_bytes:
                    raise _too_large(url, done, max_bytes)
                out.write(chunk)
                window_done += len(chunk)
                if progress:
                    progress("download", done, total)
                if time.monotonic() - window_start >= timeout:
                    if window_done < MIN_BYTES_PER_TIMEOUT:
                        raise UNetPlusPlusError(
                            f"Could not download {url}: it stalled ({window_done} bytes in the "
                            f"last {timeout:g} s, {done} in all); check the network."
                        )
                    window_start, window_done = time.monotonic(), 0
        if total and done != total:
            raise UNetPlusPlusError(
                f"Download from {url} stopped after {done} of {total} bytes; try again."
            )
    except urllib.error.HTTPError as exc:
        reason = " ".join(str(exc.reason).split())  # a redirect loop's reason spans 3 lines
        raise UNetPlusPlusError(
            f"Could not download {url}: HTTP {exc.code} {reason}; check the address."
        ) from exc
    # socket.timeout is TimeoutError from Python 3.10 only: Slicer 5.8 runs the engine on its
    # Python 3.9.10, where it fell through to the OSError clause ("...: timed out.")
    except (socket.timeout, TimeoutError) as exc:  # noqa: UP041
        raise _timeout_error(url, timeout) from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, (socket.timeout, TimeoutError)):  # noqa: UP041 (3.9)
            raise _timeout_error(url, timeout) from exc
        raise UNetPlusPlusError(
            f"Could not download {url}: {exc.reason}; check the address and the network."
        ) from exc
    except (OSError, ValueError) as exc:  # connection reset, bad Content-Length, disk full
        raise UNetPlusPlusError(f"Could not download {url}: {exc}.") from exc


def _too_large(url: str, size: int, max_bytes: int) -> UNetPlusPlusError:
    return UNetPlusPlusError(
        f"Could not download {url}: it is larger than a model package may be ({size} bytes "
        f"or more; at most {max_bytes}); check the address."
    )


def _timeout_error(url: str, timeout: float) -> UNetPlusPlusError:
    return UNetPlusPlusError(
        f"Could not download {url}: no answer within {timeout:g} s; check the network."
    )
