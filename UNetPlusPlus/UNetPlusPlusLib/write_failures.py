"""Why writing a file failed, in words a user acts on; and writers that fail without saying so.

A full disk reached users three ways (tester reports, reproduced on a 100 kB tmpfs): as
"the disk is full" (an ``OSError`` with ``errno`` ENOSPC), as SimpleITK's "No space left on
device" (a ``RuntimeError`` holding only the text), and not at all: ITK's NIfTI writer prints
``** ERROR: NWAD: wrote only 7840 of 9600 bytes to file`` on the process's stderr (file
descriptor 2, below Python's ``sys.stderr``) and returns as if it had written the file, and
its MetaImage writer can leave an empty file. :func:`writer_output` runs a writer with file
descriptor 2 captured, so that its own error text is turned into one error of ours instead of
a raw line before it (or a truncated output after it); :func:`plain_reason` and
:func:`text_reason` word a failure, and :func:`disk_full` tells a full disk from other causes
when the writer gave no reason.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator, Optional

#: What an OSError's errno means for a file being written, in words a user acts on.
CAUSES = {
    errno.EACCES: "there is no permission to write there",
    errno.EPERM: "there is no permission to write there",
    errno.EROFS: "it is on a read-only file system",
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "the file is larger than this process may write (ulimit -f)",
    errno.ENAMETOOLONG: "the file name is too long",
}

#: Free space below which a write that failed without a reason is put down to a full disk.
FULL_BELOW = 64 * 1024

#: A line of a writer's own error report on stderr (``** ERROR: NWAD: ...``, ``ERROR: In ...``).
_ERROR_LINE = re.compile(r"\bERROR\b")


def plain_reason(error: OSError) -> str:
    """Why writing failed, as a clause for a sentence ("the disk is full"), without the errno
    tail ("(No such file or directory)") that followed a clear sentence (tester 12)."""
    cause = CAUSES.get(error.errno or 0)
    if cause:
        return cause
    text = (error.strerror or str(error) or type(error).__name__).strip().rstrip(".")
    return "the system reports: " + text[:1].lower() + text[1:]


def text_reason(text: str) -> Optional[str]:
    """The clause of :data:`CAUSES` whose system message (``os.strerror``, e.g. "No space
    left on device") appears in a writer's error ``text``, or None."""
    for number, cause in CAUSES.items():
        if os.strerror(number) in text:
            return cause
    return None


def free_bytes(folder: Path) -> Optional[int]:
    """Bytes a new file in ``folder`` may still use (the blocks reserved for root count for
    root only), or None when the file system does not say."""
    try:
        stat = os.statvfs(folder)
    except (OSError, AttributeError):  # no statvfs on Windows
        return None
    blocks = stat.f_bfree if hasattr(os, "geteuid") and os.geteuid() == 0 else stat.f_bavail
    return blocks * stat.f_frsize


def disk_full(folder: Path) -> Optional[str]:
    """ "the disk is full (N kB free in FOLDER)" when less than :data:`FULL_BELOW` is free
    there, else None."""
    free = free_bytes(folder)
    if free is None or free >= FULL_BELOW:
        return None
    return f"the disk is full ({free // 1024} kB free in {folder})"


@contextlib.contextmanager
def _captured_fd2() -> Iterator[Callable[[], str]]:
    """Send file descriptor 2 to an in-memory file while the block runs; yields a function
    returning what was written there. No-op (yields "" text) where fd 2 cannot be redirected."""
    try:
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass
    try:
        saved = os.dup(2)
    except OSError:
        yield lambda: ""
        return
    try:
        sink = _memory_file()
    except OSError:
        os.close(saved)
        yield lambda: ""
        return
    text: list[str] = []
    try:
        os.dup2(sink.fileno(), 2)
        yield lambda: "".join(text)
    finally:
        try:
            sys.stderr.flush()
        except (OSError, ValueError, AttributeError):
            pass
        os.dup2(saved, 2)
        os.close(saved)
        sink.seek(0)
        text.append(sink.read().decode("utf-8", "replace"))
        sink.close()


def _memory_file():
    """A file object that does not use the disk where possible (Linux: ``memfd_create``), so
    that capturing works on the very disk that is full."""
    if hasattr(os, "memfd_create"):
        return os.fdopen(os.memfd_create("unetpp-stderr"), "w+b")
    return tempfile.TemporaryFile()


def writer_output(write: Callable[[], object]) -> Optional[str]:
    """Run ``write()`` with the process's stderr (file descriptor 2) captured. Returns the
    writer's error text when it printed one (a line with "ERROR": the write failed though
    ``write`` returned), else None; text without an error is passed on to stderr unchanged.
    Exceptions of ``write`` propagate (the captured text is then dropped: the exception says
    what went wrong)."""
    report: dict[str, Callable[[], str]] = {}
    with _captured_fd2() as captured:
        report["text"] = captured
        write()
    text = report["text"]()
    if _ERROR_LINE.search(text):
        line = next(line for line in text.splitlines() if _ERROR_LINE.search(line))
        return re.sub(r"^[\s*]*ERROR:\s*", "", line).strip() or line.strip()
    if text:
        os.write(2, text.encode("utf-8", "replace"))
    return None
