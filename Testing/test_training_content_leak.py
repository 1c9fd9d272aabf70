"""A fine-tune (`--init`) recognises a mirror image and a crop within the slices of its
parent's held-out case (training/case_content.py, case_patches.py). Before, a copy flipped
left-right or front-back in the array (direction kept) and an in-plane sub-box (Slicer's "Crop
volume") got prints of their own, trained beside the parent's validation case, and the
fine-tune's validation Dice was silently dishonest. Different patients stay apart, and a
parent that records prints of the older method (v1) is still matched by them (the fine-tune
run of such a parent: test_training_content_match.py, which shares its trained parent).
"""

from __future__ import annotations

import numpy as np
import pytest
from test_training_parent_split import IDS, REGEX, _cases, _ids
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.training.case_content import (
    LEGACY_METHOD,
    MIN_SHARED_PATCHES,
    SAME_IMAGE,
    SHARED_PATCHES,
    CasePrint,
    ContentIndex,
    case_print,
    join_copies,
    recorded_indexes,
)
from UNetPlusPlusLib.training.case_patches import SKETCH
from UNetPlusPlusLib.training.parent_split import ParentCases, parent_cases, split_with_parent

# a v1 print, as the code before v2 computed it (main at 3e19666) for the array below
V1_IMAGE = "b7c478f4f565e0ef5e8e7bc3bf756fe3"
V1_SLICES = "8c1a4ad7ba9dd8a582b7368446ef9e637c65a3065e57067640c56984368f38ba5ab1b7a1"


def ct_like(seed: int, shape=(24, 160, 160)) -> np.ndarray:
    """(1, z, y, x) int16: a noisy body (HU) in -1024 air, as a CT."""
    rng = np.random.default_rng(seed)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    body = ((y - shape[1] / 2) / (0.4 * shape[1])) ** 2 + (
        (x - shape[2] / 2) / 0.45 / shape[2]
    ) ** 2
    array = np.where(body < 1, rng.normal(40, 30, shape), rng.normal(-1000, 15, shape))
    array[:, : shape[1] // 10] = -1024  # a clipped border: constant, as outside the FOV
    return np.clip(array, -1024, 3071).astype(np.int16)[None]


def _held_out_parent(found: CasePrint) -> ParentCases:
    index = ContentIndex(
        {"LIDC-0001": found.image},
        {"LIDC-0001": found.slices_text()},
        {"LIDC-0001": found.patches_text()},
    )
    return ParentCases("parent-model", "ab" * 32, ["LIDC-0001"], [], index, ContentIndex({}))


def _kept_out(copy: CasePrint, parent: ParentCases) -> tuple[list, list[str]]:
    content = {i: CasePrint(f"print-{i}") for i in IDS}
    content["p6_b"] = copy
    split = split_with_parent(_cases(IDS), 0.2, 0, (), parent, REGEX, content)
    assert {"p6_a", "p6_b"} <= set(_ids(split.validation))
    assert "p6_b" not in _ids(split.training)
    return split.record["parent"]["held_out_by_content"], split.notes


@pytest.mark.parametrize("axes", [(-1,), (-2,), (-2, -1)], ids=["left-right", "front-back", "both"])
def test_a_mirror_image_of_a_held_out_case_is_kept_out_of_training(axes):
    volume = ct_like(0)
    held = case_print(volume, np.eye(3))
    mirrored = case_print(np.flip(volume, axes), np.eye(3))  # the direction kept
    assert mirrored.image == held.image and mirrored.slices == held.slices
    matched, notes = _kept_out(mirrored, _held_out_parent(held))
    assert matched == [["p6_b", "LIDC-0001", SAME_IMAGE]]
    assert any(
        "case p6_b has the image content (the same voxels, or their mirror image) of the --init "
        "model parent-model's held-out case LIDC-0001: kept out of training" in n
        for n in notes
    )
    # a mirrored slab of it shares its slice prints
    slab = case_print(np.flip(volume[:, 4:16], axes), np.eye(3))
    assert _held_out_parent(held).held_out_content.match(slab)[:2] == ("LIDC-0001", "shared slices")


@pytest.mark.parametrize("mirror", [False, True])
def test_a_crop_within_the_slices_of_a_held_out_case_is_kept_out_of_training(mirror):
    volume = ct_like(1)
    held = case_print(volume, np.eye(3))
    crop = volume[:, 7:17, 40:120, 37:117]  # a quarter of the slice area, 10 slices
    if mirror:
        crop = crop[..., ::-1]
    cropped = case_print(crop, np.eye(3))
    assert not set(cropped.slices) & set(held.slices)  # no whole slice survives the crop
    matched, notes = _kept_out(cropped, _held_out_parent(held))
    assert matched == [["p6_b", "LIDC-0001", SHARED_PATCHES]]
    note = next(n for n in notes if n.startswith("case p6_b shares "))
    shared = int(note.split()[3])
    assert shared >= MIN_SHARED_PATCHES
    assert note.endswith(
        "sampled 9x9-voxel in-plane patches (one is a crop within the slices of the other) with "
        "the --init model parent-model's held-out case LIDC-0001: kept out of training "
        "(validation instead), as that case would be"
    )
    # the other way round: the parent recorded the crop, the new case is the whole image
    assert _held_out_parent(cropped).held_out_content.match(held)[:2] == (
        "LIDC-0001",
        SHARED_PATCHES,
    )


def test_val_cases_naming_a_crop_of_a_training_case_names_both_and_what_matched():
    volume = ct_like(6)
    trained = case_print(volume, np.eye(3))
    index = ContentIndex({"old": trained.image}, {}, {"old": trained.patches_text()})
    parent = ParentCases("parent-model", "ab" * 32, [], ["old"], ContentIndex({}), index)
    content = {i: CasePrint(f"print-{i}") for i in IDS}
    content["p2_a"] = case_print(volume[:, 3:15, 20:100, 30:110], np.eye(3))
    with pytest.raises(UNetPlusPlusError) as refused:
        split_with_parent(_cases(IDS), 0.2, 0, ["p2_a"], parent, REGEX, content)
    message = str(refused.value)
    assert message.startswith("--val-cases names p2_a, p2_b, which the --init model parent-model")
    assert "(case p2_a shares " in message
    assert "(one is a crop within the slices of the other) with its training case old)" in message


def test_different_patients_and_flat_images_share_no_patch_print():
    prints = [case_print(ct_like(seed), np.eye(3)) for seed in (2, 3)]
    assert len(prints[0].patches) > 100
    assert not set(prints[0].patches) & set(prints[1].patches)
    index = ContentIndex({}, {}, {"a": prints[0].patches_text()})
    assert index.match(prints[1]) is None
    flat = np.full((1, 12, 64, 64), -1024, np.int16)
    flat[0, :, 30, 30] = 100  # a constant slice with one bright voxel: no patch print
    assert case_print(flat, np.eye(3)).patches == ()
    # the sketch keeps at most SKETCH prints, the smallest
    big = case_print(ct_like(4, (40, 256, 256)), np.eye(3))
    assert len(big.patches) == SKETCH and list(big.patches) == sorted(big.patches)


def test_copies_within_a_dataset_join_by_shared_patches():
    volume = ct_like(5)
    content = {i: CasePrint(f"print-{i}") for i in IDS}
    content["p2_a"] = case_print(volume, np.eye(3))
    content["p4_b"] = case_print(volume[:, 2:14, 30:130, 20:120], np.eye(3))
    cases, notes = join_copies(_cases(IDS), content)
    patients = {c.case_id: c.patient_id for c in cases}
    assert patients["p4_b"] == patients["p4_a"] == patients["p2_a"] == "p2"
    assert any("case p4_b shares " in n and "with case p2_a (one is a crop" in n for n in notes)


def test_old_prints_still_load_and_match_with_the_old_method():
    array = np.random.default_rng(7).integers(-1000, 1000, (1, 6, 32, 32)).astype(np.int16)
    direction = np.diag([-1.0, -1.0, 1.0])
    legacy = case_print(array, direction, legacy=True)
    assert (legacy.image, legacy.slices_text()) == (V1_IMAGE, V1_SLICES)  # unchanged
    assert case_print(array, direction).image != V1_IMAGE  # v2 prints differ

    class Manifest:
        name, sha256 = "older", "0" * 64
        validation = {"cases": ["v"]}
        training = {
            "cases": ["t"],
            "case_fingerprints": {
                "method": LEGACY_METHOD,
                "training": {"t": "f" * 32},
                "validation": {"v": V1_IMAGE},
                "validation_slices": {"v": V1_SLICES},
            },
        }

    parent = parent_cases(Manifest)
    assert parent.held_out_content.method == LEGACY_METHOD
    renamed = CasePrint("x" * 32, legacy=legacy)
    assert parent.held_out_content.match(renamed)[:2] == ("v", SAME_IMAGE)
    assert parent.held_out_content.match(CasePrint(V1_IMAGE)) is None  # v2 never meets v1
    content = {i: CasePrint(f"print-{i}", legacy=CasePrint(f"old-{i}")) for i in IDS}
    content["p6_b"] = renamed
    split = split_with_parent(_cases(IDS), 0.2, 0, (), parent, REGEX, content)
    assert "p6_b" in _ids(split.validation)
    assert any("records image fingerprints of an older method" in n for n in split.notes)
    assert recorded_indexes({"case_fingerprints": {"method": "other/v9"}}) is None


def test_real_ct_mirror_and_crop_caught_other_patient_not(shared_data):
    """LiTS volumes 0 and 1 (512 x 512 x 65, two patients): a left-right mirror image and an
    in-plane crop of a quarter of the area over 10 slices of volume 0 match it; volume 1 does
    not."""
    folder = shared_data / "liver" / "lits-partial"
    first = read_volume([folder / "liver_0_ct.nii.gz"], ["ct"])
    second = read_volume([folder / "liver_1_ct.nii.gz"], ["ct"])
    held = case_print(first.array, first.direction)
    index = _held_out_parent(held).held_out_content
    assert index.match(case_print(first.array[..., ::-1], first.direction))[1] == SAME_IMAGE
    crop = first.array[:, 30:40, 128:384, 128:384]
    found = index.match(case_print(crop, first.direction))
    assert found[:2] == ("LIDC-0001", SHARED_PATCHES)
    assert int(found[2].split()[0]) >= 10
    assert index.match(case_print(second.array, second.direction)) is None
