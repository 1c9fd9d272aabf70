"""Child processes: their own process group, UTF-8 environment, and the Windows tree kill."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from UNetPlusPlusLib.adapter import process


def test_child_environment_is_utf8_with_the_package_first(monkeypatch):
    monkeypatch.setenv("PYTHONIOENCODING", "cp1252")
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    env = process.child_environment()
    assert env["PYTHONIOENCODING"] == "utf-8" and env["PYTHONUNBUFFERED"] == "1"
    assert env["PYTHONPATH"].split(os.pathsep) == [str(process.package_root()), "/elsewhere"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")
def test_a_child_leads_its_own_process_group(tmp_path):
    code = "import os; print(os.getpgid(0) == os.getpid() != os.getpgid(os.getppid()))"
    child = process.spawn([sys.executable, "-c", code], cwd=tmp_path)
    out, _ = child.communicate(timeout=60)
    assert out.strip() == "True"


class FakeProcess:
    pid = 4321
    killed = False

    def poll(self):
        return None

    def kill(self):
        self.killed = True


def test_windows_kills_the_tree_with_taskkill_without_psutil(monkeypatch):
    started = []
    monkeypatch.setattr(process, "_WINDOWS", True)
    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil -> ImportError
    monkeypatch.setattr(subprocess, "Popen", lambda command, **kw: started.append(command))
    child = FakeProcess()
    process.kill_tree(child)
    assert started == [["taskkill", "/T", "/F", "/PID", "4321"]]
    assert not child.killed  # taskkill needs the parent alive to find its children
