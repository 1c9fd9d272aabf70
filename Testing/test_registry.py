"""Model registry: search folders, and installs from folders, zips and a local HTTP server."""

from __future__ import annotations

import functools
import http.server
import os
import socket
import threading
import zipfile
from pathlib import Path

import pytest
import torch
from UNetPlusPlusLib.engine import registry
from UNetPlusPlusLib.engine.manifest import (
    ModelManifest,
    load_weights,
    save_model_package,
    sha256_file,
)
from UNetPlusPlusLib.errors import ChecksumError, UNetPlusPlusError

NETWORK = {"in_channels": 1, "out_channels": 2, "features": [4, 8, 16, 32, 64, 4]}


def make_package(folder: Path, name: str = "liver-test", task: str = "liver", seed: int = 0):
    """A real model package: a small network's random weights (install checks that the weights
    fit the network of the manifest, so a hand-made state dict no longer installs)."""
    from UNetPlusPlusLib.engine.network import UNetPlusPlus3D

    torch.manual_seed(seed)
    state = UNetPlusPlus3D.from_config(NETWORK).state_dict()
    manifest = ModelManifest.from_dict(
        {
            "format_version": 1,
            "name": name,
            "task": task,
            "sha256": "0" * 64,
            "network": NETWORK,
            "channels": [{"name": "CT", "modality": "CT", "normalization": {"kind": "mr"}}],
            "labels": [{"value": 1, "name": "liver", "color": [1, 0, 0]}],
            "spacing": [2, 2, 2],
            "tile_size": [32, 32, 32],  # 16^3: one voxel at depth 4, refused
            "overlap": 0.25,
            "depths": [1, 2, 3, 4],
            "recommended_depth": 4,
        }
    )
    save_model_package(folder, state, manifest)
    return state


def zip_folder(folder: Path, archive: Path, top: str = "liver-test", extra=()) -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.iterdir()):
            zf.write(path, f"{top}/{path.name}" if top else path.name)
        for entry_name, data in extra:
            zf.writestr(entry_name, data)
    return archive


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def served(tmp_path):
    """A threaded HTTP server on 127.0.0.1 (random port) serving tmp_path/www."""
    root = tmp_path / "www"
    root.mkdir()

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


def assert_no_leftovers(cache: Path):
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]


# ------------------------------------------------------------------------------ URL installs
def test_install_zip_from_url(tmp_path, served, cache):
    root, base = served
    state = make_package(tmp_path / "pkg")
    archive = zip_folder(tmp_path / "pkg", root / "liver-test.zip")
    calls = []
    manifest = registry.install_model(
        f"{base}/liver-test.zip",
        expected_sha256=sha256_file(archive),
        cache_dir=cache,
        progress=lambda stage, done, total: calls.append((stage, done, total)),
    )
    assert manifest.path == cache / "liver-test" / "model.json"
    weights = load_weights(manifest)
    torch.testing.assert_close(weights, dict(state))
    assert calls[-1] == ("download", archive.stat().st_size, archive.stat().st_size)
    assert {stage for stage, _, _ in calls} == {"download"}
    assert_no_leftovers(cache)


def test_install_model_json_url_fetches_weights_beside_it(tmp_path, served, cache):
    root, base = served
    state = make_package(root / "models" / "liver")
    manifest = registry.install_model(f"{base}/models/liver/model.json", cache_dir=cache)
    assert sorted(p.name for p in manifest.path.parent.iterdir()) == [
        "model.json",
        "weights.safetensors",
    ]
    torch.testing.assert_close(load_weights(manifest), dict(state))


def test_tampered_weights_refused_and_cache_unchanged(tmp_path, served, cache):
    root, base = served
    make_package(tmp_path / "good")
    zip_folder(tmp_path / "good", root / "good.zip")
    registry.install_model(f"{base}/good.zip", cache_dir=cache)
    before = snapshot(cache)

    make_package(tmp_path / "bad", seed=1)
    weights = tmp_path / "bad" / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    zip_folder(tmp_path / "bad", root / "bad.zip")
    with pytest.raises(ChecksumError, match="expected sha256"):
        registry.install_model(f"{base}/bad.zip", cache_dir=cache)
    assert snapshot(cache) == before
    assert_no_leftovers(cache)


def test_archive_checksum_pin(tmp_path, served, cache):
    root, base = served
    make_package(tmp_path / "pkg")
    zip_folder(tmp_path / "pkg", root / "p.zip")
    with pytest.raises(ChecksumError, match="p.zip") as info:
        registry.install_model(f"{base}/p.zip", expected_sha256="1" * 64, cache_dir=cache)
    assert list(cache.iterdir()) == []
    # the staging file's name meant nothing: "Model archive package.zip does not match" (tester 16)
    assert f"Model archive {base}/p.zip does not match" in str(info.value), info.value


def test_weights_that_do_not_fit_are_named_by_their_file(tmp_path, cache):
    """Named by its file, not as "the package/weights.safetensors" (tester 16)."""
    state = make_package(tmp_path / "pkg")
    manifest = ModelManifest.load(tmp_path / "pkg" / "model.json")
    state["bogus.weight"] = torch.zeros(3)
    save_model_package(tmp_path / "pkg", state, manifest)
    with pytest.raises(UNetPlusPlusError, match="unexpected tensor") as info:
        registry.install_model(str(tmp_path / "pkg"), cache_dir=cache)
    assert "The weights in weights.safetensors do not fit" in str(info.value), info.value


def test_http_404_is_a_clear_error(served, cache):
    _, base = served
    with pytest.raises(UNetPlusPlusError, match="HTTP 404") as info:
        registry.install_model(f"{base}/missing.zip", cache_dir=cache)
    assert f"{base}/missing.zip" in str(info.value)
    assert list(cache.iterdir()) == []


def test_a_redirect_loop_is_one_line(cache):
    """urllib's reason for a redirect loop spans three lines; errors are one line (tester 12:
    a server redirecting to itself printed 'error: ... infinite loop.' then two more lines)."""

    class Loop(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(302)
            self.send_header("Location", "/loop.zip")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Loop)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/loop.zip"
        with pytest.raises(UNetPlusPlusError, match="HTTP 302 .*infinite loop") as info:
            registry.install_model(url, cache_dir=cache, timeout=5)
    finally:
        server.shutdown()
        server.server_close()
    assert "\n" not in str(info.value) and str(info.value).endswith("check the address.")
    assert list(cache.iterdir()) == []


def test_missing_weights_beside_model_json_url(tmp_path, served, cache):
    root, base = served
    make_package(root / "m")
    (root / "m" / "weights.safetensors").unlink()
    with pytest.raises(UNetPlusPlusError, match="HTTP 404"):
        registry.install_model(f"{base}/m/model.json", cache_dir=cache)
    assert list(cache.iterdir()) == []


def test_zip_with_parent_entries_refused(tmp_path, served, cache):
    root, base = served
    make_package(tmp_path / "pkg")
    zip_folder(tmp_path / "pkg", root / "evil.zip", extra=[("../evil.txt", b"x")])
    with pytest.raises(UNetPlusPlusError, match="unsafe entry '../evil.txt'"):
        registry.install_model(f"{base}/evil.zip", cache_dir=cache)
    assert not (cache.parent / "evil.txt").exists()
    assert list(cache.iterdir()) == []


def test_download_that_is_not_a_zip(served, cache):
    root, base = served
    (root / "page.zip").write_text("<html>not found</html>")
    with pytest.raises(UNetPlusPlusError, match="not a .zip"):
        registry.install_model(f"{base}/page.zip", cache_dir=cache)


def test_timeout_is_a_clear_error(cache):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts the connection in the backlog but never answers
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/m.zip"
        with pytest.raises(UNetPlusPlusError, match="no answer within 0.5 s"):
            registry.install_model(url, cache_dir=cache, timeout=0.5)
    finally:
        silent.close()


def test_a_server_trickling_bytes_is_a_stall_not_a_hang(tmp_path, cache):
    """A server sending a byte at a time never let a read wait for the socket timeout, so the
    install ran for as long as the file took at that rate, saying nothing (tester 16: 6.6 MB at
    a byte every 2 s). Fewer than MIN_BYTES_PER_TIMEOUT bytes in ``timeout`` s is a stall."""
    import time

    make_package(tmp_path / "pkg")
    data = zip_folder(tmp_path / "pkg", tmp_path / "m.zip").read_bytes()

    class Trickle(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:  # 5 s of it, then the connection ends (before: 'stopped after 100 of')
                for i in range(100):
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:  # the client gave up
                pass

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/m.zip"
        with pytest.raises(UNetPlusPlusError, match=r"it stalled \(\d+ bytes in the last 1 s"):
            registry.install_model(url, cache_dir=cache, timeout=1)
    finally:
        server.shutdown()
        server.server_close()
    assert list(cache.iterdir()) == []


def test_connection_refused_is_a_clear_error(cache):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(UNetPlusPlusError, match="Could not download"):
        registry.install_model(f"http://127.0.0.1:{port}/m.zip", cache_dir=cache, timeout=2)


def test_a_url_of_another_scheme_is_refused_as_such(cache):
    """ftp:// was taken for a path: "Model source ftp:/host/m.zip does not exist"."""
    for url in ("ftp://host/m.zip", "s3://bucket/m.zip", "file:///tmp/m.zip"):
        with pytest.raises(UNetPlusPlusError, match="only http:// and https:// URLs") as raised:
            registry.install_model(url, cache_dir=cache)
        assert url in str(raised.value) and "does not exist" not in str(raised.value)


# ---------------------------------------------------------------------------- local installs
def test_install_from_folder_zip_and_manifest(tmp_path, cache):
    make_package(tmp_path / "pkg")
    (tmp_path / "pkg" / "CARD.md").write_text("model card")
    from_folder = registry.install_model(str(tmp_path / "pkg"), cache_dir=cache)
    assert (from_folder.path.parent / "CARD.md").read_text() == "model card"

    make_package(tmp_path / "flat", name="flat-zip")
    archive = zip_folder(tmp_path / "flat", tmp_path / "flat.zip", top="")
    assert registry.install_model(str(archive), cache_dir=cache).name == "flat-zip"

    make_package(tmp_path / "single", name="single-json")
    single = registry.install_model(str(tmp_path / "single" / "model.json"), cache_dir=cache)
    assert load_weights(single)
    assert sorted(p.name for p in cache.iterdir()) == ["flat-zip", "liver-test", "single-json"]


def test_reinstall_replaces_previous_copy(tmp_path, cache):
    make_package(tmp_path / "v1", seed=1)
    registry.install_model(str(tmp_path / "v1"), cache_dir=cache)
    (cache / "liver-test" / "stale.txt").write_text("old")
    state = make_package(tmp_path / "v2", seed=2)
    with pytest.warns(UserWarning, match="Replaced the installed model"):
        manifest = registry.install_model(str(tmp_path / "v2"), cache_dir=cache)
    torch.testing.assert_close(load_weights(manifest), dict(state))
    assert not (cache / "liver-test" / "stale.txt").exists()
    assert_no_leftovers(cache)


def test_missing_local_source(tmp_path, cache):
    with pytest.raises(UNetPlusPlusError, match="does not exist"):
        registry.install_model(str(tmp_path / "nope"), cache_dir=cache)


@pytest.mark.parametrize("name", ["m.zip", "m.download"])
def test_a_truncated_local_zip_is_named_an_archive(tmp_path, cache, name):
    """A cut .zip is no zip file for ``zipfile``, so it was read as a model.json: "Model
    manifest m.zip cannot be read: 'utf-8' codec can't decode byte..." (tester 16)."""
    make_package(tmp_path / "pkg")
    data = zip_folder(tmp_path / "pkg", tmp_path / "whole.zip").read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(UNetPlusPlusError, match=r"is not a readable \.zip \(truncated"):
        registry.install_model(str(tmp_path / name), cache_dir=cache)
    assert list(cache.iterdir()) == []


# --------------------------------------------------------------------------------- finding
@pytest.fixture
def model_env(tmp_path, monkeypatch):
    extra = tmp_path / "extra"
    home = tmp_path / "home"
    make_package(extra / "liver", name="liver-extra")
    make_package(extra / "nodule", name="nodule-extra", task="lung-nodule")
    broken = extra / "broken"
    broken.mkdir()
    (broken / "model.json").write_text("{")
    # an empty entry (a trailing separator) is no folder named: left out, not refused
    monkeypatch.setenv("UNETPP_MODELS", os.pathsep.join([str(extra), ""]))
    monkeypatch.setenv("UNETPP_HOME", str(home))
    return extra, home


def test_model_dirs_order(model_env):
    extra, home = model_env
    assert registry.user_cache_dir() == home / "models"
    dirs = registry.model_dirs()
    assert dirs[0] == extra
    assert all(d.is_dir() for d in dirs)
    home.joinpath("models").mkdir(parents=True)
    assert registry.model_dirs()[:2] == [extra, home / "models"]


def test_list_and_find_models(model_env):
    extra, _ = model_env
    with pytest.warns(UserWarning, match="broken"):
        names = [m.name for m in registry.list_models()]
    assert names[:2] == ["liver-extra", "nodule-extra"]
    with pytest.warns(UserWarning):
        assert registry.find_model("lung-nodule").name == "nodule-extra"
        assert registry.find_model("liver-extra").task == "liver"
        assert registry.find_model("liver").path == extra / "liver" / "model.json"
        assert registry.find_model(str(extra / "nodule")).name == "nodule-extra"


def test_find_unknown_model_lists_available(model_env):
    with pytest.warns(UserWarning):
        with pytest.raises(UNetPlusPlusError, match=r"'spleen'.*liver \(liver-extra\)"):
            registry.find_model("spleen")


def test_installed_models_are_found(tmp_path, model_env):
    make_package(tmp_path / "pkg", name="kidney-test", task="kidney")
    registry.install_model(str(tmp_path / "pkg"))  # default cache: $UNETPP_HOME/models
    with pytest.warns(UserWarning):
        found = registry.find_model("kidney")
    assert found.path == registry.user_cache_dir() / "kidney-test" / "model.json"


def test_continued_training_of_the_same_model_is_not_fine_tuned_from_itself(
    tmp_path, monkeypatch, capsys
):
    """The shipped models continued from their first version (--init, same name): `models
    list` must not call them "fine-tuned from" themselves, and a task name still finds them."""
    monkeypatch.delenv("UNETPP_MODELS", raising=False)
    monkeypatch.setenv("UNETPP_HOME", str(tmp_path / "home"))
    for name in ("liver", "lung-nodule", "brain-tumor"):
        shipped = registry.find_model(name)
        assert shipped.training["fine_tuned_from"]["name"] == shipped.name
        assert registry.fine_tuned_from(shipped) is None
    make_package(tmp_path / "own", name="liver-own")
    manifest = ModelManifest.load(tmp_path / "own" / "model.json")
    manifest.training = {"fine_tuned_from": {"name": "liver-parent", "task": "liver"}}
    assert registry.fine_tuned_from(manifest) == "liver-parent"
    from UNetPlusPlusLib import cli

    assert cli.main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "liver: liver-ct" in out and "fine-tuned from" not in out


def test_an_edited_manifest_is_refused_at_install_naming_no_staging_folder(tmp_path):
    """The training contract refused an edited model.json at install with the path of the
    hidden staging copy (``<cache>/.install-xxxx/package/model.json``; tester 9)."""
    import json

    package = tmp_path / "edited"
    make_package(package)
    manifest = json.loads((package / "model.json").read_text())
    manifest["spacing"] = [3.0, 3.0, 3.0]
    (package / "model.json").write_text(json.dumps(manifest))
    cache = tmp_path / "cache"
    with pytest.raises(UNetPlusPlusError) as error:
        registry.install_model(str(package), cache_dir=cache)
    message = str(error.value)
    assert message.startswith(f"Cannot install the model from {package}: Model manifest ")
    assert "model.json does not describe its weights (spacing:" in message
    assert ".install-" not in message and str(cache) not in message
    assert not any(cache.iterdir())


def test_reinstall_of_other_weights_says_which_model_it_replaced(
    tmp_path, cache, capsys, monkeypatch
):
    """A second fine-tune installed under the same name (the Slicer loop names it after the
    cases folder) replaced the first one without a word (tester 10); the same package again
    says nothing."""
    import warnings

    from UNetPlusPlusLib.cli import main

    # a task no shipped model has: the CLI's install adds no "--task liver now segments with"
    make_package(tmp_path / "v1", task="liver-test-task", seed=1)
    make_package(tmp_path / "v2", task="liver-test-task", seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning for a first install or the same package
        first = registry.install_model(str(tmp_path / "v1"), cache_dir=cache)
        registry.install_model(str(tmp_path / "v1"), cache_dir=cache)
    with pytest.warns(UserWarning, match="Replaced the installed model 'liver-test'") as said:
        second = registry.install_model(str(tmp_path / "v2"), cache_dir=cache)
    assert first.sha256[:12] in str(said[0].message) and second.sha256[:12] in str(said[0].message)
    monkeypatch.setenv("UNETPP_HOME", str(tmp_path / "home"))
    assert main(["models", "install", "--no-prepare", str(tmp_path / "v1")]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(["models", "install", "--no-prepare", str(tmp_path / "v2")]) == 0
    err = capsys.readouterr().err
    assert err.count("warning: Replaced the installed model 'liver-test'") == 1, err


def test_an_unwritable_model_cache_is_one_user_error(tmp_path, capsys, monkeypatch):
    """A model cache that takes no folder (under a file, under /proc or /sys, read-only) ended
    `unetpp models install` with 'internal error (NotADirectoryError ...); please report it',
    exit 1 (tester 12). UNETPP_HOME itself on a file is refused earlier (_checked_home)."""
    from UNetPlusPlusLib.cli import main

    good = tmp_path / "good"
    make_package(good)
    home = tmp_path / "a_file"
    home.write_text("not a folder")
    with pytest.raises(UNetPlusPlusError, match=r"Cannot install the model into .*a_file"):
        registry.install_model(str(good), cache_dir=home / "models")
    assert home.read_text() == "not a folder"
    if not Path("/proc/self").is_dir():
        pytest.skip("the command-line half needs Linux /proc (a place no folder can be made)")
    monkeypatch.setenv("UNETPP_HOME", f"/proc/unetpp-test-{tmp_path.name}")
    assert main(["models", "install", "--no-prepare", str(good)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: Cannot install the model into /proc/") and "\n" not in err
    assert "UNETPP_HOME" in err and "internal error" not in err
