"""adapter/panel: the texts and choices the panel derives from a model manifest."""

from __future__ import annotations

from dataclasses import replace

import pytest
from UNetPlusPlusLib.adapter import panel
from UNetPlusPlusLib.engine.manifest import ChannelSpec, ModelManifest

VALIDATION = {
    "data": "BraTS 2018, 3 held-out patients",
    "label_source": "expert",
    "device": "NVIDIA H100",
    "per_depth": {
        "1": {"dice": {"edema": 0.70, "core": 0.50}, "seconds_per_volume": 0.84},
        "3": {"dice": {"edema": 0.80, "core": 0.70}, "seconds_per_volume": 2.5},
        "4": {"dice": {"edema": 0.82, "core": 0.74}, "seconds_per_volume": 12.3},
        "ensemble": {"dice": {"edema": 0.84, "core": 0.76}, "seconds_per_volume": 14.0},
    },
}


@pytest.fixture()
def brain(sphere_model) -> ModelManifest:
    channels = [ChannelSpec(n, "MR", {"kind": "mr"}) for n in ("FLAIR", "T1", "T1ce", "T2")]
    return replace(
        ModelManifest.load(sphere_model),
        task="brain-tumor",
        channels=channels,
        validation=VALIDATION,
        depths=(1, 2, 3, 4),
        recommended_depth=3,
        description="Glioma sub-regions.",
    )


def test_depth_items_show_validation_dice_and_time(brain):
    assert panel.depth_item_text(brain, "1") == "L1 · Dice 0.60 · ~0.8 s"
    assert panel.depth_item_text(brain, "4") == "L4 · Dice 0.78 · ~12 s"
    assert panel.depth_item_text(brain, "ensemble") == "ensemble · Dice 0.80 · ~14 s"
    assert panel.depth_item_text(brain, "2") == "L2 · no validation figures"
    assert panel.depth_item_text(brain, "auto") == "auto (L3) · Dice 0.75 · ~2.5 s"
    tip = panel.depth_tooltip(brain, "auto")
    assert "Dice edema: 0.800" in tip and "on NVIDIA H100" in tip and "BraTS 2018" in tip


def test_depths_missing_from_the_model_are_unavailable(brain):
    pruned = replace(brain, depths=(1, 2))
    assert [panel.depth_available(pruned, c) for c in panel.DEPTH_CHOICES] == [
        True, True, True, False, False, False,
    ]  # fmt: skip
    assert panel.depth_item_text(pruned, "4") == "L4 · not in this model"


def test_titles_and_summary_come_from_the_manifest(brain, sphere_model):
    assert panel.task_title(brain) == "Brain tumor (MR: FLAIR, T1, T1ce, T2)"
    sphere = ModelManifest.load(sphere_model)
    assert panel.task_title(sphere) == "Sphere test (synthetic)"
    summary = panel.model_summary(brain)
    assert "Glioma sub-regions." in summary and "Segments: liver." in summary
    assert "Validated on BraTS 2018, 3 held-out patients (expert)." in summary
    assert not panel.is_prompted(brain)
    nodule = replace(sphere, prompt={"kind": "point", "box_mm": [40, 40, 40]})
    assert panel.is_prompted(nodule) and "Place a point" in panel.model_summary(nodule)


def test_volume_names_fill_the_right_channels():
    channels = ["FLAIR", "T1", "T1ce", "T2"]
    names = [
        "Brats18_2013_11_1_t2",
        "Brats18_2013_11_1_t1ce",
        "Brats18_2013_11_1_flair",
        "Brats18_2013_11_1_t1",
        "CT chest",
    ]
    assert panel.match_channels(channels, names) == [2, 3, 1, 0]
    assert panel.match_channels(channels, ["T1 post-contrast", "MR T2 FLAIR", "pat2_T1w"]) == [
        1, 2, 0, None,
    ]  # fmt: skip
    assert panel.match_channels(channels, ["T1_Gd", "T1+C axial"]) == [None, None, 1, None]
    # the most recently loaded volume wins; a single-channel model is not auto-filled by name
    assert panel.match_channels(channels, ["a_flair", "b_flair"])[0] == 1
    assert panel.match_channels(["CT"], ["ct"]) == [None]
    # the manifest may spell a sequence differently from the volume names
    assert panel.match_channels(["Flair", "T1Gd"], ["x_t1ce", "x_flair"]) == [1, 0]


def test_progress_text_shows_stage_and_tile_percentage():
    assert panel.progress_text("infer", 3, 8) == ("Inference: tile 3 of 8", 38)
    assert panel.progress_text("preprocess", 1, 1) == ("Preparing the image", 100)
    assert panel.progress_text("something", 0, 0) == ("Something", 0)


def test_input_warnings_are_shown_under_the_result():
    assert panel.warnings_text({"warnings": []}) == "" and panel.warnings_text(None) == ""
    text = panel.warnings_text({"warnings": ["a.nrrd has very thick voxels", "second"]})
    assert text == "\nWarning: a.nrrd has very thick voxels\nWarning: second"
