"""Option types for the `unetpp` command line, checked when the command line is parsed.

Each function is an ``argparse`` ``type=``: it returns the parsed value or raises
``argparse.ArgumentTypeError`` with a message that says what is allowed, so a bad value is a
one-line user error (exit 2) before any file is read or torch is imported. No torch here.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from typing import Callable, Sequence

from .device_check import DEVICE_NAMES, DEVICE_PATTERN
from .output_folders import names_folder

# Extensions of the files the CLI writes (lower case, the longest match first).
SEGMENTATION_EXTENSIONS = (".seg.nrrd",)
LABELMAP_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".mha")
PREVIEW_EXTENSIONS = (".png",)


class ArgumentError(Exception):
    """A bad command line; ``main`` prints it as one ``error:`` line and exits with 2."""


_EXTRAS_PROG = "_unetpp_extras_prog"  # namespace key: the (sub-)command that left arguments over


#: Arguments that start like a negative number (``-5``, ``-5m``, ``-.5``): values, not options.
NEGATIVE_VALUE = re.compile(r"^-\.?\d")


def accept_negative_values(parser: argparse.ArgumentParser) -> None:
    """Let ``parser`` read ``--time-budget -5m`` as the value ``-5m`` (argparse takes only plain
    negative numbers, ``-5``, as values and answered "expected one argument"), so the option's
    type says what is wrong ("must be longer than zero"). Safe while no option of ``parser`` is
    named like a negative number (none of `unetpp`'s is); sub-parsers of :class:`Parser` have it."""
    parser._negative_number_matcher = NEGATIVE_VALUE  # type: ignore[attr-defined]


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (``error: ...``), not usage + message, and
    point to the help of the (sub-)command whose arguments were wrong (``unetpp models list
    --help``), also for arguments a sub-command left over (argparse reports those from the
    top-level parser).

    An unknown option is named even when a required argument is missing too: argparse reports
    the missing ``INPUT`` first (``unetpp segment --bogus-option``), which hides the typo.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        accept_negative_values(self)

    def error(self, message: str, prog: str = ""):  # type: ignore[override]
        """Raise ArgumentError: ``message (see `PROG --help`)``, PROG this parser's or ``prog``."""
        error = ArgumentError(f"{message} (see `{prog or self.prog} --help`)")
        error.parser, error.missing = self, "required" in message  # type: ignore[attr-defined]
        raise error

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        """As argparse's; leftover arguments are refused naming the sub-command that left them."""
        parsed, extras = self.parse_known_args(args, namespace)
        prog = vars(parsed).pop(_EXTRAS_PROG, "")
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}", prog)
        return parsed

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        """As argparse's; a missing required argument with an unknown option among ``args``
        raises ArgumentError naming the unknown option(s) instead. The innermost parser that
        leaves arguments over records its ``prog`` in the namespace (for :meth:`parse_args`)."""
        args = sys.argv[1:] if args is None else list(args)
        try:
            parsed, extras = super().parse_known_args(args, namespace)
        except ArgumentError as error:
            if getattr(error, "parser", None) is not self or not getattr(error, "missing", False):
                raise  # another problem, or a sub-command's parser already judged its own part
            unknown = self.unknown_options(args)
            if not unknown:
                raise
            self.error(f"unrecognized arguments: {' '.join(unknown)}")
        if extras and not getattr(parsed, _EXTRAS_PROG, ""):
            setattr(parsed, _EXTRAS_PROG, self.prog)
        return parsed, extras

    def unknown_options(self, args: Sequence[str]) -> list[str]:
        """The arguments that look like options (``-x``, ``--name[=value]``; not negative
        numbers, not after ``--``) but that no option of this parser takes."""
        known = self._option_string_actions
        unknown = []
        for arg in args:
            if arg == "--":
                break
            if not arg.startswith("-") or arg == "-" or NEGATIVE_VALUE.match(arg):
                continue
            name = arg.split("=", 1)[0]
            abbreviated = self.allow_abbrev and name.startswith("--")
            if name in known or arg[:2] in known and not arg.startswith("--"):
                continue  # an option, or a short one with its value attached (-ofile)
            if abbreviated and any(option.startswith(name) for option in known):
                continue
            unknown.append(arg)
        return unknown


def finite_float(text: str) -> float:
    """A finite number (mm): no NaN or infinity."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (a learning rate, a spacing in mm)."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number greater than 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (a weight decay, a Dice tolerance)."""
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a number of 0 or more, got {text!r}")
    return value


def fraction(low_open: bool, high_open: bool) -> Callable[[str], float]:
    """A type for a finite fraction from 0 to 1; ``low_open`` / ``high_open`` exclude 0 / 1."""
    interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"

    def check(text: str) -> float:
        value = finite_float(text)
        if value < 0 or value > 1 or (low_open and value == 0) or (high_open and value == 1):
            raise argparse.ArgumentTypeError(f"must be a fraction in {interval}, got {text!r}")
        return value

    return check


_NUMBER = r"(\d+(?:\.\d+)?)"


def duration_seconds(text: str) -> float:
    """Seconds in ``30m``, ``2h``, ``1h30m``, ``90s`` or a bare number of seconds (``3600``);
    raises ValueError (saying what is allowed) for anything else or a zero duration."""
    if str(text).strip().startswith("-"):
        raise ValueError(f"{text!r} must be longer than zero")
    if re.fullmatch(rf"\s*{_NUMBER}\s*", str(text)):
        if float(text) > 0:
            return float(text)
        raise ValueError(f"{text!r} must be longer than zero")
    pattern = rf"\s*(?:{_NUMBER}h)?\s*(?:{_NUMBER}m)?\s*(?:{_NUMBER}s)?\s*"
    parts = re.fullmatch(pattern, str(text).lower())
    if not parts or not any(parts.groups()):
        raise ValueError(f"{text!r}: write a duration such as 90s, 30m, 2h, 1h30m or 3600")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in parts.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    return total


def duration(text: str) -> str:
    """A time budget (``30m``, ``2h``, ``1h30m``, ``90s``, ``3600``): checked by
    :func:`duration_seconds`, returned as given (plan.json records the text)."""
    try:
        duration_seconds(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _shown(value: int) -> str:
    """``value`` as a message shows it: a number too long to read is named by its length."""
    digits = len(str(abs(value)))
    return str(value) if digits <= 20 else f"a {digits}-digit number"


def regex(text: str) -> str:
    """A non-empty regular expression that compiles (``--patient-regex``)."""
    if not text:
        raise argparse.ArgumentTypeError("an empty regular expression names no patient")
    try:
        re.compile(text)
    except re.error as error:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a valid regular expression ({error})"
        ) from None
    return text


def series_uid(text: str) -> str:
    """A DICOM Series Instance UID (``--series``): not empty (an empty one picked a series as
    if the option were left out)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty UID names no series; leave --series out")
    return text.strip()


def regex_list(text: str) -> list[str]:
    """Comma-separated regular expressions (``--val-cases``), each one compiling, at least one
    (an empty list was ignored in silence: the split fell back to --val-fraction)."""
    parts = [regex(part.strip()) for part in text.split(",") if part.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"{text!r} names no case or patient")
    return parts


def _whole_number_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        if re.fullmatch(r"\s*[+-]?\d+\s*", text):  # Python refuses over 4300 digits
            raise argparse.ArgumentTypeError(
                f"got a {len(text.strip().lstrip('+-'))}-digit number, far too large"
            ) from None
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {_shown(value)}")
    return value


def positive_int(text: str) -> int:
    """A whole number >= 1 (counts: threads, tiles per batch)."""
    return _whole_number_at_least(text, 1)


def count_up_to(most: int) -> Callable[[str], int]:
    """A whole number from 1 to ``most``: ``unetpp train --epochs`` with a 400-digit number
    ended, after the whole preprocessing, with an internal error (OverflowError) instead of
    a refusal when the command line is parsed."""

    def check(text: str) -> int:
        value = positive_int(text)
        if value > most:
            raise argparse.ArgumentTypeError(f"must be at most {most}, got {_shown(value)}")
        return value

    return check


def thread_count(text: str) -> int:
    """A CPU thread count: 1 up to four times the machine's logical CPUs (``os.cpu_count()``,
    at least 8), so a script's ``--threads 2`` still runs on a 1-CPU machine and a deliberate
    over-subscription is allowed; far more crashed torch: ``--threads 100000`` ended `unetpp
    segment` with a segmentation fault in OpenMP (exit 139, no message), ``--threads
    99999999999999999999`` with an internal error (tester 10)."""
    import os

    value = positive_int(text)
    cpus = os.cpu_count() or 1
    most = max(8, 4 * cpus)
    if value > most:  # the two numbers explained: "has 2 CPUs; at most 8" read as a slip
        why = (
            f"four times this machine's {cpus} logical CPUs"
            if most > 8
            else f"this machine has {cpus} logical CPU(s); 8 threads are allowed on any machine"
        )
        raise argparse.ArgumentTypeError(
            f"give at most {most} ({why}; more threads than CPUs only slow inference down), "
            f"got {value}"
        )
    return value


def non_negative_int(text: str) -> int:
    """A whole number >= 0."""
    return _whole_number_at_least(text, 0)


#: The largest random seed: torch.manual_seed takes at most an unsigned 64-bit one (a larger one
#: ended a training run after its preprocessing with "Overflow when unpacking long long").
MAX_SEED = 2**64 - 1


def random_seed(text: str) -> int:
    """A random seed: a whole number from 0 (numpy refuses negative ones) to :data:`MAX_SEED`."""
    value = _whole_number_at_least(text, 0)
    if value > MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be at most 2**64 - 1 = {MAX_SEED}, got {value}")
    return value


def tile_edge(text: str) -> int:
    """A tile edge in voxels: a positive multiple of 16 (four 2x poolings, UNet++ L4)."""
    value = positive_int(text)
    if value % 16:
        raise argparse.ArgumentTypeError(f"must be a multiple of 16, got {value}")
    return value


#: The largest sliding-window overlap: tiles step by a quarter of their size at least, at most
#: 64 times the tiles of no overlap (27 times the shipped models' 0.25). ``--overlap 0.99`` made
#: 263,250 tiles instead of 36 on the demo CT, a run that never ended (tester 10).
MAX_OVERLAP = 0.75


def overlap_fraction(text: str) -> float:
    """The sliding-window tile overlap, a fraction in [0, MAX_OVERLAP]."""
    value = finite_float(text)
    if not 0.0 <= value <= MAX_OVERLAP:
        raise argparse.ArgumentTypeError(
            f"the tile overlap is a fraction from 0 to {MAX_OVERLAP:g} (more multiplies the tiles "
            f"without a measured gain), got {value:g}"
        )
    return value


def depth_choice(text: str) -> str:
    """1, 2, 3, 4 (or L1..L4), ensemble or auto; returned as "1".."4", "ensemble" or "auto"."""
    value = text.strip().lower()
    if value in ("auto", "ensemble"):
        return value
    digits = value[1:] if value.startswith("l") else value
    if digits in ("1", "2", "3", "4"):
        return digits
    raise argparse.ArgumentTypeError(
        f"Depth {text!r} is unknown; choose 1, 2, 3, 4, ensemble or auto"
    )


def device_choice(text: str) -> str:
    """auto, cpu, cuda, cuda:N or mps (whether it exists: ``device_check``, before any read)."""
    value = text.strip().lower()
    if not DEVICE_PATTERN.match(value):
        raise argparse.ArgumentTypeError(f"device {text!r} is unknown; choose {DEVICE_NAMES}")
    return value


def extension_of(path: str, allowed: Sequence[str]) -> str:
    """The allowed extension ``path`` ends with (case-insensitive), or "" if none."""
    lower = path.lower()
    return next((ext for ext in allowed if lower.endswith(ext)), "")


def output_file(allowed: Sequence[str], what: str, hint: str = "") -> Callable[[str], str]:
    """A type for an output file path whose name must end with one of ``allowed``. A name
    ending ``.seg.nrrd`` is refused unless ``allowed`` holds it: ``.nrrd`` matched it, and a
    plain image under that name is loaded by Slicer as a segmentation without the model's
    names, colours and terminology (:func:`segmentation_name_error`); where no allowed
    extension matches it (``--preview``: ``.png``), the plain list of allowed extensions is
    the error (it suggested .nrrd or .nii.gz, which ``--preview`` refuses too; tester 20).
    A folder (a name ending with ``/``, or an existing folder) is let through for
    ``cli_outputs.check_output_paths`` to refuse in the one wording every folder gets
    (``output_folders.folder_error``, which names a file to give instead)."""

    def check(text: str) -> str:
        if not text:
            raise argparse.ArgumentTypeError(f"the file name is empty; give a file name for {what}")
        if names_folder(text):  # one wording for every folder: cli_outputs, with the inputs
            return text
        segmentation = extension_of(text, SEGMENTATION_EXTENSIONS)
        accepted = extension_of(text, allowed)  # ".nrrd" alone would accept a .seg.nrrd name
        if segmentation and segmentation not in allowed and accepted:  # --preview's .png: below
            raise argparse.ArgumentTypeError(segmentation_name_error(text, what, segmentation))
        if not accepted:
            raise argparse.ArgumentTypeError(
                f"{text!r}: {what} must end with {', '.join(allowed)}{hint}"
            )
        return text

    return check


def segmentation_name_error(text: str, what: str, extension: str) -> str:
    """Why ``what`` (an option that writes a plain image) refuses the name ``text``, which
    ends with the segmentation ``extension``, and the names to use instead."""
    stem = text[: len(text) - len(extension)]
    instead = f"name it {stem}.nrrd or {stem}.nii.gz"
    if what == "--labelmap":
        instead += f", or give -o {text} for a Slicer segmentation"
    return (
        f"{text!r}: {what} writes a plain image, not a Slicer segmentation, and Slicer would "
        f"load a {extension} file as a segmentation without the model's names, colours and "
        f"terminology; {instead}"
    )


def check_roi(corners: Sequence[float]) -> None:
    """Refuse an empty region of interest: both corners must differ along x, y and z."""
    for axis, (a, b) in enumerate(zip(corners[:3], corners[3:])):
        if a == b:
            raise ArgumentError(
                f"argument --roi: the region of interest is empty (both corners have "
                f"{'xyz'[axis]} = {a:g} mm); give two opposite corners that differ in x, y and z"
            )
