"""`unetpp models install` says when the installed model takes over `--task T` and when its
own validation Dice is low (fresh user 27).

A tiny `unetpp train` run on the LIDC crops (2 iterations, validation Dice 0.09) installed
without a word, and `unetpp segment --task lung-nodule` then segmented with it instead of the
shipped model: installed models come before the shipped ones in the search order.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_registry import make_package
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.engine import registry

TAKES_OVER = (
    "warning: `unetpp segment --task liver` now segments with 'liver-mine' instead of "
    "'liver-ct' (installed models come before the shipped ones): give --task liver-ct (a "
    "model's name picks that model) to keep using it, or `unetpp models remove liver-mine` "
    "to go back."
)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An empty $UNETPP_HOME; UNETPP_MODELS unset (only the shipped models are found)."""
    monkeypatch.setenv("UNETPP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("UNETPP_MODELS", raising=False)
    return tmp_path / "home"


def _warnings(capsys) -> list[str]:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return [line for line in captured.err.splitlines() if line.startswith("warning: ")]


def test_a_model_that_takes_over_a_shipped_task_says_so(home, tmp_path, capsys):
    make_package(tmp_path / "pkg", name="liver-mine", task="liver")
    assert main(["models", "install", "--no-prepare", str(tmp_path / "pkg")]) == 0
    assert _warnings(capsys) == [TAKES_OVER]
    assert registry.find_model("liver").name == "liver-mine"  # what the warning says
    assert registry.find_model("liver-ct").task == "liver"  # and what it offers instead


def test_a_model_of_a_new_task_installs_without_a_warning(home, tmp_path, capsys):
    make_package(tmp_path / "pkg", name="kidney-test", task="kidney")
    assert main(["models", "install", "--no-prepare", str(tmp_path / "pkg")]) == 0
    assert _warnings(capsys) == []


def test_a_low_validation_dice_at_the_recommended_depth_is_a_warning(home, tmp_path, capsys):
    make_package(tmp_path / "pkg", name="kidney-test", task="kidney")
    path = tmp_path / "pkg" / "model.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["validation"] = {"per_depth": {"4": {"mean_dice": 0.09}, "1": {"mean_dice": 0.8}}}
    path.write_text(json.dumps(data), encoding="utf-8")
    assert main(["models", "install", "--no-prepare", str(tmp_path / "pkg")]) == 0
    (warning,) = _warnings(capsys)
    assert warning.startswith(
        "warning: Model 'kidney-test' scored a mean Dice of only 0.09 at depth 4 on its own "
        "validation cases"
    )


def test_a_model_named_like_its_shipped_task_takes_it_over_with_a_warning(home, tmp_path, capsys):
    """`--task liver` matches a model's name first: `unetpp train --name liver` of a liver
    model takes the task over too."""
    make_package(tmp_path / "pkg", name="liver", task="liver")
    assert main(["models", "install", "--no-prepare", str(tmp_path / "pkg")]) == 0
    assert _warnings(capsys) == [TAKES_OVER.replace("liver-mine", "liver")]
    assert main(["models", "install", "--no-prepare", str(tmp_path / "pkg")]) == 0  # the same again
    assert _warnings(capsys) == []  # changes nothing, says nothing


def test_a_model_of_another_task_named_like_a_shipped_task_is_refused(home, tmp_path, capsys):
    """A kidney model named 'liver' would have run for `--task liver` (fresh user 27)."""
    make_package(tmp_path / "pkg", name="liver", task="kidney")
    assert main(["models", "install", "--no-prepare", str(tmp_path / "pkg")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: Model ") and error.count("\n") == 1, error
    assert "is named 'liver', the task of a shipped model, but segments 'kidney'" in error
    assert not (home / "models" / "liver").exists()
    assert registry.find_model("liver").name == "liver-ct"
