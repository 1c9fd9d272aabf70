"""The fields of a NRRD header, parsed from the start of a file (NRRD0004 format,
teem.sourceforge.net/nrrd/format.html): one parser for the engine's checks before ITK reads a
file (:mod:`.data_files`) and the adapter's streamed voxel comparison
(``adapter/nrrd_voxels.py``).

A field is a ``<name>: <value>`` line; comments (``#``) and key/value pairs (``key:=value``,
Slicer's metadata) are not fields. The header ends at its first blank line (the data follow it
in the same file) or, for ``data file: LIST``, with the list of data file names after it.
"""

from __future__ import annotations

from typing import NamedTuple, Optional


class NrrdHeader(NamedTuple):
    """A parsed NRRD header: ``fields`` (lower-case names, stripped values), the data file names
    ``listed`` after ``data file: LIST`` (else []), and ``data_offset``: the byte after the blank
    line that ends the header (where attached data start), None when the bytes read hold none."""

    fields: dict[str, str]
    listed: list[str]
    data_offset: Optional[int]


def parse_nrrd_header(head: bytes) -> Optional[NrrdHeader]:
    """The header at the start of ``head`` (the first bytes of a file, e.g. 64 kB), or None when
    they do not start with a NRRD magic (``NRRD000``). Never raises."""
    if not head.startswith(b"NRRD000"):
        return None
    lines = head.decode("latin-1").splitlines()
    fields: dict[str, str] = {}
    listed: list[str] = []
    for number, line in enumerate(lines[1:], start=1):
        if not line.strip():
            break  # the end of the header
        key, sep, value = line.partition(": ")
        if sep and not line.startswith("#") and ":=" not in key:
            fields[key.strip().lower()] = value.strip()
        if key.strip().lower() in ("data file", "datafile") and value.split()[:1] == ["LIST"]:
            listed = [name.strip() for name in _until_blank(lines[number + 1 :])]
            break  # the listed files end the header
    end = head.find(b"\n\n")
    return NrrdHeader(fields, listed, end + 2 if end >= 0 else None)


def _until_blank(lines: list[str]) -> list[str]:
    """The lines up to the first blank one."""
    end = next((i for i, line in enumerate(lines) if not line.strip()), len(lines))
    return lines[:end]
