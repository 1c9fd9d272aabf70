"""A fine-tune (`--init`) recognises a renamed or re-saved copy of its parent's cases by image
content (training/case_content.py), not only by case name and patient: a copy of a parent's
held-out case, or a slab of its axial slices, is kept out of training, a copy of a parent's
training case is not drawn for validation (and `--val-cases` naming it is refused). Before, a
renamed copy leaked into training or validation and inflated the reported Dice. A parent
without fingerprints (an older model) is matched by name, with one notice.

Unit tests of the prints and the split; one tiny run trains a parent from scratch (its
model.json records the prints), shared by the fine-tunes on renamed copies of its cases and
of a copy of it whose model.json records v1 prints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk
from test_training_dataset import write_slicer_case, write_slicer_dataset
from test_training_parent_split import IDS, REGEX, _cases, _ids
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.training.case_content import (
    CONTENT_METHOD,
    LEGACY_METHOD,
    SAME_IMAGE,
    SHARED_SLICES,
    CasePrint,
    ContentIndex,
    canonical_axes,
    case_print,
    recorded_indexes,
    volume_print,
)
from UNetPlusPlusLib.training.cli import main
from UNetPlusPlusLib.training.parent_split import (
    ParentCases,
    choose_split,
    parent_cases,
    split_with_parent,
)


# ----------------------------------------------------------------------------- the fingerprint
def _print_of(path: Path) -> CasePrint:
    return volume_print(read_volume([path], ["ct"]))


def content_fingerprint(array, direction) -> str:
    return case_print(array, direction).image


def test_fingerprint_survives_renaming_format_voxel_type_origin_and_axis_order(tmp_path):
    rng = np.random.default_rng(0)
    voxels = rng.integers(-1000, 1000, (7, 9, 11)).astype(np.int16)
    image = sitk.GetImageFromArray(voxels)
    image.SetSpacing((0.7, 0.8, 2.5))
    sitk.WriteImage(image, str(tmp_path / "a.nrrd"))
    as_float = sitk.Cast(image, sitk.sitkFloat32)
    as_float.SetOrigin((10.0, -4.0, 3.0))
    sitk.WriteImage(as_float, str(tmp_path / "renamed.nii.gz"))
    turned = sitk.Flip(sitk.PermuteAxes(image, [2, 0, 1]), [True, False, True])
    sitk.WriteImage(turned, str(tmp_path / "turned.mha"))
    first = _print_of(tmp_path / "a.nrrd")
    assert len(first.image) == 32 and len(first.slices) == 7  # canonical z: 7 slices
    assert _print_of(tmp_path / "renamed.nii.gz") == first
    assert _print_of(tmp_path / "turned.mha") == first  # same physical content, other axes

    changed = voxels.copy()
    changed[3, 4, 5] += 1
    sitk.WriteImage(sitk.GetImageFromArray(changed), str(tmp_path / "changed.nrrd"))
    changed_print = _print_of(tmp_path / "changed.nrrd")
    assert changed_print.image != first.image
    differ = [z for z in range(7) if changed_print.slices[z] != first.slices[z]]
    assert differ == [3]  # only slice 3 changed
    # the same values in another shape are another image
    assert content_fingerprint(voxels.reshape(1, 11, 9, 7), np.eye(3)) != first.image
    # two channels hash in order
    pair = np.stack([voxels, changed])
    assert content_fingerprint(pair, np.eye(3)) != content_fingerprint(pair[::-1], np.eye(3))


def test_canonical_axes_of_an_oblique_direction_is_none_and_the_hash_still_works():
    rng = np.random.default_rng(3)
    for _ in range(100):  # a rotation whose two index axes are nearest to one LPS axis
        oblique = np.linalg.qr(rng.normal(size=(3, 3)))[0]
        if sorted(np.abs(oblique).argmax(axis=0).tolist()) != [0, 1, 2]:
            break
    assert canonical_axes(oblique) is None
    assert canonical_axes(np.eye(3)) == ((0, 1, 2), ())
    assert canonical_axes(np.diag([-1.0, -1.0, 1.0])) == ((0, 1, 2), (1, 2))  # RAS: y, x flipped
    array = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4)
    assert content_fingerprint(array, oblique) == content_fingerprint(array, np.eye(3))


def test_a_slab_shares_slice_prints_and_constant_slices_print_nothing():
    rng = np.random.default_rng(1)
    volume = rng.normal(0, 100, (1, 40, 16, 16)).astype(np.float32)
    volume[0, :4] = 0.0  # empty border slices, as in a skull-stripped MR
    volume[0, 3, 0, :10] = 5.0  # and one with 10 varying voxels only
    whole = case_print(volume, np.eye(3))
    assert len(whole.slices) == 36
    slab = case_print(volume[:, 10:25], np.eye(3))
    assert slab.image != whole.image and set(slab.slices) <= set(whole.slices)
    index = ContentIndex({"whole": whole.image}, {"whole": whole.slices_text()})
    assert index.match(whole)[:2] == ("whole", SAME_IMAGE)
    assert index.match(slab) == ("whole", SHARED_SLICES, "15 whole axial slice(s)")
    other = rng.normal(0, 100, (1, 40, 16, 16)).astype(np.float32)
    other[0, :4] = 0.0  # the same empty slices do not make it the same image
    assert index.match(case_print(other, np.eye(3))) is None
    assert CasePrint.from_text(whole.image, whole.slices_text(), whole.patches_text()) == whole


def test_recorded_indexes_need_the_same_method():
    record = {"method": CONTENT_METHOD, "training": {"a": "1" * 32}, "validation": {}}
    found = recorded_indexes({"case_fingerprints": record})
    assert found["training"].match(CasePrint("1" * 32))[:2] == ("a", SAME_IMAGE)
    assert found["validation"].match(CasePrint("1" * 32)) is None
    assert recorded_indexes({"case_fingerprints": {**record, "method": "other/v9"}}) is None
    assert recorded_indexes({}) is None and recorded_indexes(None) is None


# ----------------------------------------------------------------------------- the split
CONTENT = {i: CasePrint(f"print-{i}") for i in IDS}  # case id -> print, all different


def _parent(held: dict, trained: dict) -> ParentCases:
    """A parent whose held-out / training cases (parent id -> CasePrint) are not in IDS."""
    return ParentCases(
        "parent-model",
        "ab" * 32,
        list(held),
        list(trained),
        held_out_content=ContentIndex({case: p.image for case, p in held.items()}),
        trained_content=ContentIndex({case: p.image for case, p in trained.items()}),
    )


@pytest.mark.parametrize("seed", range(5))
def test_a_renamed_copy_of_a_held_out_case_is_kept_out_of_training(seed):
    parent = _parent({"LIDC-0001": CONTENT["p3_a"]}, {"LIDC-0002": CONTENT["p5_b"]})
    split = split_with_parent(_cases(IDS), 0.2, seed, (), parent, REGEX, CONTENT)
    assert {"p3_a", "p3_b"} <= set(_ids(split.validation))  # the copy and its patient
    assert not {"p3_a", "p3_b"} & set(_ids(split.training))
    record = split.record["parent"]
    assert record["content_matched"] is True
    assert record["held_out_by_content"] == [["p3_a", "LIDC-0001", SAME_IMAGE]]
    assert record["training_by_content"] == [["p5_b", "LIDC-0002", SAME_IMAGE]]
    notes = " | ".join(split.notes)
    assert (
        "case p3_a has the image content (the same voxels, or their mirror image) of the --init "
        "model parent-model's held-out case LIDC-0001" in notes
    )
    assert "case LIDC-0001: kept out of training" in notes
    assert "records no image fingerprints" not in notes


def test_a_slab_of_a_held_out_case_is_kept_out_of_training():
    rng = np.random.default_rng(2)
    volume = rng.normal(0, 100, (1, 30, 16, 16)).astype(np.float32)
    held = case_print(volume, np.eye(3))
    parent = ParentCases(
        "parent-model",
        "ab" * 32,
        ["LIDC-0001"],
        [],
        held_out_content=ContentIndex({"LIDC-0001": held.image}, {"LIDC-0001": held.slices_text()}),
        trained_content=ContentIndex({}),
    )
    content = {**CONTENT, "p6_b": case_print(volume[:, 5:12], np.eye(3))}
    split = split_with_parent(_cases(IDS), 0.2, 0, (), parent, REGEX, content)
    assert {"p6_a", "p6_b"} <= set(_ids(split.validation))
    assert split.record["parent"]["held_out_by_content"] == [["p6_b", "LIDC-0001", SHARED_SLICES]]
    assert any("case p6_b shares 7 whole axial slice(s) (one is a slab" in n for n in split.notes)


def test_a_renamed_copy_of_a_training_case_is_never_drawn_for_validation():
    trained = {f"old-{i}": CONTENT[i] for i in IDS if not i.startswith(("p0", "p8", "p9"))}
    for seed in range(6):
        split = split_with_parent(_cases(IDS), 0.3, seed, (), _parent({}, trained), REGEX, CONTENT)
        assert {c.patient_id for c in split.validation} == {"p0", "p8", "p9"}
    # without the fingerprints the same draw takes patients the parent trained on
    drawn = set()
    for seed in range(6):
        split = split_with_parent(_cases(IDS), 0.3, seed, (), _parent({}, trained), REGEX, {})
        drawn |= {c.patient_id for c in split.validation}
        assert any("is not recognised" in note for note in split.notes)
    assert drawn - {"p0", "p8", "p9"}


def test_val_cases_naming_a_copy_of_a_training_case_is_refused():
    parent = _parent({}, {"old-case": CONTENT["p2_a"]})
    with pytest.raises(UNetPlusPlusError, match="--val-cases names p2_a, p2_b, which the --init"):
        split_with_parent(_cases(IDS), 0.2, 0, ["p2_a"], parent, REGEX, CONTENT)


def test_a_parent_without_fingerprints_is_matched_by_name_with_one_notice():
    older = ParentCases("old-model", "cd" * 32, ["p1_a"], ["p2_a"])
    split = split_with_parent(_cases(IDS), 0.2, 0, (), older, REGEX, CONTENT)
    assert {"p1_a", "p1_b"} <= set(_ids(split.validation))
    notices = [n for n in split.notes if "records no image fingerprints" in n]
    assert len(notices) == 1 and "matched by case name and patient only" in notices[0]
    assert split.record["parent"]["content_matched"] is False


def test_parent_cases_reads_the_recorded_fingerprints():
    class Manifest:
        name, sha256 = "m", "0" * 64
        validation = {"cases": ["v"]}
        training = {
            "cases": ["t"],
            "case_fingerprints": {
                "method": CONTENT_METHOD,
                "training": {"t": "f" * 32},
                "validation": {"v": "e" * 32},
                "validation_slices": {"v": "0123456789ab" * 2},
            },
        }

    found = parent_cases(Manifest)
    assert found.held_out_content.by_image == {"e" * 32: "v"}
    assert found.held_out_content.by_slice == {"0123456789ab": "v"}
    assert found.trained_content.by_image == {"f" * 32: "t"}


@pytest.mark.parametrize("seed", range(6))
def test_copies_within_a_dataset_are_split_as_one_patient(seed):
    """Without any parent: a renamed copy (p7_b = p1_a) and a slab (p4_a of p2_b) never end
    up on the other side of the split from their original; their patients go together."""
    rng = np.random.default_rng(seed)
    volume = rng.normal(0, 100, (1, 20, 16, 16)).astype(np.float32)
    content = {**CONTENT, "p7_b": CONTENT["p1_a"]}
    content["p2_b"] = case_print(volume, np.eye(3))
    content["p4_a"] = case_print(volume[:, 3:9], np.eye(3))
    config = SimpleNamespace(val_fraction=0.3, seed=seed, train_fraction=1.0)
    dataset = SimpleNamespace(validation_cases=[], patient_regex=REGEX)
    split = choose_split(_cases(IDS), config, dataset, content=content)
    for group in ({"p1_a", "p1_b", "p7_a", "p7_b"}, {"p2_a", "p2_b", "p4_a", "p4_b"}):
        sides = {side for side, cases in (("t", split.training), ("v", split.validation))
                 if group & set(_ids(cases))}  # fmt: skip
        assert len(sides) == 1, (group, _ids(split.validation))
    notes = " | ".join(split.notes)
    assert "case p7_b has the image content of case p1_a" in notes
    assert "patients p1 and p7 are split as one" in notes
    assert "case p4_a has the image content of case p2_b" in notes
    # an older run resumed without a recorded split keeps the plain split it started with
    old = choose_split(_cases(IDS), config, dataset, resume=True, content=content)
    assert not any("has the image content" in n for n in old.notes)


# ----------------------------------------------------------------------------- tiny runs
TINY = ["--labels", "tumor", "--no-progress", "--threads", "1", "--precision", "fp32"]
TINY += ["--tile", "32", "16", "16", "--batch-size", "1", "--iterations-per-epoch", "1"]
TINY += ["--features", "4", "8", "16", "32", "64", "4", "--epochs", "1", "--no-augment"]


def _copy_case(source: Path, name: str, folder: Path, name_to: str, float32: bool = False):
    image = sitk.ReadImage(str(source / f"{name}.nrrd"))
    if float32:  # re-saved in another voxel type
        image = sitk.Cast(image, sitk.sitkFloat32)
    sitk.WriteImage(image, str(folder / f"{name_to}.nrrd"))
    shutil.copy(source / f"{name}.seg.nrrd", folder / f"{name_to}.seg.nrrd")


@pytest.fixture(scope="module")
def parent_run(tmp_path_factory) -> tuple[Path, Path]:
    """(first, parent): four synthetic cases and a model trained on them from scratch with
    case01 held out, shared by the fine-tune tests below (a test that edits it edits a copy)."""
    root = tmp_path_factory.mktemp("content-parent")
    first = write_slicer_dataset(root / "first", cases=4)
    parent = root / "parent"
    assert main([str(first), "-o", str(parent), *TINY, "--val-cases", "case01"]) == 0
    return first, parent


@pytest.mark.usefixtures("one_torch_thread")
def test_fine_tune_on_renamed_copies_of_the_parents_cases(parent_run, tmp_path, capsys):
    first, parent = parent_run
    recorded = json.loads((parent / "model.json").read_text())["training"]["case_fingerprints"]
    assert recorded["method"] == CONTENT_METHOD
    assert sorted(recorded["training"]) == ["case00", "case02", "case03"]
    assert list(recorded["validation"]) == ["case01"]
    assert recorded["validation"]["case01"] == _print_of(first / "case01.nrrd").image
    assert recorded["validation_slices"]["case01"] == _print_of(first / "case01.nrrd").slices_text()

    second = tmp_path / "second"
    second.mkdir()
    _copy_case(first, "case01", second, "held_copy", float32=True)  # int16 -> float32
    _copy_case(first, "case00", second, "trained_copy")
    for seed in (4, 5, 6):
        write_slicer_case(second, f"new{seed}", seed=seed)
    out = tmp_path / "out"
    args = [str(second), "-o", str(out), *TINY, "--init", str(parent), "--val-fraction", "0.5"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "case held_copy has the image content (the same voxels, or their mirror" in printed
    assert "held-out case case01: kept out of training" in printed
    assert "case trained_copy has the image content (the same voxels, or their" in printed
    split = json.loads((out / "plan.json").read_text())["split"]
    assert "held_copy" in split["validation"] and "held_copy" not in split["training"]
    assert "trained_copy" in split["training"] and "trained_copy" not in split["validation"]
    card = (out / "CARD.md").read_text()
    assert "held_copy = case01" in card and "trained_copy = case00" in card
    assert "a renamed or re-saved copy, a mirror image, a slab of its slices or a crop" in card

    refused = [*args, "-o", str(tmp_path / "refused"), "--val-cases", "trained_copy"]
    assert main(refused) == 2
    assert "--val-cases names trained_copy, which the --init model" in capsys.readouterr().err


@pytest.mark.usefixtures("one_torch_thread")
def test_fine_tune_of_a_v1_parent_reads_its_cases_once_more(parent_run, tmp_path, capsys):
    """A parent whose model.json holds v1 prints (trained before v2): the fine-tune computes
    its cases' v1 prints and still finds a renamed copy of the held-out case
    (test_training_content_leak.py has the other v1 checks)."""
    first, trained = parent_run
    parent = tmp_path / "parent"
    shutil.copytree(trained, parent, ignore=shutil.ignore_patterns("cache", "checkpoint"))
    manifest = json.loads((parent / "model.json").read_text())
    assert manifest["training"]["case_fingerprints"]["method"] == CONTENT_METHOD
    old = {}
    for side in ("training", "validation"):
        for case in manifest["training"]["case_fingerprints"][side]:
            found = case_print(*_array(first / f"{case}.nrrd"), legacy=True)
            old.setdefault(side, {})[case] = found.image
            old.setdefault(f"{side}_slices", {})[case] = found.slices_text()
    manifest["training"]["case_fingerprints"] = {"method": LEGACY_METHOD, **old}
    (parent / "model.json").write_text(json.dumps(manifest))

    second = tmp_path / "second"
    second.mkdir()
    _copy_case(first, "case01", second, "held_copy")
    _copy_case(first, "case02", second, "other")
    _copy_case(first, "case03", second, "another")
    out = tmp_path / "out"
    assert main([str(second), "-o", str(out), *TINY, "--init", str(parent)]) == 0
    printed = capsys.readouterr().out
    assert "records image fingerprints of an older method" in printed
    assert "reading the 3 case(s) once more" in printed
    assert "case held_copy has the image content" in printed
    split = json.loads((out / "plan.json").read_text())["split"]
    assert split["validation"] == ["held_copy"]
    recorded = json.loads((out / "model.json").read_text())["training"]["case_fingerprints"]
    assert recorded["method"] == CONTENT_METHOD  # the new model records v2


def _array(path: Path):
    volume = read_volume([path], ["ct"])
    return volume.array, volume.direction


# ----------------------------------------------------------------------------- shipped models
@pytest.mark.parametrize("task", ["liver", "brain-tumor", "lung-nodule"])
def test_shipped_models_record_the_fingerprints_of_their_split_and_keep_their_weights(task):
    from UNetPlusPlusLib.engine.manifest import ModelManifest
    from UNetPlusPlusLib.engine.manifest_weights import check_weights_contract
    from UNetPlusPlusLib.resources import builtin_models_dir

    manifest = ModelManifest.load(builtin_models_dir() / task / "model.json")
    check_weights_contract(manifest)  # sha256 and training contract of the unchanged weights
    found = parent_cases(manifest)
    assert sorted(found.trained_content.by_image.values()) == sorted(manifest.training["cases"])
    assert sorted(found.held_out_content.by_image.values()) == sorted(found.held_out)
    assert set(found.held_out_content.by_slice.values()) == set(found.held_out)


def test_shipped_liver_fingerprints_are_those_a_training_run_computes(shared_data):
    """scripts/add_case_fingerprints.py --check: the recorded fingerprints, recomputed from
    ../shared/data the way a run does (read_volume of the case's channels)."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parent.parent / "scripts" / "add_case_fingerprints.py"
    done = subprocess.run(
        [sys.executable, str(script), "--check", "--data", str(shared_data), "liver"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "liver: recorded fingerprints match" in done.stdout
