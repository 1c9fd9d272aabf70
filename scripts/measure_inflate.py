"""CPU seconds to inflate a gzip file with stdlib zlib, python-isal and python-zlib-ng.

One fresh process per (library, file) measurement, the libraries interleaved round by round;
each process reads the file (not timed), then inflates it whole in 1 MiB reads as the engine
does (``decompressobj(31)``, members followed) and prints ``time.process_time`` of that and a
count of the bytes (all libraries must give the same). Usage::

    python scripts/measure_inflate.py ROUNDS FILE.gz [FILE.gz ...]

Libraries that are not importable are skipped. Prints per-file medians and the load average.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

_CHILD = r"""
import importlib, json, sys, time
lib, path = sys.argv[1], sys.argv[2]
modules = {"zlib": "zlib", "isal": "isal.isal_zlib", "zlib_ng": "zlib_ng.zlib_ng"}
zlib = importlib.import_module(modules[lib])
data = open(path, "rb").read()
total = 0
start = time.process_time()
view, pos, inflater = memoryview(data), 0, zlib.decompressobj(31)
pending = b""
while pos < len(data) or pending:
    if not pending:
        pending, pos = view[pos : pos + (1 << 20)], pos + (1 << 20)
    out = inflater.decompress(pending)
    total += len(out)
    pending = inflater.unused_data if inflater.eof else b""
    if inflater.eof:
        if pending[:2] != b"\x1f\x8b":
            break
        inflater = zlib.decompressobj(31)
cpu = time.process_time() - start
print(json.dumps({"cpu": cpu, "bytes": total}))
"""


def main() -> None:
    rounds, files = int(sys.argv[1]), sys.argv[2:]
    libs = []
    for lib, module in (("zlib", "zlib"), ("isal", "isal"), ("zlib_ng", "zlib_ng")):
        probe = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True)
        if probe.returncode == 0:
            libs.append(lib)
    results: dict = {(f, lib): [] for f in files for lib in libs}
    sizes = {}
    for r in range(rounds):
        order = libs if r % 2 == 0 else libs[::-1]
        for path in files:
            for lib in order:
                out = subprocess.run(
                    [sys.executable, "-c", _CHILD, lib, path],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                row = json.loads(out.stdout)
                results[(path, lib)].append(row["cpu"])
                sizes.setdefault(path, set()).add(row["bytes"])
    print(f"load average {os.getloadavg()}; {rounds} rounds; libraries {libs}")
    for path in files:
        assert len(sizes[path]) == 1, "the libraries gave different byte counts"
        base = statistics.median(results[(path, "zlib")])
        for lib in libs:
            med = statistics.median(results[(path, lib)])
            pairs = zip(results[(path, lib)], results[(path, "zlib")])
            paired = statistics.median(a / b for a, b in pairs)
            print(
                f"{os.path.basename(path)} ({os.path.getsize(path) / 1e6:.1f} MB -> "
                f"{next(iter(sizes[path])) / 1e6:.1f} MB) {lib}: "
                f"median {med:.3f} CPU-s ({med / base:.2f} x zlib; median of the rounds' "
                f"ratios {paired:.2f}), runs " + " ".join(f"{v:.3f}" for v in results[(path, lib)])
            )


if __name__ == "__main__":
    main()
