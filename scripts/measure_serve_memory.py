#!/usr/bin/env python
"""Resident memory of ``unetpp serve`` between requests (issue 14, the warm engine's bound).

Writes a synthetic int16 CT of the given size (uncompressed NRRD, as the Slicer module writes
its inputs) and sends one ``unetpp serve`` process, in order: a whole-volume request, a click
(``--point`` at the centre) and a whole-volume request again, with the sphere test model (the
model is tiny, so what stays resident is the volume and the engine's buffers). After each reply
it sends a request that fails at once (a missing file): its reply means the server has finished
the previous request's clean-up, and then the server's VmRSS is read from /proc. Which code runs
is whatever ``UNetPlusPlusLib`` the environment imports (run it with PYTHONPATH set to another
checkout to compare).

    PYTHONPATH=$PWD/UNetPlusPlus python scripts/measure_serve_memory.py [--size 512 512 300]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "Testing" / "fixtures" / "sphere_model" / "model.json"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def write_ct(path: Path, size_xyz: tuple[int, int, int]) -> None:
    import SimpleITK as sitk

    rng = np.random.default_rng(0)
    array = rng.integers(-1000, 400, size=tuple(reversed(size_xyz)), dtype=np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.7, 0.7, 1.25))
    sitk.WriteImage(image, str(path), useCompression=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=3, default=(512, 512, 300), metavar="N")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        ct = Path(folder) / "ct.nrrd"
        write_ct(ct, tuple(args.size))
        centre = [str(s * n / 2) for s, n in zip((0.7, 0.7, 1.25), args.size)]
        centre = [str(-float(centre[0])), str(-float(centre[1])), centre[2]]  # RAS of the centre
        base = [str(ct), "--model", str(MODEL), "--device", "cpu", "--threads", "2"]
        out = ["--labelmap", str(Path(folder) / "labels.nrrd")]
        server = subprocess.Popen(
            [sys.executable, "-m", "UNetPlusPlusLib.cli", "serve"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        ident = 0

        def ask(argv: list[str]) -> dict:
            nonlocal ident
            ident += 1
            server.stdin.write(json.dumps({"id": ident, "argv": argv}) + "\n")
            server.stdin.flush()
            for line in server.stdout:
                reply = json.loads(line)
                if reply.get("id") == ident and ("result" in reply or "error" in reply):
                    return reply
            raise SystemExit("the server stopped")

        json.loads(server.stdout.readline())  # ready
        print(f"volume {args.size[0]}x{args.size[1]}x{args.size[2]} int16, float32 in the engine "
              f"{np.prod(args.size) * 4 / 2**20:.0f} MiB")  # fmt: skip
        print(f"started:              {rss_mib(server.pid):7.0f} MiB")
        steps = [("whole volume", base), ("click", [*base, "--point", *centre]),
                 ("whole volume again", base)]  # fmt: skip
        for name, argv in steps:
            reply = ask([*argv, *out])
            if "error" in reply:
                raise SystemExit(reply["error"])
            ask(["missing.nrrd", "--model", str(MODEL), *out])  # after the clean-up
            print(f"after {name + ':':20s} {rss_mib(server.pid):5.0f} MiB")
        server.stdin.close()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
