"""The device list comes from the engine's process, in the background, and is cached."""

from __future__ import annotations

import json
import sys
import time

import pytest
from UNetPlusPlusLib.adapter import device_list, panel


def poll_until_ready(query, timeout=120.0):
    deadline = time.monotonic() + timeout
    while (devices := query.poll()) is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return devices


def test_cli_lists_devices_as_json(capsys):
    """In this process (the entry point ``-m UNetPlusPlusLib.cli devices --json`` in a process of
    its own is what DeviceQuery runs in the tests below)."""
    from UNetPlusPlusLib.cli import main

    assert main(["devices", "--json"]) == 0
    devices = json.loads(capsys.readouterr().out)
    assert devices[0]["id"] == "cpu" and devices[0]["name"]
    assert all(set(d) == {"id", "name", "memory"} for d in devices)


def test_query_answers_in_the_background_and_is_cached(monkeypatch):
    monkeypatch.setattr(device_list, "_CACHE", {})
    query = device_list.DeviceQuery(sys.executable)
    started = time.perf_counter()
    assert query.poll() is None  # the first call only starts the engine's process
    assert time.perf_counter() - started < 0.5
    devices = poll_until_ready(query)
    assert devices[0]["id"] == "cpu" and query.error is None

    again = device_list.DeviceQuery(sys.executable)
    assert again.poll() == devices and again._process is None  # no second process


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX script as the interpreter")
def test_a_broken_engine_leaves_the_cpu_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setattr(device_list, "_CACHE", {})
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho 'CUDA driver initialisation failed' >&2\nexit 1\n")
    broken.chmod(0o755)
    query = device_list.DeviceQuery(str(broken))
    assert poll_until_ready(query) == device_list.CPU_ONLY
    assert "CUDA driver initialisation failed" in query.error
    assert str(broken) not in device_list._CACHE  # a later session asks again


def test_device_choices_name_each_gpu():
    devices = [
        {"id": "cpu", "name": "AMD EPYC", "memory": 2**34},
        {"id": "cuda:0", "name": "NVIDIA H200", "memory": 141 * 2**30},
    ]
    assert panel.device_choices(devices) == [
        ("auto (GPU if available)", "auto"),
        ("CPU (AMD EPYC)", "cpu"),
        ("GPU 0: NVIDIA H200, 141 GiB", "cuda:0"),
    ]
    assert [c[1] for c in panel.device_choices(None)] == ["auto", "cpu"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX script as the interpreter")
def test_a_query_stopped_by_shutdown_asks_again_later(tmp_path, monkeypatch):
    """An engine that answers after a second (the real one's answer, a torch import, is tested
    by test_query_answers_in_the_background_and_is_cached)."""
    monkeypatch.setattr(device_list, "_CACHE", {})
    slow = tmp_path / "python"
    answer = '[{"id": "cpu", "name": "Slow CPU", "memory": null}]'
    slow.write_text(f"#!/bin/sh\nsleep 1\necho '{answer}'\n")
    slow.chmod(0o755)
    query = device_list.DeviceQuery(str(slow))
    assert query.poll() is None
    first = query._process
    query.close()  # scene close before the engine answered
    assert first.wait(timeout=5) < 0  # killed, not left to answer
    assert query.poll() is None and query.error is None  # asked again, not "CPU only"
    assert query._process is not first
    assert poll_until_ready(query) == json.loads(answer) and query.error is None


def test_device_table_lines_have_single_spaces():
    """`unetpp devices` printed "cpu: AMD EPYC  (24 GiB)" (tester, session 20)."""
    from UNetPlusPlusLib.cli_devices import device_line

    assert device_line({"id": "cpu", "name": "AMD EPYC", "memory": 24 * 2**30}) == (
        "cpu: AMD EPYC (24 GiB)"
    )
    assert device_line({"id": "cpu", "name": "", "memory": 24 * 2**30}) == "cpu: (24 GiB)"
    assert device_line({"id": "mps", "name": " Apple  GPU ", "memory": None}) == "mps: Apple GPU"
