"""End to end, warm: requests to one ``unetpp serve`` process, as the Slicer module sends them.

The Slicer module keeps one engine process alive (``unetpp serve``, ``cli_serve.py``), so a
user's second and later Segment runs and nodule clicks pay neither the interpreter start, nor
``import torch``, nor loading the model, nor (same volume) reading the input files again.
:class:`WarmServer` starts that process once and sends it requests: the argv of the one-shot
case (``e2e.run_case``) minus the program name, each with its own ``-o``. A request is timed
from sending it to its result line and split by stage with ``e2e.STAGES`` as the one-shot runs
are; the first request of a fresh server is timed from starting the process, so it includes
Python's start, the imports and loading the model (what the first click costs).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Callable, Optional

from . import machine
from .e2e import row_name, split_by_stage
from .load import competing_load

LOAD_RAMP_S = 0.5  # the busy processes run this long before a loaded request is sent


class WarmServer:
    """One ``python -m UNetPlusPlusLib.cli serve`` process; ``request`` sends it one run.

    ``env`` is the child's environment (``runtime_env.child_env()`` plus thread counts and
    PYTHONPATH). Raises RuntimeError when the process exits or answers something unexpected.
    Use it as a context manager: ``close`` ends the process and removes its outputs' folder.
    """

    def __init__(self, env: dict, python: str = sys.executable) -> None:
        self.started = time.perf_counter()
        self.requests = 0
        self._folder = Path(tempfile.mkdtemp(prefix="unetpp-warm-"))
        self._stderr: IO[str] = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
        self.process = subprocess.Popen(
            [python, "-m", "UNetPlusPlusLib.cli", "serve"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        try:
            ready = self._next_line()
            if not ready.get("ready"):
                raise RuntimeError(f"unetpp serve: expected the ready line, got {ready}")
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> WarmServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(
        self, case: dict, threads: int, depth: str = "rec", output: Optional[Path] = None
    ) -> dict:
        """Run ``case`` ({"inputs": [...], "args": [...]}, as ``e2e.cases`` gives) at ``depth``
        ("rec" = the model's, or "1".."4"); writes ``output`` (default: a file in the server's
        temporary folder, removed afterwards).

        Returns {"seconds": s, "split": {stage: s}, "depth": k, "first": bool} (wall seconds
        from sending the request, or from starting the process for its first request, to the
        result line). Raises RuntimeError with the server's error or stderr when it fails.
        """
        self.requests += 1
        ident = self.requests
        target = Path(output) if output is not None else self._folder / f"r{ident}.seg.nrrd"
        argv = [*case["inputs"], *case["args"], "--threads", str(threads)]
        argv += (["--depth", depth] if depth != "rec" else []) + ["-o", str(target)]
        first = ident == 1
        sent = time.perf_counter()
        self.process.stdin.write(json.dumps({"id": ident, "argv": argv}) + "\n")
        self.process.stdin.flush()
        begin = self.started if first else sent
        stamps: dict[str, float] = {}
        while True:
            reply = self._next_line()
            now = time.perf_counter() - begin
            if reply.get("id") != ident:
                continue
            if "stage" in reply:
                stamps.setdefault(reply["stage"], now)
            elif "error" in reply:
                status = reply.get("status")
                raise RuntimeError(f"unetpp serve request failed ({status}): {reply['error']}")
            elif "result" in reply:
                result = reply["result"]
                break
        if output is None:
            target.unlink(missing_ok=True)
        return {
            "seconds": now,
            "split": split_by_stage(stamps, now),
            "depth": result.get("depth"),
            "first": first,
        }

    def close(self) -> None:
        """Ask the server to quit (end of its input), kill it after 10 s, remove the outputs."""
        process = self.process if hasattr(self, "process") else None
        if process is not None and process.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process is not None and process.stdout is not None:
            process.stdout.close()
        self._stderr.close()
        shutil.rmtree(self._folder, ignore_errors=True)

    def _next_line(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            self._stderr.seek(0)
            tail = self._stderr.read()[-2000:]
            raise RuntimeError(f"unetpp serve exited ({self.process.returncode}): {tail}")
        try:
            return json.loads(line)
        except ValueError:
            raise RuntimeError(f"unetpp serve wrote a line that is not JSON: {line!r}") from None


def warm_runs(
    found: dict[str, dict],
    threads: int,
    env: dict,
    depths: dict[str, list[str]],
    rounds: int,
    conditions: tuple[str, ...] = ("idle", "loaded"),
    log: Callable[[str], None] = lambda message: None,
) -> dict[str, dict]:
    """Warm requests to one fresh server, case after case in the order of ``found``.

    Per case a first request at the model's depth (the server's very first one includes its
    start-up), then ``rounds`` rounds of one request per depth of ``depths[case]`` (default
    ["rec"]) and condition ("idle"; "loaded" = under ``load.competing_load(2)``), interleaved.
    Returns {"NAME:first": run, "ROW:condition": best run, ...} (ROW = ``e2e.row_name``), each as
    ``WarmServer.request`` gives it, plus "load" (the load average just after it) and, for
    the best, "rounds" (the seconds of every round).
    """
    results: dict[str, dict] = {}
    with WarmServer(env) as server:
        for name, case in found.items():
            first = server.request(case, threads)
            first["load"] = machine.load_average()
            results[f"{name}:first"] = first
            log(f"  warm {name}: first request {first['seconds']:.2f} s (load {first['load']})")
            for _ in range(rounds):
                for depth in depths.get(name, ["rec"]):
                    for condition in conditions:
                        run = _timed(server, case, threads, depth, condition == "loaded")
                        key = f"{row_name(name, depth)}:{condition}"
                        best = results.get(key)
                        seconds = (best["rounds"] if best else []) + [run["seconds"]]
                        if best is None or run["seconds"] < best["seconds"]:
                            best = run
                        results[key] = {**best, "rounds": seconds}
                        log(f"  warm {key}: {run['seconds']:.2f} s (load {run['load']})")
    return results


def _timed(server: WarmServer, case: dict, threads: int, depth: str, loaded: bool) -> dict:
    busy = competing_load(2) if loaded else contextlib.nullcontext()
    with busy:
        if loaded:
            time.sleep(LOAD_RAMP_S)
        run = server.request(case, threads, depth)
    run["load"] = machine.load_average()
    return run
