"""The scripts that write the shipped models' files: write_model_cards.py reproduces the
committed cards and docs/MODELS.md exactly (it had drifted: the brain card's bias-field check
pointed to docs/INPUT_CHECKS.md), and channel_fingerprint.py --write changes only its key of a
model.json (it re-indented the whole file)."""

from __future__ import annotations

import copy
import importlib.util
import json
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "UNetPlusPlus" / "UNetPlusPlusLib" / "Resources" / "Models"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_card_writer_reproduces_the_committed_cards(tmp_path, capsys):
    module = _script("write_model_cards")
    assert module.main(["--out", str(tmp_path)]) == 0
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.md"))
    tasks = sorted(p.parent.name for p in MODELS.glob("*/model.json"))
    assert written == sorted(["MODELS.md", *(f"{t}/CARD.md" for t in tasks)])
    for task in tasks:
        committed = (MODELS / task / "CARD.md").read_text(encoding="utf-8")
        assert (tmp_path / task / "CARD.md").read_text(encoding="utf-8") == committed, task
    models_md = (REPO / "docs" / "MODELS.md").read_text(encoding="utf-8")
    assert (tmp_path / "MODELS.md").read_text(encoding="utf-8") == models_md


def test_writing_the_channel_fingerprint_keeps_the_model_json_layout(tmp_path):
    shipped = MODELS / "brain-tumor" / "model.json"
    path = tmp_path / "model.json"
    shutil.copyfile(shipped, path)
    write_reference = _script("channel_fingerprint").write_reference
    reference = json.loads(shipped.read_text(encoding="utf-8"))["inference"]["channel_fingerprint"]
    write_reference(path, reference)  # the same reference: the same bytes
    assert path.read_bytes() == shipped.read_bytes()
    changed = copy.deepcopy(reference)
    changed["std"][0] = 0.25
    write_reference(path, changed)
    before = shipped.read_text(encoding="utf-8").splitlines()
    after = path.read_text(encoding="utf-8").splitlines()
    assert len(after) == len(before)
    assert [(a, b) for a, b in zip(before, after) if a != b] == [
        (line, line.replace("[0.2112,", "[0.25,")) for line in before if '"std": [0.2112,' in line
    ]
