"""`unetpp models remove NAME` (engine/model_remove.py): removes a package that `models install`
put into the user's model folder ($UNETPP_HOME/models here) with its cached graphs and probe
memory ($UNETPP_HOME/graphs/<sha256>) unless another model uses the same weights; refuses
shipped models, models elsewhere, paths, links and unknown names, changing nothing."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from test_registry import make_package
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.engine import registry
from UNetPlusPlusLib.resources import builtin_models_dir


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh $UNETPP_HOME with kidney-test installed, and a cached graph and probe memory
    for its weights; UNETPP_MODELS unset."""
    monkeypatch.setenv("UNETPP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("UNETPP_MODELS", raising=False)
    make_package(tmp_path / "pkg", name="kidney-test", task="kidney")
    manifest = registry.install_model(str(tmp_path / "pkg"))
    graphs = tmp_path / "home" / "graphs" / manifest.sha256 / "f2-opset17-torch2"
    graphs.mkdir(parents=True)
    (graphs / "L2.onnx").write_bytes(b"graph")
    (graphs / "probe.json").write_text("{}")
    return tmp_path / "home"


def _tree(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _sha(home: Path, name: str) -> str:
    return json.loads((home / "models" / name / "model.json").read_text())["sha256"]


def test_remove_deletes_the_package_and_its_graphs_and_says_so(home, capsys):
    sha = _sha(home, "kidney-test")
    assert main(["models", "remove", "kidney-test"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"removed kidney-test (kidney): {home / 'models' / 'kidney-test'}",
        f"removed its cached graphs and probe memory: {home / 'graphs' / sha}",
    ]
    assert _tree(home / "models") == [] and _tree(home / "graphs") == []  # no hidden leftovers
    assert "kidney-test" not in [m.name for m in registry.list_models()]
    assert main(["models", "remove", "kidney-test"]) == 2  # gone: now unknown
    assert "No installed model named 'kidney-test'" in _error(capsys)


def test_graphs_another_model_uses_are_kept(home, tmp_path, monkeypatch, capsys):
    """A copy of the package under another name (same weights, so the same sha256) found
    through UNETPP_MODELS keeps the graph cache."""
    sha = _sha(home, "kidney-test")
    extra = tmp_path / "extra"
    shutil.copytree(home / "models" / "kidney-test", extra / "kidney-copy")
    data = json.loads((extra / "kidney-copy" / "model.json").read_text())
    (extra / "kidney-copy" / "model.json").write_text(json.dumps({**data, "name": "kidney-copy"}))
    monkeypatch.setenv("UNETPP_MODELS", str(extra))
    assert main(["models", "remove", "kidney-test"]) == 0
    out = capsys.readouterr().out
    kept = f"kept its cached graphs {home / 'graphs' / sha}: kidney-copy ({extra / 'kidney-copy'})"
    assert f"{kept} uses the same weights" in out
    assert not (home / "models" / "kidney-test").exists()
    assert (home / "graphs" / sha / "f2-opset17-torch2" / "probe.json").is_file()
    assert (extra / "kidney-copy" / "model.json").is_file()


@pytest.mark.parametrize(
    "name, said",
    [
        ("liver-ct", "'liver-ct' is a shipped model"),
        ("liver", "'liver' is the task of liver-ct"),
        ("kidney-tst", "No installed model named 'kidney-tst' (did you mean 'kidney-test'?)"),
        ("kidney", "(did you mean 'kidney-test'?)"),  # its task
        ("spleen", "No installed model named 'spleen'; installed in"),
        ("../models/kidney-test", "is not a model name"),
        ("..", "is not a model name"),
        ("", "is not a model name"),
    ],
)
def test_shipped_unknown_and_path_names_are_refused_changing_nothing(home, capsys, name, said):
    before = _tree(home)
    shipped = _tree(builtin_models_dir())
    assert main(["models", "remove", name]) == 2
    assert said in _error(capsys)
    assert _tree(home) == before and _tree(builtin_models_dir()) == shipped


def test_a_model_found_through_unetpp_models_is_refused(home, tmp_path, monkeypatch, capsys):
    make_package(tmp_path / "extra" / "spleen", name="spleen-extra", task="spleen")
    monkeypatch.setenv("UNETPP_MODELS", str(tmp_path / "extra"))
    assert main(["models", "remove", "spleen-extra"]) == 2
    assert "outside the user's model folder" in _error(capsys)
    assert (tmp_path / "extra" / "spleen" / "model.json").is_file()


@pytest.mark.skipif(os.name != "posix", reason="symbolic links")
def test_a_package_folder_that_links_out_of_the_home_is_refused(home, tmp_path, capsys):
    make_package(tmp_path / "elsewhere" / "liver-mine", name="liver-mine")
    (home / "models" / "liver-mine").symlink_to(tmp_path / "elsewhere" / "liver-mine")
    before = _tree(tmp_path / "elsewhere")
    assert main(["models", "remove", "liver-mine"]) == 2
    err = _error(capsys)
    assert "is a link to" in err and "outside the user's model folder" in err
    assert _tree(tmp_path / "elsewhere") == before
    assert (home / "models" / "liver-mine").is_symlink()


@pytest.mark.skipif(os.name != "posix", reason="symbolic links")
def test_links_inside_a_package_are_removed_not_followed(home, tmp_path, capsys):
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "data.txt").write_text("keep me")
    (home / "models" / "kidney-test" / "folder-link").symlink_to(outside)
    (home / "models" / "kidney-test" / "file-link").symlink_to(outside / "data.txt")
    assert main(["models", "remove", "kidney-test"]) == 0
    assert not (home / "models" / "kidney-test").exists()
    assert (outside / "data.txt").read_text() == "keep me"


def test_a_package_with_an_unreadable_manifest_is_removed_by_its_folder_name(home, capsys):
    broken = home / "models" / "half-copied"
    broken.mkdir()
    (broken / "model.json").write_text("{not json")
    with pytest.warns(UserWarning, match="half-copied"):
        assert "half-copied" not in [m.name for m in registry.list_models()]
    assert main(["models", "remove", "half-copied"]) == 0
    assert capsys.readouterr().out == f"removed half-copied: {broken}\n"
    assert not broken.exists() and (home / "models" / "kidney-test").is_dir()


def test_a_model_never_run_with_openvino_has_no_graphs_to_mention(home, capsys):
    shutil.rmtree(home / "graphs")
    assert main(["models", "remove", "kidney-test"]) == 0
    assert capsys.readouterr().out.count("\n") == 1  # the package line only
    assert not (home / "graphs").exists()


def test_the_graphs_openvino_wrote_for_a_model_are_removed_with_it(
    sphere_model, tmp_path, monkeypatch, capsys
):
    """End to end: the folder a real OpenVINO run cached (onnx_export.graph_cache_dir) is the
    one `models remove` deletes."""
    pytest.importorskip("openvino")
    import numpy as np
    import SimpleITK as sitk
    from helpers import make_sphere_image

    monkeypatch.setenv("UNETPP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("UNETPP_EXECUTOR", "openvino")
    monkeypatch.delenv("UNETPP_MODELS", raising=False)
    shutil.copytree(sphere_model.parent, tmp_path / "pkg")
    data = json.loads((tmp_path / "pkg" / "model.json").read_text())
    (tmp_path / "pkg" / "model.json").write_text(json.dumps({**data, "name": "sphere-mine"}))
    image = make_sphere_image((24, 24, 24), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0), np.eye(3), 9.0)
    sitk.WriteImage(image, str(tmp_path / "ct.nrrd"))
    assert main(["models", "install", "--no-prepare", str(tmp_path / "pkg")]) == 0
    run = ["segment", str(tmp_path / "ct.nrrd"), "--task", "sphere-mine", "--device", "cpu"]
    assert main([*run, "--labelmap", str(tmp_path / "l.nrrd")]) == 0
    graphs = tmp_path / "home" / "graphs" / data["sha256"]
    assert list(graphs.rglob("*.onnx")), _tree(tmp_path / "home")
    capsys.readouterr()
    assert main(["models", "remove", "sphere-mine"]) == 0
    assert f"removed its cached graphs and probe memory: {graphs}" in capsys.readouterr().out
    assert _tree(tmp_path / "home") == ["graphs", "models"]
