"""The graph cache's records (engine/graph_record.py): a cached graph that is not the one its
name says (copied over, truncated, without a record, of other weights) is exported again, with
one notice, and depth=k still gives head k; an untouched cache is used as it is. Real files,
the tiny sphere model, the real libraries (skipped when not installed)."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from UNetPlusPlusLib.engine import executors, graph_record
from UNetPlusPlusLib.engine.network import plain_modules
from UNetPlusPlusLib.engine.onnx_export import export_key

DIGEST = "5a" * 32


def _need(name: str) -> None:
    if name not in executors.available_executors():
        pytest.skip(f"{name} is not installed")


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    """The graph folder of :data:`DIGEST` in a fresh user cache."""
    monkeypatch.setenv("UNETPP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("UNETPP_EXECUTOR", raising=False)
    return tmp_path / "home" / "graphs" / DIGEST / export_key()


@pytest.fixture(scope="module")
def tile_and_heads(sphere_predictor):
    """A 32^3 tile and the full network's heads 1..4 on it (the plain modules)."""
    tile = torch.randn(1, 1, 32, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad(), plain_modules():
        heads = sphere_predictor.model.forward_heads(tile, depth=4)
    return tile, heads


def _executor(name: str, sphere_predictor):
    return executors.make_executor(name, sphere_predictor.model, threads=1, weights_sha256=DIGEST)


def _files(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _run_expecting(name, sphere_predictor, tile, depth, notice):
    """Run a fresh executor at ``depth``; the GraphRebuiltWarnings it gave must be ``notice``
    (a list of messages)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = _executor(name, sphere_predictor).run(tile, depth)
    rebuilt = [str(w.message) for w in caught if w.category is graph_record.GraphRebuiltWarning]
    assert rebuilt == notice
    return out


def _assert_head(out, heads, depth):
    assert torch.equal(out.argmax(1), heads[depth - 1].argmax(1))
    torch.testing.assert_close(out, heads[depth - 1], atol=2e-4, rtol=1e-4)


def _assert_recorded(folder: Path, depth: int) -> None:
    graph = folder / f"L{depth}.onnx"
    digest = graph_record.verified_sha256(graph, depth, DIGEST, export_key())
    assert digest is not None and digest == graph_record.file_sha256(graph)


@pytest.mark.parametrize("name", ["openvino", "onnxruntime"])
def test_a_graph_copied_over_another_depth_is_exported_again(
    name, sphere_predictor, tile_and_heads, folder
):
    """The tester's case: depth 2's graph copied over L3.onnx ran as "depth 3", silently.
    OpenVINO's blob of the wrong graph is left in place too: it must not be loaded either."""
    _need(name)
    tile, heads = tile_and_heads
    executor = _executor(name, sphere_predictor)
    for depth in (2, 3):
        _assert_head(executor.run(tile, depth), heads, depth)
    record = json.loads(graph_record.record_path(folder / "L3.onnx").read_text())
    assert record["depth"] == "L3" and record["weights_sha256"] == DIGEST
    assert record["export_key"] == export_key() and record["size"] > 1000
    shutil.copyfile(folder / "L2.onnx", folder / "L3.onnx")
    if name == "openvino":  # compile the wrong graph, so its blob sits in the cache
        wrong = executors.OpenVinoExecutor(sphere_predictor.model, 1, cache_dir=folder)
        wrong._compile(folder / "L3.onnx", graph_record.file_sha256(folder / "L3.onnx"))

    notice = "cached graph of depth 3 did not match its record; exported again"
    _assert_head(_run_expecting(name, sphere_predictor, tile, 3, [notice]), heads, 3)
    _assert_recorded(folder, 3)
    _assert_head(_run_expecting(name, sphere_predictor, tile, 2, []), heads, 2)


@pytest.mark.parametrize("damage", ["truncated", "no record", "other weights", "same size"])
def test_a_damaged_or_foreign_graph_is_exported_again(
    damage, sphere_predictor, tile_and_heads, folder
):
    _need("openvino")
    tile, heads = tile_and_heads
    _assert_head(_executor("openvino", sphere_predictor).run(tile, 3), heads, 3)
    graph, record = folder / "L3.onnx", graph_record.record_path(folder / "L3.onnx")
    notice = "cached graph of depth 3 did not match its record; exported again"
    if damage == "truncated":
        with open(graph, "r+b") as stream:
            stream.truncate(graph.stat().st_size // 2)
    elif damage == "no record":
        record.unlink()
        notice = "cached graph of depth 3 had no record; exported again"
    elif damage == "other weights":  # a record, and its graph, of other weights copied in
        data = json.loads(record.read_text())
        record.write_text(json.dumps({**data, "weights_sha256": "0" * 64}))
    else:  # bytes changed at the same size and modification time: only the digest tells
        info = graph.stat()
        data = bytearray(graph.read_bytes())
        data[-100] ^= 0xFF
        graph.write_bytes(bytes(data))
        os.utime(graph, ns=(info.st_atime_ns, info.st_mtime_ns))
        assert graph.stat().st_size == info.st_size
    _assert_head(_run_expecting("openvino", sphere_predictor, tile, 3, [notice]), heads, 3)
    _assert_recorded(folder, 3)


def test_an_untouched_cache_is_used_without_export_or_compile(
    sphere_predictor, tile_and_heads, folder
):
    _need("openvino")
    tile, heads = tile_and_heads
    _assert_head(_executor("openvino", sphere_predictor).run(tile, 3), heads, 3)
    before = _files(folder)
    assert sorted(name for name in before if not name.startswith("openvino/")) == [
        "L3.onnx",
        "L3.onnx.json",
    ]
    blobs = [name for name in before if name.startswith("openvino/")]
    digest = graph_record.file_sha256(folder / "L3.onnx")
    assert blobs and all(name.startswith(f"openvino/{digest[:16]}/") for name in blobs)
    _assert_head(_run_expecting("openvino", sphere_predictor, tile, 3, []), heads, 3)
    assert _files(folder) == before  # no graph, record or blob written or replaced


def test_verified_sha256_rejects_every_mismatch(tmp_path):
    graph = tmp_path / "L2.onnx"
    graph.write_bytes(b"graph bytes")
    digest = graph_record.file_sha256(graph)
    key = export_key()
    assert graph_record.verified_sha256(graph, 2, DIGEST, key) is None  # no record
    graph_record.write_record(graph, 2, DIGEST, key, digest, graph.stat().st_size)
    assert not list(tmp_path.glob(".export-*"))  # written through a renamed temporary file
    assert graph_record.verified_sha256(graph, 2, DIGEST, key) == digest
    assert graph_record.verified_sha256(graph, 3, DIGEST, key) is None  # another depth
    assert graph_record.verified_sha256(graph, 2, "0" * 64, key) is None  # other weights
    assert graph_record.verified_sha256(graph, 2, DIGEST, key + "x") is None  # other torch
    shutil.copyfile(graph, tmp_path / "L3.onnx")
    shutil.copyfile(graph_record.record_path(graph), tmp_path / "L3.onnx.json")
    assert graph_record.verified_sha256(tmp_path / "L3.onnx", 3, DIGEST, key) is None
    graph_record.record_path(graph).write_text("{")
    assert graph_record.verified_sha256(graph, 2, DIGEST, key) is None  # damaged record
