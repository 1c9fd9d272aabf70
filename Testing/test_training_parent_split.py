"""A fine-tune (`--init`) never trains on its parent's held-out validation cases (model.json
`validation.cases`), by case id and by patient; they form or join its validation set, and the
cases the parent trained on (`training.cases`) are not drawn for validation. A tester found
`unetpp train ... --init lung-nodule --max-cases 12` training on the parent's held-out crops
while the card said "held-out patients". The split is kept in plan.json, so --resume keeps it
even when the parent's manifest changes; the card names the kept-out cases.

Unit tests on synthetic case records; two tiny runs fine-tune the sphere test model (copied, its
model.json given a split) on four synthetic 24^3 cases."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_training_dataset import write_slicer_dataset
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.training.cli import main
from UNetPlusPlusLib.training.dataset_types import CaseFiles, patient_id
from UNetPlusPlusLib.training.parent_split import (
    ParentCases,
    choose_split,
    parent_cases,
    restore_split,
    split_with_parent,
)
from UNetPlusPlusLib.training.split import split_cases

REGEX = r"^(?P<patient>p\d+)_"


def _cases(ids, regex=REGEX):
    return [
        CaseFiles(i, patient_id(i, regex), [Path(f"{i}.nrrd")], Path(f"{i}.seg.nrrd"), None)
        for i in ids
    ]


def _ids(cases):
    return [c.case_id for c in cases]


def _parent(held, trained=None):
    return ParentCases("parent-model", "ab" * 32, list(held), trained)


IDS = [f"p{p}_{n}" for p in range(10) for n in ("a", "b")]  # 10 patients, 2 cases each


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("max_cases", [6, 12, 20])
def test_held_out_cases_of_the_parent_never_train_whatever_the_subset_or_seed(seed, max_cases):
    """The tester's case: another --max-cases or --seed changed which patients were held out."""
    cases = _cases(IDS[:max_cases])
    split = split_with_parent(
        cases, 0.2, seed, parent=_parent(["p1_a", "p4_b"]), patient_regex=REGEX
    )
    trained, validated = _ids(split.training), _ids(split.validation)
    for held in ("p1_a", "p1_b", "p4_a", "p4_b"):  # by case id, and the patient's other case
        assert held not in trained
        assert held in validated or held not in IDS[:max_cases]
    assert not {c.patient_id for c in split.training} & {c.patient_id for c in split.validation}
    assert split.record["parent"]["held_out_kept_out"] == [
        i for i in validated if i[:2] in ("p1", "p4")
    ]
    assert split.record["training"] == trained and split.record["validation"] == validated


def test_a_held_out_case_matches_its_patient_even_if_the_parent_had_another_case_of_it():
    split = split_with_parent(
        _cases(IDS), 0.2, 0, parent=_parent(["p3_z"]), patient_regex=REGEX
    )  # p3_z is not in this dataset, but patient p3 is
    assert {"p3_a", "p3_b"} <= set(_ids(split.validation))


def test_validation_is_not_drawn_from_the_parents_training_cases():
    trained = [i for i in IDS if not i.startswith(("p0", "p8", "p9"))]
    for seed in range(5):
        split = split_with_parent(
            _cases(IDS), 0.3, seed, parent=_parent(["p0_a"], trained), patient_regex=REGEX
        )
        validated = {c.patient_id for c in split.validation}
        assert "p0" in validated and validated - {"p0"} <= {"p8", "p9"}
        assert len(validated) == 3  # 30 % of 10 patients: p0, then p8 and p9
        assert split.record["parent"]["training_cases_known"] is True
        assert not any("does not list" in note for note in split.notes)


def test_a_patient_the_parent_both_trained_and_validated_on_is_left_out():
    """Under this dataset's grouping, p0_a was held out and p0_b trained on by the parent."""
    split = split_with_parent(
        _cases(IDS), 0.2, 0, parent=_parent(["p0_a"], ["p0_b"]), patient_regex=REGEX
    )
    assert not {"p0_a", "p0_b"} & {*_ids(split.training), *_ids(split.validation)}
    assert split.record["excluded"] == ["p0_a", "p0_b"]
    assert any("both trained and validated on" in note for note in split.notes)


def test_an_unknown_training_list_is_said_and_a_parent_trained_on_everything_is_flagged():
    split = split_with_parent(_cases(IDS), 0.2, 0, parent=_parent([]), patient_regex=REGEX)
    assert any("does not list its training cases" in note for note in split.notes)
    assert split.record["parent"]["training_cases_known"] is False
    # no parent information matches: the draw is the plain split's
    assert _ids(split.validation) == _ids(split_cases(_cases(IDS), 0.2, 0)[1])

    everything = split_with_parent(_cases(IDS), 0.2, 0, parent=_parent([], list(IDS)))
    assert everything.validation and everything.record["parent"]["validation_on_parent_training"]
    assert any("overstate" in note for note in everything.notes)


def test_refusals_val_cases_the_parent_trained_on_and_nothing_left_to_train():
    parent = _parent(["p0_a"], ["p1_a", "p1_b"])
    with pytest.raises(UNetPlusPlusError, match="p1_a, p1_b, which the --init model parent-model"):
        split_with_parent(_cases(IDS), 0.2, 0, ["p1_.*"], parent, REGEX)
    joined = split_with_parent(_cases(IDS), 0.2, 0, ["p2_a"], parent, REGEX)
    assert _ids(joined.validation) == ["p0_a", "p0_b", "p2_a", "p2_b"]  # explicit + parent's
    with pytest.raises(UNetPlusPlusError, match="No case is left for training"):
        split_with_parent(_cases(IDS[:4]), 0.2, 0, parent=_parent(IDS[:4]), patient_regex=REGEX)


def test_restore_split_keeps_the_recorded_one_and_refuses_a_missing_case():
    cases = _cases(IDS)
    record = {"training": ["p1_a", "p0_a"], "validation": ["p2_a"], "excluded": []}
    restored = restore_split(cases, record)
    assert _ids(restored.training) == ["p1_a", "p0_a"] and _ids(restored.validation) == ["p2_a"]
    assert any("not using new case(s)" in note for note in restored.notes)
    with pytest.raises(UNetPlusPlusError, match="no longer in the dataset"):
        restore_split(cases[1:], {**record, "training": ["p0_a"]})


def test_choose_split_restores_a_record_and_keeps_an_older_runs_plain_split_on_resume():
    config = SimpleNamespace(val_fraction=0.2, seed=0, train_fraction=1.0)
    dataset = SimpleNamespace(validation_cases=[], patient_regex=REGEX)
    parent = SimpleNamespace(name="m", sha256="0" * 64, validation={"cases": ["p1_a"]}, training={})
    new = choose_split(_cases(IDS), config, dataset, parent)
    assert "p1_a" in _ids(new.validation)
    assert choose_split(_cases(IDS), config, dataset, parent, True, new.record).record == new.record
    # a plan.json without a split (an older version started the run): the split it started with
    old = choose_split(_cases(IDS), config, dataset, parent, resume=True, recorded=None)
    plain = split_cases(_cases(IDS), 0.2, 0)
    assert (_ids(old.training), _ids(old.validation)) == tuple(_ids(side) for side in plain)
    assert "records no split" in old.notes[0] and "parent" not in old.record
    config.train_fraction = 0.5
    half = choose_split(_cases(IDS), config, dataset, parent)
    assert len({c.patient_id for c in half.training}) == 4  # half of the 8 training patients
    assert half.record["training"] == _ids(half.training) and "p1_a" not in _ids(half.training)
    assert half.notes[-1].startswith("--train-fraction 0.5: training on the 8 cases of 4 of the 8")


def test_parent_cases_reads_both_validation_lists_and_the_training_list():
    manifest = SimpleNamespace(
        name="m",
        sha256="0" * 64,
        validation={"cases": ["a"], "held_out_cases": ["a", "b"]},
        training={"cases": ["c"]},
    )
    assert parent_cases(manifest) == ParentCases("m", "0" * 64, ["a", "b"], ["c"])
    manifest.training = {}
    assert parent_cases(manifest).trained is None and parent_cases(None) is None


# ----------------------------------------------------------------------------- tiny runs
TINY = ["--labels", "tumor", "--no-progress", "--threads", "1", "--precision", "fp32"]
TINY += ["--tile", "32", "16", "16", "--batch-size", "1", "--iterations-per-epoch", "1"]


def _parent_package(sphere_model: Path, folder: Path, validation: list, training=None) -> Path:
    shutil.copytree(sphere_model.parent, folder)
    data = json.loads((folder / "model.json").read_text())
    data["validation"] = {**data.get("validation", {}), "cases": validation}
    if training is not None:
        data["training"] = {**data.get("training", {}), "cases": training}
    (folder / "model.json").write_text(json.dumps(data))
    return folder


@pytest.mark.usefixtures("one_torch_thread")
def test_fine_tune_keeps_the_parents_held_out_case_and_resume_keeps_the_split(
    tmp_path, capsys, sphere_model
):
    data = write_slicer_dataset(tmp_path / "data", cases=4)
    parent = _parent_package(sphere_model, tmp_path / "parent", ["case01"])
    out = tmp_path / "out"
    args = [str(data), "-o", str(out), *TINY, "--init", str(parent), "--lr", "0.003"]
    assert main([*args, "--epochs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "kept 1 held-out case(s) of the --init model sphere-test" in printed
    assert "does not list its training cases" in printed
    split = json.loads((out / "plan.json").read_text())["split"]
    assert "case01" in split["validation"] and "case01" not in split["training"]
    assert split["parent"]["held_out_kept_out"] == ["case01"]
    model = json.loads((out / "model.json").read_text())
    assert model["training"]["cases"] == split["training"]
    assert model["validation"]["parent_split"]["held_out_kept_out"] == ["case01"]
    card = (out / "CARD.md").read_text()
    assert "kept out of training: 1 held-out case(s) of the parent sphere-test" in card
    assert "a renamed copy, such as a Slicer export named case001, is not recognised" in card
    assert "(case01), validated on instead" in card
    assert "may include cases it was trained on" in card

    # the parent's manifest changes between the sessions: the run keeps its own split
    _parent_package(sphere_model, tmp_path / "parent2", ["case03"], ["case00", "case01"])
    shutil.rmtree(parent)
    shutil.copytree(tmp_path / "parent2", parent)
    assert main([*args, "--epochs", "2", "--resume"]) == 0
    assert json.loads((out / "plan.json").read_text())["split"] == split
    assert json.loads((out / "model.json").read_text())["training"]["cases"] == split["training"]


@pytest.mark.usefixtures("one_torch_thread")
def test_fine_tune_with_a_known_training_list_validates_only_on_unseen_cases(
    tmp_path, capsys, sphere_model
):
    data = write_slicer_dataset(tmp_path / "data", cases=4)
    parent = _parent_package(sphere_model, tmp_path / "parent", ["case03"], ["case00", "case01"])
    out = tmp_path / "out"
    args = [str(data), "-o", str(out), *TINY, "--init", str(parent), "--lr", "0.003"]
    assert main([*args, "--epochs", "1", "--val-fraction", "0.5"]) == 0
    split = json.loads((out / "plan.json").read_text())["split"]
    assert split["validation"] == ["case02", "case03"]  # the parent's, then one it never saw
    assert split["training"] == ["case00", "case01"]
    assert (
        "no validation case is one the parent sphere-test was trained on"
        in (out / "CARD.md").read_text()
    )
    model = json.loads((out / "model.json").read_text())
    assert "held-out patients" in model["validation"]["data"]
    capsys.readouterr()
