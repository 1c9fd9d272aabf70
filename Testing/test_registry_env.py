"""UNETPP_MODELS entries that are no readable folder: one error naming the variable and the
path (engine/model_search.check_env_dir). Moved out of test_registry.py (over 500 lines)."""

from __future__ import annotations

import os

import pytest
from test_registry import make_package
from UNetPlusPlusLib.engine import registry
from UNetPlusPlusLib.errors import UNetPlusPlusError


@pytest.mark.parametrize("kind", ["absent", "file"])
def test_a_unetpp_models_entry_that_is_no_folder_is_refused_naming_it(
    tmp_path, monkeypatch, kind, capsys
):
    """A mistyped UNETPP_MODELS folder was skipped in silence: `--task liver` then ran the
    shipped model instead of the user's and `unetpp models list` said nothing (review cli20)."""
    from UNetPlusPlusLib import cli

    extra = tmp_path / "extra"
    make_package(extra / "liver", name="liver-extra")
    wrong = tmp_path / "typo"
    if kind == "file":
        wrong.write_text("not a folder")
    monkeypatch.setenv("UNETPP_MODELS", os.pathsep.join([str(extra), str(wrong)]))
    monkeypatch.setenv("UNETPP_HOME", str(tmp_path / "home"))
    what = "does not exist" if kind == "absent" else "is a file, not a folder"
    message = f"UNETPP_MODELS names {wrong}, which {what}"
    with pytest.raises(UNetPlusPlusError, match=message):
        registry.list_models()
    with pytest.raises(UNetPlusPlusError, match=message):
        registry.find_model("liver")
    assert cli.main(["models", "list"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: {message}: give a folder of model packages")
    assert captured.err.count("\n") == 1


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any folder")
def test_an_unreadable_unetpp_models_folder_is_refused(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    monkeypatch.setenv("UNETPP_MODELS", str(locked))
    try:
        with pytest.raises(UNetPlusPlusError, match="cannot be read"):
            registry.list_models()
    finally:
        locked.chmod(0o700)
