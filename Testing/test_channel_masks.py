"""Skull-stripped MR channels that do not cover one brain are warned about (channel_masks.py):
a BraTS sequence from another patient lies on the same atlas grid and gave a confident, wrong
segmentation with no warning."""

from __future__ import annotations

import numpy as np
from test_channel_order import BRAIN, NAMES, brats_cases, phantom
from UNetPlusPlusLib.engine import sanity
from UNetPlusPlusLib.engine.channel_masks import different_brains_warning
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.manifest import ModelManifest
from UNetPlusPlusLib.engine.sanity import channel_samples


def test_a_channel_of_another_brain_is_named_and_a_partial_channel_is_not():
    own = phantom(1)  # 4 sequences, one ellipsoid brain (0 outside)
    assert different_brains_warning(channel_samples(list(own)), NAMES) == []
    other = np.roll(phantom(2), 6, axis=3)  # another head: the same size, shifted
    mixed = own.copy()
    mixed[3] = other[3]
    warnings = different_brains_warning(channel_samples(list(mixed)), NAMES)
    assert len(warnings) == 1 and warnings[0].startswith("The input volumes do not cover the")
    assert "'FLAIR' and 'T2' (overlap 0.67, 0.80 inside)" in warnings[0]
    assert "'FLAIR' and 'T1' (" not in warnings[0]  # the three of one brain agree
    partial = own.copy()
    partial[1, :10] = 0  # one sequence with fewer slices: inside the others, one brain
    assert different_brains_warning(channel_samples(list(partial)), NAMES) == []


def test_brats_sequences_of_another_patient_warn_and_own_ones_do_not(shared_data):
    manifest = ModelManifest.load(BRAIN)
    cases = brats_cases(shared_data)
    own = read_volume(cases["Brats18_2013_11_1"], NAMES).array
    other = read_volume(cases["Brats18_CBICA_ABM_1"], NAMES).array
    assert sanity.check_model_samples(manifest, channel_samples(list(own))) == []
    for slot in (0, 3):  # its FLAIR, then its T2: the two runs of tester 8
        mixed = own.copy()
        mixed[slot] = other[slot]
        found = sanity.check_model_samples(manifest, channel_samples(list(mixed)), False)
        assert len(found) == 1 and found[0].startswith("The input volumes do not cover the")
        assert f"'{NAMES[slot]}'" in found[0]
