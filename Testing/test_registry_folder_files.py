"""`unetpp models install` refuses, before copying, what a package folder cannot hold
(engine/package_files.py, tester 16): the copy followed links, so a weights file linked to
/dev/zero was copied without end (2.4 GB in 4 s into the model cache, until the disk was full);
a FIFO gave shutil's list of errors; a link to a folder was entered. And a download that never
ends."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_registry import make_package
from UNetPlusPlusLib.engine import model_download, registry
from UNetPlusPlusLib.engine.package_files import check_folder_files
from UNetPlusPlusLib.errors import UNetPlusPlusError

pytestmark = pytest.mark.skipif(os.name != "posix", reason="links, FIFOs and /dev/zero")


def _zero_weights(folder: Path) -> None:
    (folder / "weights.safetensors").unlink()
    (folder / "weights.safetensors").symlink_to("/dev/zero")


def _zero_extra(folder: Path) -> None:
    (folder / "notes.txt").symlink_to("/dev/zero")


def _fifo(folder: Path) -> None:
    os.mkfifo(folder / "pipe")


def _folder_link(folder: Path) -> None:
    (folder / "more").symlink_to(folder.parent)  # a loop, too


def _dangling(folder: Path) -> None:
    (folder / "gone").symlink_to(folder / "nowhere")


CASES = {
    "weights-linked-to-dev-zero": (_zero_weights, "weights.safetensors, which is not a regular"),
    "a-file-linked-to-dev-zero": (_zero_extra, "notes.txt, which is not a regular file"),
    "a-fifo": (_fifo, "pipe, which is not a regular file"),
    "a-link-to-a-folder": (_folder_link, "more, a link to a folder"),
    "a-dangling-link": (_dangling, "gone, which cannot be read"),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_a_folder_with_a_special_entry_is_refused_before_copying(tmp_path, kind):
    folder = tmp_path / "pkg"
    make_package(folder)
    damage, message = CASES[kind]
    damage(folder)
    cache = tmp_path / "cache"
    with pytest.raises(UNetPlusPlusError, match="Model source .* holds ") as info:
        registry.install_model(str(folder), cache_dir=cache)
    assert message in str(info.value) and "\n" not in str(info.value), info.value
    assert list(cache.iterdir()) == []  # no staging folder left, nothing installed


def test_a_link_to_a_regular_file_is_copied_as_the_file(tmp_path):
    source = tmp_path / "elsewhere"
    make_package(source)
    folder = tmp_path / "pkg"
    folder.mkdir()
    for name in ("model.json", "weights.safetensors"):
        (folder / name).symlink_to(source / name)
    manifest = registry.install_model(str(folder), cache_dir=tmp_path / "cache")
    assert not Path(manifest.weights_path).is_symlink()
    assert Path(manifest.weights_path).read_bytes() == (source / "weights.safetensors").read_bytes()


def test_a_folder_beyond_the_size_limit_is_refused_and_training_state_is_not_counted(tmp_path):
    folder = tmp_path / "pkg"
    make_package(folder)
    (folder / "checkpoint").mkdir()
    (folder / "checkpoint" / "model.safetensors").write_bytes(b"\0" * 10_000_000)
    size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    check_folder_files(folder, {"checkpoint"}, size)  # the checkpoint is left out of the copy
    with pytest.raises(UNetPlusPlusError, match=f"holds {size} bytes of files, more than"):
        check_folder_files(folder, {"checkpoint"}, size - 1)


@pytest.mark.parametrize("announced", [True, False])
def test_a_download_larger_than_a_package_is_stopped(tmp_path, monkeypatch, announced):
    """A server streaming without end filled the disk at 200 MB/s (tester 16); a download
    stops past MAX_DOWNLOAD_BYTES, or at once when Content-Length says more."""
    import http.server
    import threading

    class Endless(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            if announced:
                self.send_header("Content-Length", str(10 << 20))
            self.end_headers()
            try:
                for _ in range(10):
                    self.wfile.write(b"\0" * (1 << 20))
            except OSError:  # the client gave up
                pass

        def log_message(self, *args):
            pass

    monkeypatch.setattr(model_download, "MAX_DOWNLOAD_BYTES", 1 << 20)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    cache = tmp_path / "cache"
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/m.zip"
        with pytest.raises(UNetPlusPlusError, match="larger than a model package may be"):
            registry.install_model(url, cache_dir=cache, timeout=10)
    finally:
        server.shutdown()
        server.server_close()
    assert list(cache.iterdir()) == []
