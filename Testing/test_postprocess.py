"""Largest connected component per label."""

from __future__ import annotations

import numpy as np
from UNetPlusPlusLib.engine.postprocess import keep_largest_component


def two_blobs_per_label() -> np.ndarray:
    labels = np.zeros((12, 12, 12), np.uint8)
    labels[1:4, 1:4, 1:4] = 1  # 27 voxels: kept
    labels[8:10, 8:10, 8:10] = 1  # 8 voxels: removed
    labels[1:3, 8:11, 8:11] = 2  # 18 voxels: kept
    labels[9, 1, 1] = 2  # 1 voxel: removed
    return labels


def test_each_label_keeps_only_its_largest_component():
    labels = two_blobs_per_label()
    original = labels.copy()
    out = keep_largest_component(labels)
    assert out.dtype == np.uint8 and out.shape == labels.shape
    assert (out == 1).sum() == 27 and out[1:4, 1:4, 1:4].min() == 1
    assert (out == 2).sum() == 18 and out[9, 1, 1] == 0
    assert np.array_equal(labels, original)  # the input is untouched


def test_only_the_listed_labels_are_processed():
    out = keep_largest_component(two_blobs_per_label(), labels=[2])
    assert (out == 1).sum() == 35 and (out == 2).sum() == 18


def test_diagonal_neighbours_join_only_with_full_connectivity():
    labels = np.zeros((5, 5, 5), np.uint16)
    labels[1:3, 1:3, 1:3] = 7  # 8 voxels
    labels[3, 3, 3] = 7  # touches the cube at a corner only
    assert (keep_largest_component(labels) == 7).sum() == 9
    assert (keep_largest_component(labels, fully_connected=False) == 7).sum() == 8


def test_empty_label_map_is_returned_unchanged():
    empty = np.zeros((3, 4, 5), np.uint8)
    assert np.array_equal(keep_largest_component(empty, labels=[1, 2]), empty)


def test_cropping_to_the_labels_box_changes_nothing():
    """The labels' bounding box is processed alone; the result equals the whole-grid one."""
    import SimpleITK as sitk

    rng = np.random.default_rng(0)
    labels = np.zeros((30, 26, 22), np.uint8)
    labels[5:20, 4:15, 3:12] = (rng.random((15, 11, 9)) < 0.35) * rng.integers(1, 3, (15, 11, 9))
    labels[19, 14, 11] = 2  # touches the box's far corner
    expected = labels.copy()
    for value in (1, 2):  # the previous whole-grid computation
        mask = labels == value
        ranked = sitk.RelabelComponent(
            sitk.ConnectedComponent(sitk.GetImageFromArray(mask.view(np.uint8)), True),
            sortByObjectSize=True,
        )
        expected[mask & (sitk.GetArrayViewFromImage(ranked) != 1)] = 0
    out = keep_largest_component(labels)
    assert np.array_equal(out, expected)
    assert (out != labels).any()  # something was removed: a real test
    empty = np.zeros((4, 5, 6), np.uint8)
    assert np.array_equal(keep_largest_component(empty), empty)


def _whole_box_reference(labels: np.ndarray) -> np.ndarray:
    """The former computation: each label's components over the whole array at once."""
    import SimpleITK as sitk

    expected = labels.copy()
    for value in np.unique(labels)[1:]:
        mask = labels == value
        ranked = sitk.RelabelComponent(
            sitk.ConnectedComponent(sitk.GetImageFromArray(mask.view(np.uint8)), True),
            sortByObjectSize=True,
        )
        expected[mask & (sitk.GetArrayViewFromImage(ranked) != 1)] = 0
    return expected


def test_separate_groups_are_labelled_apart_with_the_same_result():
    """Distant groups (an organ, scattered false positives) are labelled in boxes of their own
    (postprocess._groups); the result is the whole-box one, voxel for voxel."""
    from UNetPlusPlusLib.engine.postprocess import _groups

    rng = np.random.default_rng(3)
    labels = np.zeros((60, 70, 80), np.uint8)
    labels[10:40, 12:45, 15:50] = (rng.random((30, 33, 35)) < 0.55) * rng.integers(
        1, 3, (30, 33, 35)
    )
    for z, y, x in rng.integers(0, 55, (12, 3)):  # small blobs, some far, some near the organ
        labels[z : z + 3, y : y + 4, x + 20 : x + 24] = rng.integers(1, 3)
    assert len(_groups(labels)) > 2  # several groups: the grouped path runs
    np.testing.assert_array_equal(keep_largest_component(labels), _whole_box_reference(labels))


def test_a_tie_between_groups_breaks_as_before():
    """Two equally large components in two groups: the whole box decides, as before."""
    labels = np.zeros((40, 40, 40), np.uint8)
    labels[2:6, 2:6, 2:6] = 1
    labels[30:34, 30:34, 30:34] = 1
    labels[20, 2, 30] = 1
    out = keep_largest_component(labels)
    np.testing.assert_array_equal(out, _whole_box_reference(labels))
    assert (out == 1).sum() == 64


def test_in_place_gives_the_same_labels_without_a_copy():
    labels = two_blobs_per_label()
    expected = keep_largest_component(labels)
    out = keep_largest_component(labels, copy=False)
    assert out is labels and np.array_equal(out, expected)
