"""`unetpp models list` on a package whose safetensors header is hostile (tester 16): the
byte check of engine/weights_status.py read the header with bare ``json.loads`` and ``int``, so
a header nested thousands deep (RecursionError), offsets that are not integers ("x", null) or a
dtype that is a list ended the whole listing with an internal error, for every model; 4.5 was
read as 4 and passed. The sha256 in model.json matches each file, as a package written by a
broken exporter would have it; `install` refuses such files (safetensors reads them), but a
folder on UNETPP_MODELS is listed as it is."""

from __future__ import annotations

import json
import shutil
import struct
import tracemalloc
from pathlib import Path

import pytest
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.engine.manifest import ModelManifest, sha256_file
from UNetPlusPlusLib.engine.weights_status import UNREADABLE, weights_problem


def _blob(header: bytes, data: bytes = b"\0" * 8) -> bytes:
    return struct.pack("<Q", len(header)) + header + data


def _tensor(**fields) -> bytes:
    entry = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], **fields}
    return json.dumps({"a": entry}).encode()


HOSTILE = {
    "nested": _blob(b"[" * 100_000 + b"]" * 100_000),
    "string-offsets": _blob(_tensor(data_offsets=["x", 4])),
    "null-offsets": _blob(_tensor(data_offsets=[None, 4])),
    "float-offsets": _blob(_tensor(data_offsets=[0, 4.5])),
    "bool-offsets": _blob(_tensor(data_offsets=[False, True])),
    "list-dtype": _blob(_tensor(dtype=["F32"])),
}


def _package(sphere_model: Path, folder: Path, name: str, weights: bytes) -> Path:
    """A copy of the sphere model named ``name`` with ``weights`` as its weights file and the
    matching sha256 in model.json."""
    shutil.copytree(sphere_model.parent, folder)
    (folder / "weights.safetensors").write_bytes(weights)
    manifest = json.loads((folder / "model.json").read_text())
    manifest.update(name=name, sha256=sha256_file(folder / "weights.safetensors"))
    (folder / "model.json").write_text(json.dumps(manifest))
    return folder / "model.json"


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_hostile_header_is_unreadable_not_an_error(tmp_path, sphere_model, kind):
    path = _package(sphere_model, tmp_path / kind, kind, HOSTILE[kind])
    assert weights_problem(ModelManifest.load(path)) == UNREADABLE


def test_models_list_lists_every_model_beside_hostile_ones(
    tmp_path, sphere_model, monkeypatch, capsys
):
    root = tmp_path / "models"
    for kind, blob in HOSTILE.items():
        _package(sphere_model, root / kind, kind, blob)
    shutil.copytree(sphere_model.parent, root / "good")
    monkeypatch.setenv("UNETPP_MODELS", str(root))
    monkeypatch.setenv("UNETPP_HOME", str(tmp_path / "home"))

    assert main(["models", "list"]) == 0
    captured = capsys.readouterr()
    assert "internal error" not in captured.err, captured.err
    statuses = [line.strip() for line in captured.out.splitlines() if "status:" in line]
    broken = [s for s in statuses if s == f"status: broken: {UNREADABLE}"]
    assert len(broken) == len(HOSTILE), statuses
    assert len(statuses) == len(HOSTILE) + 4, statuses  # the sphere copy and 3 shipped: ok


def _large_weights(path: Path, values: int, last: bytes) -> None:
    """A safetensors file of one float32 tensor of ``values`` zeros, the last one ``last``,
    written in pieces (never whole in memory)."""
    header = json.dumps(
        {"big": {"dtype": "F32", "shape": [values], "data_offsets": [0, 4 * values]}}
    ).encode()
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(header)) + header)
        for _ in range((values - 1) // (1 << 18)):
            out.write(b"\0" * (1 << 20))
        out.write(b"\0" * (4 * ((values - 1) % (1 << 18))) + last)


@pytest.mark.parametrize("last, expected", [(b"\0\0\xc0\x7f", "NaN"), (b"\0\0\x80\x3f", "fit")])
def test_a_large_weights_file_is_checked_in_chunks(tmp_path, sphere_model, last, expected):
    """``models list`` read the whole weights file into memory (and sliced copies of it) to
    check it: a multi-gigabyte model needed that much memory just to be listed. Now the sha256
    and each tensor are streamed in 1 MiB chunks, so the peak stays a few chunks on a 24 MiB
    file; a NaN in its very last value is still found."""
    folder = tmp_path / "large"
    shutil.copytree(sphere_model.parent, folder)
    weights = folder / "weights.safetensors"
    _large_weights(weights, 6 * (1 << 20) + 5, last)  # 24 MiB and 20 bytes of float32
    manifest = ModelManifest.load(folder / "model.json")
    manifest = type(manifest)(**{**manifest.__dict__, "sha256": sha256_file(weights)})
    tracemalloc.start()
    try:
        problem = weights_problem(manifest)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    if expected == "NaN":
        assert problem == "the weights hold NaN or infinite values (tensor big)"
    else:  # finite: read to the end, then the header's tensors against the network
        assert problem and problem.startswith("the weights do not fit the network")
    assert peak < 4 * (1 << 20), f"peak {peak / 2**20:.1f} MiB"


def _bytes_read() -> int:
    """Bytes this process has read (read(2) and the like), from /proc/self/io."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


@pytest.mark.skipif(not Path("/proc/self/io").is_file(), reason="needs Linux's /proc/self/io")
def test_the_weights_file_is_read_once(sphere_model):
    """The sha256 and the value check read the file twice (two passes over a multi-gigabyte
    model); now one pass hashes each chunk and checks its values."""
    manifest = ModelManifest.load(sphere_model)
    size = manifest.weights_path.stat().st_size
    before = _bytes_read()
    assert weights_problem(manifest) is None
    read = _bytes_read() - before
    assert size <= read < 1.5 * size, f"{read} bytes read of a {size}-byte file"


def test_a_value_split_between_two_chunks_is_checked_whole(tmp_path, sphere_model, monkeypatch):
    """Float32 values that start 2 bytes into the data (after one float16) straddle every
    chunk boundary; the NaN across the first one is found."""
    from UNetPlusPlusLib.engine import weights_status

    monkeypatch.setattr(weights_status, "CHUNK", 1024)
    values = bytearray(4 * 600)
    values[4 * 255 : 4 * 256] = b"\0\0\xc0\x7f"  # data bytes 1022..1025: across the boundary
    header = {
        "a": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]},
        "b": {"dtype": "F32", "shape": [600], "data_offsets": [2, 2 + len(values)]},
    }
    path = _package(sphere_model, tmp_path / "split", "split", _blob(
        json.dumps(header).encode(), b"\0\0" + bytes(values)
    ))  # fmt: skip
    assert weights_problem(ModelManifest.load(path)) == (
        "the weights hold NaN or infinite values (tensor b)"
    )
