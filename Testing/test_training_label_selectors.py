"""``--labels`` by number or by name on Slicer-export folders, and the label-value limits.

A number is a label value: in a labelmap the voxels of that value, in a ``.seg.nrrd`` the
segment of that label value; a name is a segment (or colour-table) name. Before, ``--labels 1``
on ``.seg.nrrd`` files picked a segment *named* "1" whatever its value, else failed with
"segment '1' not found"; on a labelmap, a colour-table entry named "1" won over the value 1;
more than 255 classes ended in an internal OverflowError; and the first labelmap of a folder
was read twice when its values were learnt.
"""

from __future__ import annotations

import numpy as np
import pytest
import slicerio
from test_training_dataset import SIZE, SPACING, _image, ball
from test_training_labelmaps import _write
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.training import cases
from UNetPlusPlusLib.training.dataset import find_cases
from UNetPlusPlusLib.training.dataset_check import check_dataset
from UNetPlusPlusLib.training.dataset_slicer import describe_slicer_export

OUTER, INNER = ball((12, 12, 12), 6), ball((13, 13, 13), 3)
LIVER = OUTER & ~INNER


def _seg(folder, name: str, segments) -> None:
    """``<name>.nrrd`` + ``<name>.seg.nrrd``; ``segments``: (name, mask), given label values
    1, 2, ... in the first layer where they overlap nothing (slicerio, as Slicer stores them)."""
    import SimpleITK as sitk

    sitk.WriteImage(
        _image(np.where(OUTER, 60, -800).astype(np.int16)), str(folder / f"{name}.nrrd")
    )
    segmentation = slicerio.create_segmentation((SIZE,) * 3, np.diag([SPACING] * 3 + [1.0]))
    for index, (segment, mask) in enumerate(segments):
        slicerio.add_segment(
            segmentation, mask.transpose(2, 1, 0), {"id": f"Segment_{index + 1}", "name": segment}
        )
    slicerio.write_segmentation(str(folder / f"{name}.seg.nrrd"), segmentation)


def _labels(dataset, case_id: str) -> np.ndarray:
    case = [c for c in find_cases(dataset) if c.case_id == case_id][0]
    return cases.read_case(case, dataset).labels


def test_a_number_picks_the_segment_of_that_label_value_and_takes_its_name(tmp_path):
    for name in "ab":
        _seg(tmp_path, name, [("liver", LIVER), ("spleen", INNER)])
    dataset = describe_slicer_export(tmp_path, labels=["1"])
    assert dataset.label_names == ["liver"]
    assert check_dataset(dataset, channel_check=False) == []
    assert np.array_equal(_labels(dataset, "b"), LIVER.astype(np.uint8))
    with pytest.raises(UNetPlusPlusError, match="has 2 problem") as error:
        check_dataset(describe_slicer_export(tmp_path, labels=["3"]), channel_check=False)
    assert (
        "Case 'a': a.seg.nrrd has no segment of label value 3 (its segments: 'liver' (value 1, "
        "layer 0), 'spleen' (value 2, layer 0)); a number selects a label value"
    ) in str(error.value)


def test_a_number_another_segment_bears_as_its_name_is_refused_as_ambiguous(tmp_path):
    """Segment '1' holds label value 2 (Slicer keeps names, not values): --labels 1 took it."""
    _seg(tmp_path, "a", [("liver", LIVER), ("1", INNER)])
    dataset = describe_slicer_export(tmp_path, labels=["1"])
    with pytest.raises(UNetPlusPlusError, match="has 1 problem") as error:
        check_dataset(dataset, channel_check=False)
    assert (
        "a.seg.nrrd: --labels '1' is ambiguous: a number selects a label value, and label value 1 "
        "is segment 'liver', but segment '1' (label value 2) bears that number as its name; "
        "rename segment '1' in Slicer, or pick it by its label value (--labels 2)"
    ) in str(error.value)
    by_value = describe_slicer_export(tmp_path, labels=["2"])
    assert by_value.label_names == ["1"]
    assert np.array_equal(_labels(by_value, "a"), INNER.astype(np.uint8))


def test_a_number_picking_another_structure_in_a_later_case_is_warned(tmp_path):
    _seg(tmp_path, "a", [("liver", LIVER), ("spleen", INNER)])
    _seg(tmp_path, "b", [("spleen", INNER), ("liver", LIVER)])
    warnings = check_dataset(describe_slicer_export(tmp_path, labels=["1"]), channel_check=False)
    assert warnings == [
        "Case 'b': the label value that selects 'liver' is segment 'spleen' in b.seg.nrrd; a "
        "number selects the same label value in every case: check that it is the same "
        "structure, or pick the segments by name with --labels."
    ]


def test_a_number_a_colour_table_gives_as_another_value_name_is_refused(tmp_path):
    _write(tmp_path, "a", np.where(INNER, 5, 0) + np.where(LIVER, 1, 0))
    (tmp_path / "a-label.ctbl").write_text("1 liver 221 130 101 255\n5 1 157 108 162 255\n")
    with pytest.raises(UNetPlusPlusError, match="has 1 problem") as error:
        check_dataset(describe_slicer_export(tmp_path, labels=["1"]), channel_check=False)
    assert (
        "Case 'a': --labels '1' is ambiguous: a number selects a label value (1), but the colour "
        "table a-label.ctbl names the value 5 '1'; pick by value (--labels 5)"
    ) in str(error.value)
    dataset = describe_slicer_export(tmp_path, labels=["5"])
    assert dataset.label_names == ["1"]
    assert np.array_equal(_labels(dataset, "a"), INNER.astype(np.uint8))


def _many_values(count: int) -> np.ndarray:
    labels = np.zeros((SIZE,) * 3, dtype=np.int64)
    labels.reshape(-1)[: count * 10] = np.repeat(np.arange(1, count + 1), 10)
    return labels


def test_more_than_255_classes_are_one_error_naming_the_value_and_the_case(tmp_path):
    _write(tmp_path, "a", np.where(OUTER, 1, 0))
    _write(tmp_path, "b", _many_values(300))
    dataset = describe_slicer_export(tmp_path)
    with pytest.raises(UNetPlusPlusError, match="has 1 problem") as error:
        check_dataset(dataset, channel_check=False)
    assert (
        "Case 'b': b-label.nrrd holds the value 256, which would be label 256: a model has at "
        "most 255 labels"
    ) in str(error.value)
    assert len(dataset.labels) == 1  # the refused case added none
    picked = describe_slicer_export(tmp_path, labels=[str(v) for v in range(1, 257)])
    with pytest.raises(UNetPlusPlusError, match="has 256 labels; a model has at most 255"):
        check_dataset(picked, channel_check=False)


def test_each_labelmap_is_read_once_when_its_values_are_learnt(tmp_path, monkeypatch):
    """Before, the description read the first labelmap for its values, then the check again."""
    for name, value in (("a", 1), ("b", 2)):
        _write(tmp_path, name, np.where(INNER, 3 - value, np.where(OUTER, value, 0)))
    reads: list[str] = []
    from UNetPlusPlusLib.engine import image_read

    read = image_read.read_labelmap

    def counted(path, *args, **kwargs):
        reads.append(str(path))
        return read(path, *args, **kwargs)

    monkeypatch.setattr(cases, "read_labelmap", counted)
    monkeypatch.setattr(image_read, "read_labelmap", counted)
    dataset = describe_slicer_export(tmp_path)
    check_dataset(dataset, channel_check=False)
    assert sorted(reads) == sorted(str(tmp_path / f"{n}-label.nrrd") for n in "ab")
    assert dataset.label_names == ["label 1", "label 2"]


def test_a_value_of_several_layers_is_ambiguous_and_an_absent_value_named_as_a_value(tmp_path):
    """Overlapping segments lie in two layers, each with label value 1."""
    _seg(tmp_path, "a", [("liver", OUTER), ("tumour", INNER)])
    with pytest.raises(UNetPlusPlusError, match="has 1 problem") as error:
        check_dataset(describe_slicer_export(tmp_path, labels=["1"]), channel_check=False)
    assert (
        "a.seg.nrrd has several segments of label value 1 (in different layers: 'liver' (value "
        "1, layer 0), 'tumour' (value 1, layer 1)), so the number '1' is ambiguous"
    ) in str(error.value)
    (tmp_path / "lm").mkdir()
    _write(tmp_path / "lm", "b", np.where(OUTER, 1, 0))
    with pytest.raises(UNetPlusPlusError, match="has 1 problem") as error:
        check_dataset(
            describe_slicer_export(tmp_path / "lm", labels=["1", "7"]), channel_check=False
        )
    assert "label 'label 7' (value 7) occurs in no case" in str(error.value)


def test_segments_learnt_without_labels_are_names_even_when_numbers(tmp_path):
    """No --labels: every segment by its name; a segment named '2' of label value 1 is no
    label value 2 (nobody typed it)."""
    _seg(tmp_path, "a", [("2", LIVER), ("1", INNER)])
    dataset = describe_slicer_export(tmp_path)
    assert dataset.label_names == ["2", "1"]
    assert check_dataset(dataset, channel_check=False) == []
    assert np.array_equal(_labels(dataset, "a"), np.where(INNER, 2, np.where(LIVER, 1, 0)))
