"""`unetpp devices [--json]`: the devices the engine can run on, one per line or as JSON.

The Slicer module asks this of the engine's process (``adapter/device_list.py``) so that torch
and CUDA are never imported into Slicer's own process just to fill the device selector.
"""

from __future__ import annotations

import argparse
import json


def run_devices(args: argparse.Namespace, progress) -> dict:
    """Print ``[{"id", "name", "memory"}, ...]`` (memory in bytes or null) or a table."""
    from .engine.devices import describe_devices

    devices = describe_devices()
    if args.json:
        print(json.dumps(devices), flush=True)
        return {}
    for device in devices:
        memory = device.get("memory")
        size = f"  ({memory / 2**30:.0f} GiB)" if isinstance(memory, (int, float)) else ""
        print(f"{device['id']}: {device['name']}{size}")
    return {}


def add_devices_parser(subparsers) -> None:
    parser = subparsers.add_parser("devices", help="list the devices the engine can run on")
    parser.add_argument("--json", action="store_true", help="one JSON list on stdout")
    parser.set_defaults(handler=run_devices)
