"""CPU seconds to inflate a gzip image file: the standard library's zlib against zlib-ng.

``engine/inflate_stream.py`` inflates with zlib-ng where it is installed. This times the same
``decompressobj(16 + 15).decompress`` loop the reader runs (4 MiB reads of the file, every gzip
member's CRC and length checked) with each module, in alternating rounds, and checks that the
two give the same bytes. Default file: the end-to-end bench's 512x512x300 liver CT
(``benchlib.e2e.ct_512``, made from the LiTS volume in ../shared/data on first use).

    python bench/inflate_cost.py [--file CT.nii.gz] [--rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
import zlib
from pathlib import Path

READ = 4 << 20  # inflate_stream._READ


def inflate(module, data: bytes) -> tuple[float, float, str]:
    """(CPU-s, wall s, sha256 of the inflated bytes) of one pass over ``data``."""
    cpu, wall = time.process_time(), time.perf_counter()
    member, digest = module.decompressobj(16 + zlib.MAX_WBITS), hashlib.sha256()
    rest = b""
    for start in range(0, len(data), READ):
        rest += data[start : start + READ]
        while rest:
            digest.update(member.decompress(rest))
            rest = member.unconsumed_tail or member.unused_data
            if member.eof and rest:  # another gzip member
                member = module.decompressobj(16 + zlib.MAX_WBITS)
            elif not member.unconsumed_tail:
                break
    return time.process_time() - cpu, time.perf_counter() - wall, digest.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    path = args.file
    if path is None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from benchlib.e2e import ct_512

        path = ct_512()
        if path is None:
            print("no --file and no ../shared/data LiTS volume to make the liver CT from")
            return 1
    from zlib_ng import zlib_ng

    data = path.read_bytes()
    times: dict[str, list[float]] = {"zlib": [], "zlib-ng": []}
    digests = set()
    for _ in range(max(1, args.rounds)):
        for name, module in (("zlib", zlib), ("zlib-ng", zlib_ng)):
            cpu, wall, digest = inflate(module, data)
            times[name].append(cpu)
            digests.add(digest)
            print(f"{name:8s} {cpu:.3f} CPU-s {wall:.3f} s")
    same = "identical" if len(digests) == 1 else "DIFFERENT"
    zlib_s, ng_s = statistics.median(times["zlib"]), statistics.median(times["zlib-ng"])
    print(
        f"{path.name} ({len(data) / 1e6:.1f} MB): median zlib {zlib_s:.3f} CPU-s, zlib-ng "
        f"{ng_s:.3f} CPU-s ({zlib_s / ng_s:.2f}x); inflated bytes {same}"
    )
    return 0 if len(digests) == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
