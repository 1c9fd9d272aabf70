"""Two packages with one name (a UNETPP_MODELS 'liver-ct' beside the shipped one): the first
found runs, and `models list` and `segment` say so (engine/model_search.shadowed_models,
shadow_notice; tester 20: two "liver: liver-ct" lines, and the user's model ran unsaid)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from UNetPlusPlusLib import cli
from UNetPlusPlusLib.engine import registry
from UNetPlusPlusLib.resources import builtin_models_dir

EXAMPLE = Path(__file__).resolve().parents[1] / "Resources" / "Examples" / "example_ct.nii.gz"


@pytest.fixture
def user_liver(tmp_path, monkeypatch) -> Path:
    """A copy of the shipped liver package in a UNETPP_MODELS folder (same name, liver-ct)."""
    copy = tmp_path / "mine" / "liver"
    shutil.copytree(builtin_models_dir() / "liver", copy)
    monkeypatch.setenv("UNETPP_MODELS", str(copy.parent))
    monkeypatch.setenv("UNETPP_HOME", str(tmp_path / "home"))
    return copy


def test_list_marks_the_model_that_runs_and_the_shadowed_one(user_liver, capsys):
    assert cli.main(["models", "list"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("liver:")]
    shipped = builtin_models_dir() / "liver"
    assert lines == [
        f"liver: liver-ct  ({user_liver}) [runs for --task liver]",
        f"liver: liver-ct  ({shipped}) [shadowed by {user_liver}: give --model {shipped} to "
        "run it]",
    ]


def test_the_notice_names_the_file_used_and_the_shipped_one(user_liver):
    manifest = registry.find_model("liver")
    assert Path(manifest.path).parent == user_liver  # UNETPP_MODELS comes first
    notice = registry.shadow_notice(manifest)
    assert notice is not None and f"from {user_liver}," in notice
    assert f"the shipped one in {builtin_models_dir() / 'liver'}" in notice
    shipped = next(m for m in registry.list_models() if Path(m.path).parent != user_liver)
    assert registry.shadow_notice(shipped) is None  # the shadowed one shadows nothing


def test_no_notice_without_a_duplicate(tmp_path, monkeypatch):
    monkeypatch.delenv("UNETPP_MODELS", raising=False)
    monkeypatch.setenv("UNETPP_HOME", str(tmp_path / "home"))
    assert registry.shadow_notice(registry.find_model("liver")) is None


def test_segment_prints_one_notice_line_naming_the_model_used(user_liver, tmp_path, capsys):
    out = tmp_path / "x.seg.nrrd"
    code = cli.main(["segment", str(EXAMPLE), "--task", "liver", "-o", str(out), "--quiet"])
    assert code == 0 and out.is_file()
    err = capsys.readouterr().err.splitlines()
    said = [line for line in err if "shadows the model of the same name" in line]
    assert len(said) == 1 and said[0].startswith(
        f"warning: using model 'liver-ct' from {user_liver}"
    )
