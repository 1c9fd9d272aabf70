"""`unetpp devices [--json]`: the devices the engine can run on, one per line or as JSON.

The Slicer module asks this of the engine's process (``adapter/device_list.py``) so that torch
and CUDA are never imported into Slicer's own process just to fill the device selector.
"""

from __future__ import annotations

import argparse
import json


def run_devices(args: argparse.Namespace, progress) -> dict:
    """Print ``[{"id", "name", "memory"}, ...]`` (memory in bytes or null) or a table. Where
    CUDA cannot exist (``engine/cuda_presence.py``: a CPU-only torch build, or Linux without
    an NVIDIA driver; never on macOS) the list is the CPU alone, without importing torch (4.4
    CPU-s of the 4.6 the command took); elsewhere torch is asked."""
    from .engine.cuda_presence import cuda_impossible

    if cuda_impossible() is not None:
        from .engine.system_memory import cpu_name, physical_memory_bytes

        devices = [{"id": "cpu", "name": cpu_name(), "memory": physical_memory_bytes()}]
    else:
        from .engine.devices import describe_devices

        devices = describe_devices()
    if args.json:
        print(json.dumps(devices), flush=True)
        return {}
    for device in devices:
        print(device_line(device))
    return {}


def device_line(device: dict) -> str:
    """One table line, ``"cpu: AMD EPYC (24 GiB)"``: single spaces, an empty or missing name
    or memory (bytes, or None) left out rather than leaving a double space."""
    memory = device.get("memory")
    size = f"({memory / 2**30:.0f} GiB)" if isinstance(memory, (int, float)) else ""
    name = " ".join(str(device.get("name") or "").split())
    return " ".join(part for part in (f"{device['id']}:", name, size) if part)


def add_devices_parser(subparsers) -> None:
    parser = subparsers.add_parser("devices", help="list the devices the engine can run on")
    parser.add_argument("--json", action="store_true", help="one JSON list on stdout")
    parser.set_defaults(handler=run_devices)
