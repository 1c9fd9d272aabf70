"""Download progress of `unetpp models install URL` (download_progress.py): it showed nothing
while a model downloaded. A tqdm bar on a terminal, a plain line per tenth (or every 5 s)
otherwise, nothing with --quiet; from a local HTTP server on 127.0.0.1, as test_registry's
URL installs."""

from __future__ import annotations

import io
import re

from test_registry import make_package, served, zip_folder  # noqa: F401 - a fixture
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.download_progress import EVERY_S, DownloadProgress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _install(tmp_path, served, monkeypatch, *options):  # noqa: F811 - the fixture's value
    root, base = served
    # a task no shipped model has: the install adds no "--task liver now segments with"
    # warning to the stderr these tests read
    make_package(tmp_path / "pkg", task="liver-test-task")
    archive = zip_folder(tmp_path / "pkg", root / "liver-test.zip")
    monkeypatch.setenv("UNETPP_HOME", str(tmp_path / "home"))
    code = main(["models", "install", "--no-prepare", f"{base}/liver-test.zip", *options])
    return code, archive.stat().st_size


def test_a_url_install_says_its_progress_on_stderr(tmp_path, served, monkeypatch, capsys):  # noqa: F811
    code, size = _install(tmp_path, served, monkeypatch)
    captured = capsys.readouterr()
    assert code == 0 and captured.out.startswith("installed liver-test")
    lines = captured.err.strip().splitlines()
    assert lines[0].startswith("download: 0 % (0.0 MB of ") and len(lines) <= 11, lines
    assert lines[-1] == f"download: 100 % ({size / 1e6:.1f} MB of {size / 1e6:.1f} MB)"
    percents = [int(re.match(r"download: (\d+) %", line).group(1)) for line in lines]
    assert percents == sorted(set(percents))


def test_quiet_says_nothing(tmp_path, served, monkeypatch, capsys):  # noqa: F811
    code, _ = _install(tmp_path, served, monkeypatch, "--quiet")
    captured = capsys.readouterr()
    assert code == 0 and captured.err == "" and captured.out.startswith("installed liver-test")


def test_a_line_per_tenth_and_every_few_seconds():
    now = [0.0]
    stream = io.StringIO()
    progress = DownloadProgress(stream, clock=lambda: now[0])
    for done in (0, 50, 99, 100, 150, 420, 999, 1000):
        progress("download", done, 1000)
    assert stream.getvalue().splitlines() == [
        f"download: {p} % (0.0 MB of 0.0 MB)" for p in (0, 10, 42, 99, 100)
    ]
    stream.seek(0), stream.truncate()
    progress("download", 0, 0)  # a second file, of unknown size: now and then, and at the end
    progress("download", 2_000_000, 0)
    now[0] += EVERY_S
    progress("download", 3_000_000, 0)
    progress.close()
    assert stream.getvalue().splitlines() == [
        "download: 0.0 MB (size unknown)",
        "download: 3.0 MB (size unknown)",
        "download: 3.0 MB (size unknown)",
    ]


def test_a_terminal_gets_a_bar_and_quiet_nothing():
    terminal = _Terminal()
    progress = DownloadProgress(terminal)
    for done in (0, 512 * 1024, 1024 * 1024):
        progress("download", done, 1024 * 1024)
    progress.close()
    assert "download" in terminal.getvalue() and "\r" in terminal.getvalue()
    assert "/1.00M" in terminal.getvalue() and "B/s" in terminal.getvalue()  # bytes, a rate
    silent = _Terminal()
    quiet = DownloadProgress(silent, quiet=True)
    quiet("download", 0, 10), quiet("download", 10, 10), quiet.close()
    assert silent.getvalue() == ""


def test_no_download_no_line():
    stream = io.StringIO()
    DownloadProgress(stream).close()
    assert stream.getvalue() == ""
