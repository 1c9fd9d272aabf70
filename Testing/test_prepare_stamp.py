"""The stamp of a prepared model (engine/prepare_stamp.py): `unetpp models prepare` on a prepared
model touches nothing and imports no torch, unless --force; a stamp of another key (threads,
versions) or with a graph gone counts as not prepared; the Slicer module's check needs no torch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.engine import executors, graph_record, prepare_stamp
from UNetPlusPlusLib.engine.cpu_cores import default_thread_count
from UNetPlusPlusLib.engine.manifest import ModelManifest
from UNetPlusPlusLib.engine.onnx_export import graph_cache_dir

pytestmark = pytest.mark.skipif(
    "openvino" not in executors.available_executors(), reason="OpenVINO is not installed"
)
PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "UNetPlusPlus"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("UNETPP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("UNETPP_EXECUTOR", raising=False)
    monkeypatch.delenv("UNETPP_MODELS", raising=False)
    return tmp_path / "home"


def _files(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_prepare_writes_a_stamp_and_skips_a_prepared_model_unless_forced(sphere_model, capsys):
    manifest = ModelManifest.load(sphere_model)
    folder = graph_cache_dir(manifest.sha256)
    assert not prepare_stamp.is_prepared(manifest.sha256, 2)
    assert main(["models", "prepare", "--threads", "2", str(sphere_model)]) == 0
    assert "graphs exported L1, L2, L3, L4" in capsys.readouterr().out

    stamp = json.loads((folder / prepare_stamp.STAMP_FILE).read_text())
    assert stamp["sha256"] == manifest.sha256 and stamp["threads"] == 2
    assert stamp["graphs"] == ["L1.onnx", "L2.onnx", "L3.onnx", "L4.onnx"]
    assert stamp["torch"] == prepare_stamp.package_version("torch")
    assert stamp["openvino"] == prepare_stamp.package_version("openvino")
    assert prepare_stamp.stamp_folder(manifest.sha256) == folder  # found without torch
    assert prepare_stamp.is_prepared(manifest.sha256, 2)
    assert not prepare_stamp.is_prepared(manifest.sha256, 3)  # another thread count

    before = _files(folder)
    assert main(["models", "prepare", "--threads", "2", str(sphere_model)]) == 0
    assert capsys.readouterr().out == "sphere-test: already prepared (--force prepares it again)\n"
    assert _files(folder) == before  # nothing checked, compiled or written

    assert main(["models", "prepare", "--threads", "2", "--force", str(sphere_model)]) == 0
    assert "cached and checked L1, L2, L3, L4" in capsys.readouterr().out
    assert _files(folder)["prepared.json"] != before["prepared.json"]  # written anew

    shutil.copyfile(folder / "L2.onnx", folder / "L3.onnx")  # not the graph of its record
    assert not prepare_stamp.is_prepared(manifest.sha256, 2)
    assert main(["models", "prepare", "--threads", "2", str(sphere_model)]) == 0
    out = capsys.readouterr().out
    assert "exported again (damaged, foreign or unrecorded) L3" in out, out
    assert "cached and checked L1, L2, L4" in out, out
    assert prepare_stamp.is_prepared(manifest.sha256, 2)

    (folder / "L2.onnx").unlink()  # a graph gone: prepared no more
    assert not prepare_stamp.is_prepared(manifest.sha256, 2)
    assert main(["models", "prepare", "--threads", "2", str(sphere_model)]) == 0
    out = capsys.readouterr().out
    assert "exported L2" in out and "cached and checked L1, L3, L4" in out
    assert prepare_stamp.is_prepared(manifest.sha256, 2)


def test_a_stamp_of_other_versions_or_damaged_is_not_prepared(sphere_model, tmp_path):
    manifest = ModelManifest.load(sphere_model)
    folder = tmp_path / "graphs"
    graph = folder / "L1.onnx"
    graph.parent.mkdir(parents=True)
    graph.write_bytes(b"graph")
    prepare_stamp.write_stamp(folder, manifest.sha256, 2, ["L1.onnx"])
    assert not prepare_stamp.is_prepared(manifest.sha256, 2, folder=folder)  # no record
    key = prepare_stamp.stamp_key(manifest.sha256, 2)["export_key"]
    digest = graph_record.file_sha256(graph)
    graph_record.write_record(graph, 1, manifest.sha256, key, digest, graph.stat().st_size)
    assert prepare_stamp.is_prepared(manifest.sha256, 2, folder=folder)
    assert not list(folder.glob(".stamp-*"))  # the temporary file was renamed
    stamp = json.loads((folder / "prepared.json").read_text())
    for key, value in (("openvino", "2024.0.0"), ("torch", "2.1.0"), ("sha256", "0" * 64)):
        (folder / "prepared.json").write_text(json.dumps({**stamp, key: value}))
        assert not prepare_stamp.is_prepared(manifest.sha256, 2, folder=folder), key
    for text in ("{", "[]", json.dumps({**stamp, "graphs": ["../L1.onnx"]})):
        (folder / "prepared.json").write_text(text)
        assert not prepare_stamp.is_prepared(manifest.sha256, 2, folder=folder), text


def test_needs_preparing_follows_the_executor_and_the_thread_count(sphere_model, monkeypatch):
    manifest = ModelManifest.load(sphere_model)
    assert main(["models", "prepare", "--threads", "2", str(sphere_model)]) == 0
    assert not prepare_stamp.needs_preparing(manifest.sha256, env={"OMP_NUM_THREADS": "2"})
    assert prepare_stamp.needs_preparing(manifest.sha256, env={"OMP_NUM_THREADS": "3"})
    assert not prepare_stamp.needs_preparing(
        manifest.sha256, env={"OMP_NUM_THREADS": "3", "UNETPP_EXECUTOR": "ours"}
    )
    assert default_thread_count({"OMP_NUM_THREADS": "3"}) == 3
    assert default_thread_count({"OMP_NUM_THREADS": "x"}) == default_thread_count({})


def test_the_stamp_check_and_a_prepared_rerun_import_no_torch(sphere_model, home):
    assert main(["models", "prepare", str(sphere_model)]) == 0  # default threads
    sha256 = ModelManifest.load(sphere_model).sha256
    env = {**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)}
    code = (
        "import sys\n"
        "from UNetPlusPlusLib.engine.prepare_stamp import is_prepared, needs_preparing\n"
        f"print(is_prepared({sha256!r}), needs_preparing({sha256!r}))\n"
        "from UNetPlusPlusLib.cli import main\n"
        f"code = main(['models', 'prepare', {str(sphere_model)!r}])\n"
        "print(code, sorted({'torch', 'openvino'} & set(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "True False",
        "sphere-test: already prepared (--force prepares it again)",
        "0 []",
    ]


def test_a_model_named_twice_is_prepared_once(sphere_model, capsys):
    """`prepare liver liver` did the work twice (tester 20); the same package by its folder and
    its model.json too."""
    argv = ["models", "prepare", "--threads", "2", "--force", str(sphere_model)]
    code = main([*argv, str(sphere_model.parent), str(sphere_model)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = captured.out.splitlines()
    assert len([line for line in out if line.startswith("sphere-test:")]) == 1, out
