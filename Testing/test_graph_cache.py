"""Old export keys' graph folders are pruned (engine/graph_cache.py): a torch upgrade left
``<sha256>/f2-opset17-torch<old>`` behind for good. Only this project's layout, another key
than the running one, and unused (written, touched or read) for STALE_DAYS days."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from UNetPlusPlusLib.engine import graph_cache
from UNetPlusPlusLib.engine.graph_cache import STALE_DAYS, mark_used, prune

NOW = time.time()
CURRENT = "f2-opset17-torch2.13.0"
OLD = "f2-opset17-torch2.11.0"
SHA_A, SHA_B = "a" * 64, "b" * 64


def _folder(root: Path, sha: str, key: str, days_ago: float, read_days_ago=None) -> Path:
    """A fake graph folder whose graph and folder were last written ``days_ago``, the graph
    last read ``read_days_ago`` (default: when written)."""
    folder = root / sha / key
    folder.mkdir(parents=True)
    graph = folder / "L2.onnx"
    graph.write_bytes(b"graph")
    written = NOW - days_ago * 86400
    read = NOW - (days_ago if read_days_ago is None else read_days_ago) * 86400
    os.utime(graph, (read, written))
    os.utime(folder, (written, written))
    return folder


def test_only_another_keys_unused_folders_are_pruned(tmp_path):
    old_a = _folder(tmp_path, SHA_A, OLD, STALE_DAYS + 5)
    current = _folder(tmp_path, SHA_A, CURRENT, STALE_DAYS + 5)  # the running key: kept
    recent = _folder(tmp_path, SHA_B, OLD, STALE_DAYS - 5)  # another install wrote it lately
    read = _folder(tmp_path / "r", SHA_B, OLD, STALE_DAYS + 5, read_days_ago=1)  # loaded lately
    other = _folder(tmp_path, "notes", OLD, STALE_DAYS + 5)  # not a weights sha256
    mine = _folder(tmp_path, SHA_B, "f2-opset17-mine", STALE_DAYS + 5)  # not an export key
    assert prune(tmp_path, CURRENT, now=NOW) == [old_a]
    assert not old_a.exists() and current.is_dir() and recent.is_dir()
    assert other.is_dir() and mine.is_dir()
    assert prune(tmp_path / "r", CURRENT, now=NOW) == [] and read.is_dir()


def test_a_weights_folder_left_empty_goes_too_and_a_link_is_never_followed(tmp_path):
    old = _folder(tmp_path / "cache", SHA_A, OLD, STALE_DAYS + 1)
    elsewhere = _folder(tmp_path / "elsewhere", SHA_B, OLD, STALE_DAYS + 1)
    (tmp_path / "cache" / SHA_B).symlink_to(elsewhere.parent)
    assert prune(tmp_path / "cache", CURRENT, now=NOW) == [old]
    assert not (tmp_path / "cache" / SHA_A).exists()  # empty: removed
    assert elsewhere.is_dir()  # behind a symbolic link: kept
    assert prune(tmp_path / "missing", CURRENT, now=NOW) == []  # no cache yet: nothing


def test_using_a_folder_keeps_it(tmp_path):
    old = _folder(tmp_path, SHA_A, OLD, STALE_DAYS + 5)
    mark_used(old)  # what the older torch's install does each time it loads a graph
    assert prune(tmp_path, CURRENT) == [] and old.is_dir()
    mark_used(tmp_path / "absent")  # no folder yet: nothing, no error


def test_the_executors_folder_is_marked_and_the_cache_pruned_once(tmp_path, monkeypatch):
    from UNetPlusPlusLib.engine.onnx_export import export_key

    monkeypatch.setenv("UNETPP_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(graph_cache, "_pruned", False)
    graphs = tmp_path / "home" / "graphs"
    old = _folder(graphs, SHA_A, OLD, STALE_DAYS + 5)
    mine = _folder(graphs, SHA_B, export_key(), STALE_DAYS + 5)
    assert graph_cache.graph_folder_in_use(SHA_B) == mine
    assert not old.exists() and NOW - mine.stat().st_mtime < 3600  # marked as used now
    again = _folder(graphs, SHA_A, OLD, STALE_DAYS + 5)
    graph_cache.graph_folder_in_use(SHA_B)
    assert again.is_dir()  # once per process


@pytest.mark.parametrize("name", ["f2-opset17-torch2.6.0", "f3-opset18-torch2.13.0a0"])
def test_export_keys_of_this_project_are_recognised(tmp_path, name):
    old = _folder(tmp_path, SHA_A, name, STALE_DAYS + 1)
    assert prune(tmp_path, CURRENT, now=NOW) == [old]
