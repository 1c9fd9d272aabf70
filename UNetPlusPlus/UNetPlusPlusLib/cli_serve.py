"""`unetpp serve`: one engine process that answers segmentation requests until its input ends.

The Slicer module keeps this process alive between its runs (``adapter/engine_server.py``):
whole volumes, ROIs and nodule clicks alike, so only the first run pays for starting Python,
importing torch and loading the model. The one-shot ``unetpp segment`` is unchanged; a request
takes exactly its arguments.

Protocol, one JSON object per line (UTF-8):

- the server first writes ``{"ready": true, "pid": N}``;
- request ``{"id": 7, "argv": [...]}``: ``argv`` as for ``unetpp segment`` (inputs, ``--model``,
  ``--labelmap``, ``--cancel-file``...); replies ``{"id": 7, "stage": s, "done": d, "total": t}``
  and ``{"id": 7, "warning": msg}`` (each warning once, as soon as it is known: those about the
  input before the first tile), then ``{"id": 7, "result": {...}}`` (its ``warnings`` list all
  of them again) or ``{"id": 7, "error": msg, "status": 1|2|3}`` (the exit status
  ``unetpp segment`` would have had; 3 = cancelled);
- a request may add ``"input_token": "..."``, a name for its input volume (the Slicer module's:
  node ids, modification times, world matrices, channel names): while the server holds the
  volume of that token, the input files are not read and need not exist. Every final reply
  (result or error) carries ``"held_input"``: the token of the volume the server holds for the
  next request, or null; so the module deletes each run's input files when the run ends and
  writes them again only when the server does not hold the volume; an empty or blank token is
  refused; a line that is not JSON, or longer than :data:`MAX_LINE` characters (not held: the
  rest is skipped), gets an error reply with ``"id": null`` and the same keys; a line may start
  with a UTF-8 byte order mark (as Windows tools write one), which is ignored;
- request ``{"quit": true}``, or the end of stdin (the parent has gone): the server exits 0;
- a request with any other field (a misspelt ``input_tokn`` would otherwise be dropped without a
  word, and the volume read again) is refused with one error naming it and the closest valid
  field; the server goes on (``{"quit": true, "bogus": 1}`` too: refused, the server stays).
  ``quit`` other than true or false (``"yes"``, ``1``) is refused
  likewise, rather than read as no quit; so is ``quit`` with ``argv`` or ``input_token`` (the
  run was dropped without a reply).

Idle time: when no request has come for ``IDLE_PROBE_AFTER_S`` after a reply, the kept model's
``fastest`` executor probes on the last tiles it ran (``FastestExecutor.idle_probe``): OpenVINO
is imported and compiled and timed against ours there, between clicks, instead of inside the
fourth click (``OURS_FIRST``), so from the second click on, tiles run on the faster one. A
request that arrives meanwhile stops the probe before its next tile, but waits for the step
under way (the import and compile cannot stop midway). While other programs leave fewer free
CPUs than the model's threads (``cpu_contention``, over the pause), the probe waits for
``BUSY_PROBE_AFTER_S`` instead: every step then takes two or more times longer and takes CPU
from those programs, and a request sent 0.5 s after the last reply waited up to 1.0-1.7 s
for it (docs/BENCHMARK_LOAD.md).

Requests run one after another. The last model and the last input volume stay in memory
(``warm_cache.py``, which bounds the volume kept after a run that is not a click and frees CUDA's
cache after every request). An error in one request is replied and the server goes on.
Anything a library prints to stdout is moved to stderr, so stdout carries only the protocol.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import functools
import io
import json
import logging
import math
import os
import queue
import sys
import threading
from typing import IO, Any, Callable, Iterable, Optional

from .early_warnings import EarlyWarnings
from .engine import cpu_contention, runtime_env
from .exit_codes import EXIT_CANCELLED, EXIT_INTERNAL_ERROR, EXIT_USER_ERROR
from .warm_cache import WarmCache

IDLE_PROBE_AFTER_S = 0.5  # seconds without a request after a reply before the idle probe
#: The same while other programs leave fewer free CPUs than the model's threads (see above).
BUSY_PROBE_AFTER_S = 2.0
_LOG = logging.getLogger(__name__)

#: Makes the whole `unetpp` parser (``cli.build_parser``); given by the CLI, which imports this
#: module, through :func:`add_serve_parser`: a request is parsed as ``unetpp segment`` would be.
ParserFactory = Callable[[], argparse.ArgumentParser]


#: The longest request line read (characters): a request is a few hundred; a line without end
#: from a broken client was held whole, growing memory with it (tester 12).
MAX_LINE = 1 << 20

#: The fields a request may have; any other is refused (:func:`unknown_fields_message`).
REQUEST_FIELDS = ("id", "argv", "input_token", "quit")


def _finite(text: str) -> float:
    """A JSON number as a finite float; ``1e400`` (inf) would be replied as ``Infinity``."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text}")
    return value


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def parse_request(line: str) -> Any:
    """One request line as strict JSON. Raises ValueError for anything else: not JSON, NaN or
    Infinity, a number beyond float range, nesting deeper than Python's recursion limit (which
    would otherwise end the server with an internal error)."""
    try:
        return json.loads(line, parse_float=_finite, parse_constant=_no_constant)
    except RecursionError as error:
        raise ValueError("nested too deeply") from error


def unknown_fields_message(request: dict) -> Optional[str]:
    """The error for a request with fields outside :data:`REQUEST_FIELDS`, each named with the
    closest valid field (``difflib``) when one is close; None when every field is known."""
    unknown = [key for key in request if key not in REQUEST_FIELDS]
    if not unknown:
        return None
    named = []
    for key in unknown:
        close = difflib.get_close_matches(str(key).lower(), REQUEST_FIELDS, n=1, cutoff=0.6)
        named.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    valid = ", ".join(REQUEST_FIELDS)
    noun = "field" if len(unknown) == 1 else "fields"
    return f"bad request: unknown {noun} {', '.join(named)}; a request has only {valid}"


#: JSON's names of the types ``json.loads`` gives, for a client's error message.
_JSON_TYPES = {bool: "boolean", int: "number", float: "number", list: "array", dict: "object"}


def argv_items_message(argv: list) -> str:
    """The error for an ``argv`` list holding something other than strings: it names the first
    such item's index and JSON type (``argv[0] is a number``)."""
    index, item = next((i, a) for i, a in enumerate(argv) if not isinstance(a, str))
    kind = "null" if item is None else _JSON_TYPES.get(type(item), type(item).__name__)
    article = "" if kind == "null" else ("an " if kind[0] in "aeiou" else "a ")
    return (
        f"bad request: argv must be a list of strings (the arguments of `unetpp segment`); "
        f"argv[{index}] is {article}{kind}"
    )


def _reply(stream: IO[str], payload: dict) -> None:
    stream.write(json.dumps(payload) + "\n")
    stream.flush()


def handle(request: Any, cache: WarmCache, replies: IO[str], build_parser: ParserFactory) -> None:
    """Run one request, writing its progress and its result or error to ``replies``."""
    from .cli_args import ArgumentError

    ident = request.get("id") if isinstance(request, dict) else None
    argv = request.get("argv") if isinstance(request, dict) else None
    token = request.get("input_token") if isinstance(request, dict) else None

    def end(payload: dict, click: bool = True) -> None:  # what the server holds, after the bound
        _reply(replies, {"id": ident, **payload, "held_input": cache.held_token(click)})

    unknown = unknown_fields_message(request) if isinstance(request, dict) else None
    if unknown:  # before anything runs: a misspelt field would be silently dropped
        end({"error": unknown, "status": EXIT_USER_ERROR})
        return
    ending = request.get("quit", False) if isinstance(request, dict) else False
    if not isinstance(ending, bool):  # "yes" or 1 ran the request's argv as a segmentation
        message = f"bad request: quit must be true or false, got {ending!r}"
        end({"error": message, "status": EXIT_USER_ERROR})
        return
    if ending:  # {"quit": true, "argv": [...]}: the run was dropped without a reply
        message = 'bad request: quit comes alone; send the request, then {"quit": true}'
        end({"error": message, "status": EXIT_USER_ERROR})
        return
    if not isinstance(argv, list):
        end({"error": "bad request: no argv list", "status": EXIT_USER_ERROR})
        return
    if not all(isinstance(a, str) for a in argv):  # was "no argv list" too: [1, 2] is a list
        end({"error": argv_items_message(argv), "status": EXIT_USER_ERROR})
        return
    if not all(_is_os_text(a) for a in argv):  # JSON carries what no command line can
        message = "bad request: an argument holds a NUL character or text that is not valid Unicode"
        end({"error": message, "status": EXIT_USER_ERROR})
        return
    if token is not None and not isinstance(token, str):
        end({"error": "bad request: input_token is not a string", "status": EXIT_USER_ERROR})
        return
    if token is not None and not token.strip():  # "" would read as "nothing held" to a
        message = "bad request: input_token is empty or blank"  # truthiness test; " " likewise
        end({"error": message, "status": EXIT_USER_ERROR})
        return
    if any(_asks_for_help(a) for a in (argv[: argv.index("--")] if "--" in argv else argv)):
        end({"error": "bad request: --help is not a request", "status": EXIT_USER_ERROR})
        return

    progress = _RequestProgress(replies, ident)
    try:  # whatever argparse would print (nothing since the checks above) is dropped
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            args = build_parser().parse_args(["segment", *argv, "--progress-json"])
    except ArgumentError as error:
        end({"error": str(error), "status": EXIT_USER_ERROR})
        return
    except SystemExit:  # an argparse action that exits (none is left in `segment`)
        end({"error": "bad request arguments", "status": EXIT_USER_ERROR})
        return
    try:
        end(_run(args, progress, cache, token), click=bool(args.point))
    finally:  # the memory bound, whatever the outcome (warm_cache.py)
        cache.after_request(click=bool(args.point))


class _RequestProgress:
    """One request's progress replies, and ``warn``: ``{"id": N, "warning": "..."}`` as soon as
    a warning is known, each once (early_warnings.py)."""

    def __init__(self, replies: IO[str], ident: Any) -> None:
        self.replies, self.ident = replies, ident
        self.warn = EarlyWarnings(self._warning)

    def _warning(self, message: str) -> None:
        _reply(self.replies, {"id": self.ident, "warning": message})

    def __call__(self, stage: str, done: int, total: int) -> None:
        payload = {"id": self.ident, "stage": stage, "done": int(done), "total": int(total)}
        _reply(self.replies, payload)


def _is_os_text(arg: str) -> bool:
    """False for text that a path or a command line cannot hold: a NUL ('embedded null byte'
    from every os call, an internal error before; tester 12) or a lone surrogate such as
    ``\\ud800`` (UnicodeEncodeError). Surrogates that stand for undecodable bytes of a real file
    name (``\\udc80``-``\\udcff``, Python's surrogateescape) are kept."""
    if "\x00" in arg:
        return False
    try:
        arg.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    return True


def _asks_for_help(arg: str) -> bool:
    """True for ``-h``, ``--help`` and the abbreviations argparse reads as it (``--he``; no other
    `segment` option starts with ``--h``): argparse would print the help and exit."""
    name = arg.split("=", 1)[0]
    return name == "-h" or (len(name) >= 3 and "--help".startswith(name))


def _run(args, progress, cache: WarmCache, token: Optional[str]) -> dict:
    """``run_segment`` for one request; returns its final reply (without id): its result or
    its error and exit status."""
    from .cli_segment import run_segment
    from .errors import CancelledError, UNetPlusPlusError

    try:
        return {"result": run_segment(args, progress, cache=cache, input_token=token)}
    except CancelledError as error:
        return {"error": str(error), "status": EXIT_CANCELLED}
    except UNetPlusPlusError as error:
        return {"error": str(error), "status": EXIT_USER_ERROR}
    except MemoryError:
        message = "Out of memory. Use a region of interest or a shallower depth."
        return {"error": message, "status": EXIT_USER_ERROR}
    except Exception as error:  # noqa: BLE001 - the server outlives a failed request
        message = f"internal error ({type(error).__name__}: {error}); please report it"
        return {"error": message, "status": EXIT_INTERNAL_ERROR}


def serve(
    requests: IO[str],
    replies: IO[str],
    build_parser: ParserFactory,
    cache: Optional[WarmCache] = None,
) -> int:
    """Answer JSON-line ``requests`` on ``replies`` until ``{"quit": true}`` or end of input;
    returns the exit status, 0. ``build_parser``: the `unetpp` parser factory (``cli``'s), which
    parses every request's ``segment`` arguments; ``cache``: what is kept between requests (a new
    one by default)."""
    cache = WarmCache() if cache is None else cache
    parser = functools.cache(build_parser)  # made once, at the first request: parsing keeps it

    _reply(replies, {"ready": True, "pid": os.getpid()})

    def refuse(message: str) -> None:  # the keys of every final reply (held_input too)
        payload = {"error": message, "status": EXIT_USER_ERROR}
        _reply(replies, {"id": None, **payload, "held_input": cache.held_token(True)})

    waiting = _read_lines(requests)
    idle_pending = False  # a request ran since the last idle probe
    replied = None  # the CPU reading when the last request ended (cpu_contention)
    while True:
        try:
            line = waiting.get(timeout=IDLE_PROBE_AFTER_S if idle_pending else None)
        except queue.Empty:
            line = _pause(waiting, cache, replied)
            if line is _PROBED:
                idle_pending = False
                continue
        if line is None:  # the end of the input
            break
        if line is _TOO_LONG:
            refuse(f"bad request: a line longer than {MAX_LINE} characters")
            continue
        line = line.removeprefix(_BOM)  # Windows tools (PowerShell, Notepad) start with one
        if not line.strip():
            continue
        try:
            request = parse_request(line)
        except ValueError:
            refuse("bad request: not JSON")
            continue
        if _quits(request):
            break
        with contextlib.redirect_stdout(sys.stderr):
            handle(request, cache, replies, parser)
        idle_pending, replied = True, cpu_contention.read()
    return 0


_PROBED = object()  # what _pause returns once it ran the idle probe


def _pause(waiting: queue.Queue, cache: WarmCache, replied: Any) -> Any:
    """:data:`IDLE_PROBE_AFTER_S` after a reply with no request: the idle probe now, or, while
    other programs leave fewer free CPUs than the model's threads, once no request came for
    :data:`BUSY_PROBE_AFTER_S`. Returns the line that came first (the probe is left for the
    next pause), else :data:`_PROBED`."""
    if _cores_shared(replied, cache.threads()):
        try:
            return waiting.get(timeout=BUSY_PROBE_AFTER_S - IDLE_PROBE_AFTER_S)
        except queue.Empty:
            pass
    _idle_probe(cache, lambda: not waiting.empty())
    return _PROBED


def _cores_shared(since: Any, threads: int) -> bool:
    """Whether other programs used the CPUs since ``since`` (a ``cpu_contention`` reading) so
    that fewer than ``threads`` were left free; False without readings (not Linux)."""
    now = cpu_contention.read()
    others = None if since is None or now is None else cpu_contention.others_cores(since, now)
    if others is None:
        return False
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return cpus - others < threads


_BOM = "\ufeff"  # a UTF-8 byte order mark, as decoded: accepted before a request


def _quits(request: Any) -> bool:
    """``{"quit": true}`` with known fields only: not "no", not 1 (refused by :func:`handle`),
    and ``{"quit": true, "bogus": 1}`` or ``{"quit": true, "argv": [...]}`` is refused there too
    rather than quitting."""
    return (
        isinstance(request, dict)
        and request.get("quit") is True
        and unknown_fields_message(request) is None
        and set(request) <= {"id", "quit"}
    )


def _line_reader(lines: Iterable[str]) -> Callable[[int], str]:
    """``readline(size)`` over an iterable of whole lines (a generator in tests): "" at the
    end; ``size`` is not applied (the lines are already in memory)."""
    remaining = iter(lines)
    return lambda _size: next(remaining, "")


_TOO_LONG = object()  # stands for a line over MAX_LINE characters, never held in memory


def _read_lines(requests: IO[str]) -> queue.Queue:
    """The lines of ``requests``, read by a daemon thread into a queue (None: the end;
    ``_TOO_LONG`` for a line over MAX_LINE characters, read past in pieces), so that the server
    can tell whether a request is waiting while it probes."""
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        readline = getattr(requests, "readline", None) or _line_reader(requests)
        try:
            while True:
                line = readline(MAX_LINE + 1)
                if not line:
                    break
                if len(line) > MAX_LINE and not line.endswith("\n"):  # skip the rest, unheld
                    while line and not line.endswith("\n"):
                        line = readline(MAX_LINE + 1)
                    line = _TOO_LONG
                lines.put(line)
        finally:
            lines.put(None)

    threading.Thread(target=read, name="unetpp-serve-input", daemon=True).start()
    return lines


def _idle_probe(cache: WarmCache, stop: Callable[[], bool]) -> None:
    """``cache.idle_probe(stop)``; a failure there is logged, never the end of the server (the
    probe is only an optimisation: the tiles run on ours without it)."""
    try:
        with contextlib.redirect_stdout(sys.stderr):
            cache.idle_probe(stop)
    except Exception:  # noqa: BLE001 - the server outlives a failed probe
        _LOG.warning("the idle probe failed; tiles run on the built-in CPU path", exc_info=True)


def run_serve(args: argparse.Namespace, progress: Any) -> int:
    """`unetpp serve`: answer stdin's requests on stdout; ``progress`` is unused (every request
    reports its own progress in its replies). Its OpenMP threads sleep between parallel regions
    whatever the load at its start (``runtime_env.prefer_passive``): it lives as long as the
    Slicer module, beside Slicer's own main thread."""
    runtime_env.prefer_passive()
    utf8_streams(sys.stdin, sys.stdout)
    return serve(sys.stdin, sys.stdout, args.build_parser)


def utf8_streams(*streams: IO[str]) -> None:
    """Read and write the protocol's JSON lines as UTF-8 (RFC 8259 section 8.1), whatever the
    system's code page: on Windows stdin and stdout default to it (cp1252), so a request naming
    ``Bücher/ct.nii.gz`` sent as UTF-8 would arrive garbled. Bytes that are not UTF-8 become
    U+FFFD (the request is then refused as not JSON or its file not found), instead of ending
    the server. Streams without ``reconfigure`` (tests' StringIO) are left as they are."""
    for stream in streams:
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(encoding="utf-8", errors="replace")


def add_serve_parser(subparsers: Any, build_parser: ParserFactory) -> None:
    """Add `serve` to the `unetpp` sub-commands; ``build_parser`` makes the parser that every
    request's arguments go through (the CLI passes its own, so this module never imports it)."""
    parser = subparsers.add_parser(
        "serve",
        help="answer segmentation requests (JSON lines on stdin/stdout), keeping the model loaded",
    )
    parser.set_defaults(handler=run_serve, build_parser=build_parser)
