"""The `unetpp` command line: `segment`, `models`, `train`, `devices`, `serve` and `review`.

User errors (`UNetPlusPlusError`, bad options) print as one line, `error: ...`, and exit with
status 2. With `--progress-json`, progress goes to stdout as JSON lines (`{"stage": "infer",
"done": 3, "total": 8}`) and `{"warning": "..."}`, then `{"result": {...}}` or `{"error":
"..."}`; the Slicer module reads them. Warnings (the engine's, and Python's, e.g. a skipped
DICOM slice) print as one `warning: ...` line each on stderr as soon as they are known (those
about the input before the model loads; early_warnings.py), each once; the Slicer module shows
them in its log. A closed output pipe (`| head`) ends
the command quietly. Coordinates are RAS millimetres, as 3D Slicer shows them, unless `--lps`.

The sub-commands live in cli_segment.py (its options: cli_segment_options.py), cli_models.py,
cli_devices.py, cli_serve.py, cli_review.py and training/cli.py;
option types in cli_args.py; output checks and all-or-nothing writing in cli_outputs.py; exit
statuses in exit_codes.py. Nothing
here imports torch: `segment` waits for it only after every option, output path and input has
been checked (run as a program, it imports torch on a background thread meanwhile,
torch_preload.py; an error is still reported without waiting for that import).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import traceback
import warnings
from typing import List, Optional

from . import torch_preload
from .cli_args import ArgumentError, Parser
from .cli_devices import add_devices_parser
from .cli_models import add_models_parser
from .cli_review import add_review_parser
from .cli_segment_options import add_segment_parser
from .cli_serve import add_serve_parser
from .device_check import refusal_without_torch
from .early_warnings import EarlyWarnings
from .errors import CancelledError, UNetPlusPlusError
from .exit_codes import EXIT_BROKEN_PIPE, EXIT_CANCELLED, EXIT_INTERNAL_ERROR, EXIT_USER_ERROR


# ---------------------------------------------------------------------------- progress output
class JsonProgress:
    """Progress as JSON lines on stdout, for the Slicer module's background runner; ``warn``
    writes ``{"warning": "..."}`` as soon as a warning is known (early_warnings.py)."""

    def __init__(self) -> None:
        self.warn = EarlyWarnings(lambda message: self.emit({"warning": message}))

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.emit({"stage": stage, "done": int(done), "total": int(total)})

    @staticmethod
    def emit(payload: dict) -> None:
        sys.stdout.write(json.dumps(payload) + "\n")
        sys.stdout.flush()

    def close(self) -> None:
        pass


class BarProgress:
    """A tqdm bar per stage on stderr; ``warn`` prints ``warning: ...`` there as soon as a
    warning is known, ``--quiet`` or not (early_warnings.py)."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.stage: Optional[str] = None
        self.bar = None
        self.warn = EarlyWarnings(self._print_warning)

    def _print_warning(self, message: str) -> None:
        if self.bar is not None:  # above the bar, which stays
            from tqdm import tqdm

            tqdm.write(f"warning: {message}", file=sys.stderr)
        else:
            print(f"warning: {message}", file=sys.stderr, flush=True)

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        if stage.startswith("fallback"):
            tqdm.write(f"warning: {stage.split(':', 1)[-1].strip()}", file=sys.stderr)
            return
        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(
                total=total,
                desc=stage,
                unit="tile" if stage == "infer" else "step",
                file=sys.stderr,
                leave=False,
                disable=None,  # no bar when stderr is not a terminal
            )
        if self.bar is not None:
            self.bar.total = total
            self.bar.n = done
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# ---------------------------------------------------------------------------- train
def _add_train_parser(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train or fine-tune a model on a dataset")
    try:
        from .training.cli import add_train_arguments, run_train
    except ImportError as error:  # the training package is optional at run time
        parser.set_defaults(handler=None, import_error=str(error))
        return
    add_train_arguments(parser)
    parser.set_defaults(handler=lambda args, progress: run_train(args))


# ---------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = Parser(
        prog="unetpp", description="3D UNet++ segmentation (Zhou et al., IEEE TMI 2019)."
    )
    parser.add_argument("--version", action="version", version=f"unetpp {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_segment_parser(subparsers)
    add_models_parser(subparsers)
    _add_train_parser(subparsers)
    add_devices_parser(subparsers)
    add_serve_parser(subparsers, build_parser)
    add_review_parser(subparsers)
    return parser


class _Warnings:
    """Python warnings as one ``warning: ...`` line each on stderr, each message once."""

    def __init__(self) -> None:
        self.seen: set = set()

    def __call__(self, message, category, filename, lineno, file=None, line=None) -> None:
        text = " ".join(str(message).split())
        if text not in self.seen:
            self.seen.add(text)
            print(f"warning: {text}", file=sys.stderr, flush=True)


def _quiet_broken_pipe() -> int:
    """The reader of stdout went away (`unetpp models info liver | head`): stop quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush cannot fail
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP reached `unetpp`: unwound like Ctrl-C, so staged outputs are removed.
    ``signal_name``: "SIGTERM" or "SIGHUP"."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(f"Stopped by {signal_name}; nothing was written.")
        self.signal_name = signal_name


def _raise_terminated(signum: int, frame) -> None:
    raise Terminated(signal.Signals(signum).name)


def stop_like_ctrl_c_on_termination() -> None:
    """Make SIGTERM (``kill``, ``timeout``, a batch scheduler) and SIGHUP (a closed terminal)
    unwind the run as Ctrl-C does: every staged output and created folder is removed and the
    command exits with status 3. Their default action killed the process at once and left the
    hidden temporary outputs (``.unetpp-*``) and new folders behind. A signal the caller set to
    be ignored (``nohup``) stays ignored. Main thread only (Python's rule for handlers)."""
    for name in ("SIGTERM", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is not None and signal.getsignal(number) == signal.SIG_DFL:
            signal.signal(number, _raise_terminated)


def main(argv: Optional[List[str]] = None) -> int:
    """Run `unetpp`; returns the exit status (0 ok, 2 user error, 3 cancelled, 1 a bug).

    Run as a program (``argv`` None: the ``unetpp`` script, ``python -m UNetPlusPlusLib.cli``),
    ``segment`` imports torch on a background thread from the moment its options are parsed
    (``torch_preload``), and ends the process itself once every output is closed and
    stdout and stderr are flushed: the interpreter's teardown with torch loaded took about
    0.5 s of every run, a third of a nodule click (docs/BENCHMARK_E2E.md, "End to end"), and an
    input error need not wait for the import to finish. Not under a profiler or tracer
    (``python -m cProfile``, coverage), which write their results at exit."""
    from .engine import runtime_env

    runtime_env.apply()  # before anything imports torch: no OpenMP busy-waiting under load
    program = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    if program:
        stop_like_ctrl_c_on_termination()
        if [a for a in argv if not a.startswith("-")][:1] == ["train"]:
            from .engine.glibc_malloc import keep_freed_buffers

            keep_freed_buffers()  # a training process: reuse freed buffers (glibc only)
    try:
        with warnings.catch_warnings():  # the filters stay as they are; only the display
            warnings.showwarning = _Warnings()
            code = _main(argv, preload=program)
    except BrokenPipeError:
        return _quiet_broken_pipe()
    command = [a for a in argv if not a.startswith("-")][:1]
    traced = sys.getprofile() is not None or sys.gettrace() is not None  # cProfile, coverage
    torch_loading = "torch" in sys.modules or torch_preload.started()
    if program and command == ["segment"] and torch_loading and not traced:
        _exit_now(code)  # also when an input error came while torch was still importing
    return code


def _exit_now(code: int) -> None:
    """End the process without the interpreter's teardown; returns if a stream cannot be
    flushed (the caller then exits normally)."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    os._exit(code)


#: Commands that read images through ITK.
_IMAGE_COMMANDS = ("segment", "serve", "review", "train")


def _hide_itk_warnings() -> None:
    """Turn ITK's own warning display off for this process: its raw "WARNING: In
    /tmp/SimpleITK-build/..." lines (e.g. a NIfTI's "unexpected scales in sform") reached
    stderr beside our one-line warnings; what matters in them is ours now
    (engine/nifti_spacing.py, nifti_transforms.py). ITK's errors still raise."""
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalWarningDisplay(False)


def _main(argv: List[str], preload: bool = False) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except ArgumentError as error:
        if "--progress-json" in argv:
            JsonProgress.emit({"error": str(error)})
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    refused = refusal_without_torch(getattr(args, "device", None))  # refused in the run
    if args.command == "serve":
        # serve sleeps in OpenMP barriers whatever the load; chosen before the preload thread
        # imports torch, which decides at that import (importing SimpleITK below took long
        # enough for the thread to decide "spin" first)
        from .engine import runtime_env

        runtime_env.prefer_passive()
    if preload and args.command in ("segment", "serve") and refused is None:  # torch imports
        torch_preload.start()  # while the inputs are read (serve: for the first request)
    if args.command in _IMAGE_COMMANDS:
        _hide_itk_warnings()
    json_mode = bool(getattr(args, "progress_json", False))
    progress = JsonProgress() if json_mode else BarProgress(getattr(args, "quiet", False))

    def fail(message: str, code: int) -> int:
        progress.close()
        if json_mode:
            JsonProgress.emit({"error": message})
        print(f"error: {message}", file=sys.stderr)
        return code

    if args.handler is None:
        return fail(f"training is unavailable: {args.import_error}", EXIT_USER_ERROR)
    try:
        result = args.handler(args, progress)
    except BrokenPipeError:
        raise
    except CancelledError as error:
        return fail(str(error), EXIT_CANCELLED)
    except KeyboardInterrupt as error:  # Ctrl-C, or SIGTERM / SIGHUP (Terminated)
        if isinstance(error, Terminated) and args.command == "train":
            # a stopped training keeps its checkpoint for --resume (training/output_guard.py
            # says so): "nothing was written" followed that warning (tester 9)
            return fail(f"Stopped by {error.signal_name}.", EXIT_CANCELLED)
        return fail(str(error) or "Cancelled by the user.", EXIT_CANCELLED)
    except (UNetPlusPlusError, ArgumentError) as error:
        return fail(str(error), EXIT_USER_ERROR)
    except MemoryError:
        return fail(
            "Out of memory. Use a region of interest or a shallower depth.", EXIT_USER_ERROR
        )
    except Exception as error:  # noqa: BLE001 - last resort: one line, traceback on request
        if args.debug:
            traceback.print_exc()
        return fail(
            f"internal error ({type(error).__name__}: {error}); "
            "please report it, with the output of --debug",
            EXIT_INTERNAL_ERROR,
        )
    progress.close()
    if isinstance(result, int):
        return result
    # every warning was said through progress.warn during the run (run_segment says those about
    # the result last); the summary line only counts them
    warnings_all = result.get("warnings") or []
    if json_mode and args.command == "segment":
        JsonProgress.emit({"result": result})
    elif args.command == "segment":
        outputs = ", ".join(v for v in result["outputs"].values() if v)
        volumes = ", ".join(f"{k} {v} ml" for k, v in result["volumes_ml"].items())
        tta = " with test-time augmentation" if result.get("tta") else ""
        count = len(dict.fromkeys(warnings_all))
        said = f"; {count} warning{'s' if count > 1 else ''} above" if count else ""
        print(
            f"segmented with {result['model']} at depth {result['depth']}{tta} on "
            f"{result['device']} in {result['seconds']:.1f} s: {volumes}; wrote {outputs}{said}"
        )
        if result.get("agreement"):
            agreement = ", ".join(f"{k} {v:.2f}" for k, v in result["agreement"].items())
            if (result.get("anatomy") or {}).get("passed") is False:  # agreeing, yet misplaced
                agreement += " (not a sign of a right result: the segment failed the anatomy check)"
            print(f"agreement between the {result['heads']} heads (mean Dice): {agreement}")
    sys.stdout.flush()  # a closed pipe shows up here, inside main, not at interpreter exit
    return 0


if __name__ == "__main__":
    sys.exit(main())
