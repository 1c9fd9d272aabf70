"""The options of ``bench/run``, apart from the measurement code so that ``bench/run --help``
prints the usage without importing torch (4 s of CPU)."""

from __future__ import annotations

import argparse


def parse_args(argv: list[str]) -> argparse.Namespace:
    """``bench/run``'s options; ``--help`` prints the usage and exits (SystemExit 0)."""
    parser = argparse.ArgumentParser(
        prog="bench/run",
        description="Our UNet++ against MONAI BasicUNetPlusPlus on the same volume, weights, "
        "tile, overlap and threads (issue 6).",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a 96x128x128 volume, one round, fewer executor rounds and a 64^3 tile for the "
        "large network's executor rows, 2 warm rounds end to end (about 10 min on 2 idle cores)",
    )
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="fresh-process repetitions per configuration, best kept (default 1 quick, 2 full)",
    )
    parser.add_argument(
        "--size",
        type=int,
        nargs=3,
        metavar=("Z", "Y", "X"),
        default=None,
        help="volume size (default 160 160 160, quick 96 128 128)",
    )
    parser.add_argument(
        "--no-models", action="store_true", help="skip the installed default models"
    )
    parser.add_argument(
        "--no-executors",
        action="store_true",
        help="skip the executor rows (idle and loaded) and the end-to-end runs",
    )
    return parser.parse_args(argv)
