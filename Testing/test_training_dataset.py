"""Training datasets: Slicer-export folders, dataset.json descriptions, case reading and errors.

``write_slicer_case`` / ``write_slicer_dataset`` build tiny synthetic cases (a bright ball in a
24^3 CT-like volume) in the Slicer-export layout; the other training tests import them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import slicerio
from UNetPlusPlusLib.engine.volume import canonical_grid
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.resources import builtin_datasets_dir
from UNetPlusPlusLib.training.cases import read_case, read_color_table
from UNetPlusPlusLib.training.dataset import find_cases
from UNetPlusPlusLib.training.dataset_json import load_dataset_json
from UNetPlusPlusLib.training.dataset_labels import select_labels
from UNetPlusPlusLib.training.dataset_slicer import describe_slicer_export
from UNetPlusPlusLib.training.preprocess import build_cache, preprocess_case

DATASETS = builtin_datasets_dir()  # UNetPlusPlusLib/Resources/Datasets (package data)

SIZE = 24
SPACING = 2.0
TUMOR_TERMINOLOGY = {
    "contextName": "Segmentation category and type - DICOM master list",
    "category": ["SCT", "49755003", "Morphologically Altered Structure"],
    "type": ["SCT", "108369006", "Neoplasm"],
}
NECROSIS_TERMINOLOGY = dict(TUMOR_TERMINOLOGY, type=["SCT", "6574001", "Necrosis"])


def ball(center_xyz, radius: float, size: int = SIZE) -> np.ndarray:
    """Boolean (z, y, x) ball of ``radius`` voxels around ``center_xyz``."""
    z, y, x = np.mgrid[:size, :size, :size]
    cx, cy, cz = center_xyz
    return (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= radius**2


def _image(array_zyx: np.ndarray, origin=(0.0, 0.0, 0.0)) -> sitk.Image:
    image = sitk.GetImageFromArray(array_zyx)
    image.SetSpacing((SPACING,) * 3)
    image.SetOrigin(origin)
    return image


def write_slicer_case(
    folder: Path,
    name: str,
    seed: int,
    channels: tuple = ("",),
    segments: tuple = ("tumor",),
    empty: bool = False,
) -> np.ndarray:
    """``<name>.nrrd`` (or ``<name>_<channel>.nrrd``) + ``<name>.seg.nrrd``; returns the mask."""
    rng = np.random.default_rng(seed)
    center = rng.uniform(8, SIZE - 8, size=3)
    mask = ball(center, radius=4.5)
    for channel in channels:
        array = rng.normal(-800.0, 20.0, (SIZE,) * 3).astype(np.float32)
        array[mask] = rng.normal(100.0, 20.0, int(mask.sum()))
        filename = f"{name}_{channel}.nrrd" if channel else f"{name}.nrrd"
        sitk.WriteImage(_image(array.astype(np.int16)), str(folder / filename))
    ijk_to_lps = np.diag([SPACING, SPACING, SPACING, 1.0])
    segmentation = slicerio.create_segmentation((SIZE,) * 3, ijk_to_lps)
    for index, segment in enumerate(segments):
        segment_mask = np.zeros_like(mask) if empty else mask
        if index > 0:  # a second, smaller segment inside the first
            segment_mask = ball(center, radius=2.0) & segment_mask
        slicerio.add_segment(
            segmentation,
            segment_mask.transpose(2, 1, 0),  # (z, y, x) -> slicerio's (i, j, k)
            {
                "id": f"Segment_{index + 1}",
                "name": segment,
                "color": [0.9, 0.3, 0.2],
                "terminology": NECROSIS_TERMINOLOGY if index else TUMOR_TERMINOLOGY,
            },
        )
    slicerio.write_segmentation(str(folder / f"{name}.seg.nrrd"), segmentation)
    return mask


def write_slicer_dataset(folder: Path, cases: int = 4, **kwargs) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(cases):
        write_slicer_case(folder, f"case{i:02d}", seed=i, **kwargs)
    return folder


# ----------------------------------------------------------------------------- Slicer exports
def test_slicer_export_folder_is_described_from_its_files(tmp_path):
    mask = write_slicer_case(tmp_path, "a", seed=1)
    write_slicer_case(tmp_path, "b", seed=2)
    dataset = describe_slicer_export(tmp_path, labels=["tumor"])
    assert [c.modality for c in dataset.channels] == ["CT"]  # guessed from the air
    assert dataset.channels[0].normalization["kind"] == "ct"
    assert dataset.labels[0].terminology["type"]["code"] == "108369006"
    assert dataset.labels[0].color == pytest.approx((0.9, 0.3, 0.2))
    cases = find_cases(dataset)
    assert [c.case_id for c in cases] == ["a", "b"]
    data = read_case(cases[0], dataset)
    assert data.image.array.shape == (1, SIZE, SIZE, SIZE)
    assert np.array_equal(data.labels == 1, mask)


def test_segments_are_picked_by_name_or_terminology_code(tmp_path):
    write_slicer_case(tmp_path, "a", seed=1, segments=("Tumor", "core"))
    dataset = describe_slicer_export(tmp_path, labels=["SCT:108369006", "core"])
    assert dataset.label_names == ["Tumor", "core"]  # a label picked by code takes its name
    data = read_case(find_cases(dataset)[0], dataset)
    assert set(np.unique(data.labels)) == {0, 1, 2}
    assert (data.labels == 2).sum() < (data.labels == 1).sum()  # later labels overwrite
    all_segments = describe_slicer_export(tmp_path)
    assert all_segments.label_names == ["Tumor", "core"]


def test_multichannel_exports_take_channels_in_name_order(tmp_path):
    for i in range(2):
        write_slicer_case(tmp_path, f"brain{i}", seed=i, channels=("t2", "flair", "t1ce", "t1"))
    dataset = describe_slicer_export(tmp_path, labels=["tumor"], modality="MR")
    assert [c.name for c in dataset.channels] == ["flair", "t1", "t1ce", "t2"]
    assert dataset.channels[0].normalization == {"kind": "mr"}
    data = read_case(find_cases(dataset)[0], dataset)
    assert data.image.array.shape[0] == 4


def test_labelmap_with_color_table(tmp_path):
    mask = ball((12, 12, 12), 5)
    labels = np.where(mask, 3, 0).astype(np.uint8)
    sitk.WriteImage(_image(np.where(mask, 100, -800).astype(np.int16)), str(tmp_path / "c.nrrd"))
    sitk.WriteImage(_image(labels), str(tmp_path / "c-label.nrrd"))
    (tmp_path / "c-label.ctbl").write_text(
        "# Color table file\n0 Background 0 0 0 0\n3 liver_tissue 221 130 101 255\n"
    )
    assert read_color_table(tmp_path / "c-label.ctbl")[0].name == "liver tissue"
    dataset = describe_slicer_export(tmp_path, labels=["liver tissue"])
    data = read_case(find_cases(dataset)[0], dataset)
    assert np.array_equal(data.labels == 1, mask)
    assert dataset.labels[0].color == pytest.approx((221 / 255, 130 / 255, 101 / 255))


def test_preprocessing_matches_the_predictor_grid_and_is_cached(tmp_path):
    write_slicer_dataset(tmp_path / "data", cases=2)
    dataset = describe_slicer_export(tmp_path / "data", labels=["tumor"])
    cases = find_cases(dataset)
    data = read_case(cases[0], dataset)
    window = {"kind": "ct", "window": [-1000, 1000]}
    image, labels = preprocess_case(data, (3.0, 3.0, 3.0), [window])
    grid = canonical_grid(data.image, (3.0, 3.0, 3.0))  # what the Predictor infers on
    assert image.shape == (1, *grid.shape_zyx) and labels.shape == grid.shape_zyx
    # the ball (about 9 mm radius) survives resampling at its place
    assert abs(int(labels.sum()) - int(data.labels.sum()) * (2 / 3) ** 3) < 0.25 * labels.sum()
    assert 0.0 <= image.min() and image.max() <= 1.0
    messages = []
    first = build_cache(dataset, cases, (3.0, 3.0, 3.0), tmp_path / "cache", log=messages.append)
    assert len(messages) == 2
    again = build_cache(dataset, cases, (3.0, 3.0, 3.0), tmp_path / "cache", log=messages.append)
    assert len(messages) == 2  # nothing preprocessed twice
    assert np.array_equal(first[1].image, again[1].image)
    assert len(first[0].foreground) == int((first[0].labels > 0).sum())


# ----------------------------------------------------------------------------- dataset.json
def test_dataset_json_maps_label_values_and_splits_by_patient(tmp_path):
    root = tmp_path / "data"
    for patient in ("0001", "0002"):
        for nodule in (1, 2):
            case = f"LIDC-IDRI-{patient}_R_{nodule}"
            mask = ball((12, 12, 12), 3 + nodule)
            for sub, array in (("image", np.where(mask, 50, -900)), ("mask", mask * 4)):
                (root / sub).mkdir(parents=True, exist_ok=True)
                sitk.WriteImage(_image(array.astype(np.int16)), str(root / sub / f"{case}.nii.gz"))
    description = {
        "name": "nodules",
        "channels": [{"name": "CT", "modality": "CT"}],
        "labels": [{"name": "lung nodule"}, {"name": "other"}],
        "sources": [
            {
                "images": ["image/{case}.nii.gz"],
                "label": "mask/{case}.nii.gz",
                "label_map": {"lung nodule": [4], "other": [7]},
                "label_source": "expert",
            }
        ],
        "patient_id": r"LIDC-IDRI-(\d{4})",
    }
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps(description))
    dataset = select_labels(load_dataset_json(path, root), ["lung nodule"])
    cases = find_cases(dataset)
    assert [c.patient_id for c in cases] == ["0001", "0001", "0002", "0002"]
    data = read_case(cases[1], dataset)
    assert np.array_equal(data.labels == 1, ball((12, 12, 12), 5))
    assert dataset.label_sources() == "expert"

    from UNetPlusPlusLib.training.split import split_cases

    train, val = split_cases(cases, 0.5, seed=0)
    assert {c.patient_id for c in train}.isdisjoint({c.patient_id for c in val})
    assert len(train) == len(val) == 2


def test_resources_dataset_descriptions_are_valid(repo_root):
    for path in sorted(DATASETS.glob("*.json")):
        dataset = load_dataset_json(path, repo_root)
        assert dataset.labels and dataset.sources and dataset.spacing, path


@pytest.mark.parametrize("name", ["liver", "brats2018", "lidc-vois"])
def test_public_data_is_found_through_the_descriptions(shared_data, repo_root, name):
    path = DATASETS / f"{name}.json"
    folder = json.loads(path.read_text())["notes"]["data_dir"]
    dataset = load_dataset_json(path, shared_data / folder)
    cases = find_cases(dataset)
    assert len(cases) >= 2
    assert all(len(c.images) == len(dataset.channels) for c in cases)


def test_public_liver_case_reads_with_its_label_mapping(shared_data, repo_root):
    path = DATASETS / "liver.json"
    dataset = load_dataset_json(path, shared_data / "liver")
    case = next(c for c in find_cases(dataset) if "example" in c.case_id)
    data = read_case(case, dataset)
    source = sitk.GetArrayFromImage(sitk.ReadImage(str(case.label)))
    assert np.array_equal(data.labels == 1, source == 5)


# ----------------------------------------------------------------------------- errors
def _error(folder: Path, labels=("tumor",), modality="MR") -> str:
    """The message of reading every case of a Slicer-export folder."""
    with pytest.raises(UNetPlusPlusError) as info:
        dataset = describe_slicer_export(folder, labels=list(labels), modality=modality)
        for case in find_cases(dataset):
            read_case(case, dataset)
    return str(info.value)


def test_missing_segment_names_the_case_and_the_segments(tmp_path):
    write_slicer_case(tmp_path, "a", seed=1, segments=("tumor",))
    message = _error(tmp_path, labels=["liver"])
    assert "Case 'a'" in message and "'liver' not found" in message and "'tumor'" in message


def test_geometry_mismatch_is_reported(tmp_path):
    write_slicer_case(tmp_path, "a", seed=1)
    image = sitk.ReadImage(str(tmp_path / "a.nrrd"))
    image.SetSpacing((1.0, 1.0, 1.0))
    sitk.WriteImage(image, str(tmp_path / "a.nrrd"))
    message = _error(tmp_path)
    assert "Case 'a'" in message and "geometry" in message and "does not match" in message


def test_wrong_number_of_channels_is_reported(tmp_path):
    write_slicer_case(tmp_path, "a", seed=1, channels=("flair", "t1", "t1ce", "t2"))
    write_slicer_case(tmp_path, "b", seed=2, channels=("flair", "t1", "t2"))
    dataset = describe_slicer_export(tmp_path, labels=["tumor"], modality="MR")
    with pytest.raises(UNetPlusPlusError, match=r"Case 'b' has 2 of the 4 channels.*t1ce"):
        find_cases(dataset)


def test_empty_label_is_reported(tmp_path):
    write_slicer_case(tmp_path, "a", seed=1)
    write_slicer_case(tmp_path, "b", seed=2, empty=True)
    message = _error(tmp_path)
    assert "Case 'b'" in message and "empty label" in message


def test_unreadable_files_are_reported(tmp_path):
    write_slicer_case(tmp_path, "a", seed=1)
    data = (tmp_path / "a.nrrd").read_bytes()
    (tmp_path / "a.nrrd").write_bytes(data[: len(data) // 2])
    message = _error(tmp_path)
    assert "Case 'a'" in message and "a.nrrd" in message
    (tmp_path / "a.nrrd").write_bytes(data)
    (tmp_path / "a.seg.nrrd").write_bytes(b"NRRD0004\ngarbage")
    message = _error(tmp_path)
    assert "Case 'a'" in message and "a.seg.nrrd" in message


def test_bad_dataset_json_names_the_field(tmp_path):
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"name": "x", "channels": [{"name": "CT"}], "labels": ["liver"],
                                "sources": [{"images": ["a", "b"], "label": "l",
                                             "label_map": {"liver": [1]}}]}))  # fmt: skip
    with pytest.raises(UNetPlusPlusError, match=r"sources\[0\]\.images.*2 patterns for 1"):
        load_dataset_json(path, tmp_path)


@pytest.mark.parametrize(
    "value, says",
    [
        (["case01", "("], r"validation_cases\[1\]' is not a valid regular expression"),
        ("case01", "'validation_cases' must be a list"),  # its letters were taken as ids
    ],
)
def test_bad_validation_cases_in_dataset_json_name_the_field(tmp_path, value, says):
    """A bad regex in ``validation_cases`` was an internal error at the split, after every
    case had been read (tester fresh30); it is refused with the file, as ``patient_id`` is."""
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"name": "x", "channels": [{"name": "CT"}], "labels": ["liver"],
                                "sources": [{"images": ["{case}.nrrd"], "label": "{case}-l.nrrd",
                                             "label_map": {"liver": [1]}}],
                                "validation_cases": value}))  # fmt: skip
    with pytest.raises(UNetPlusPlusError, match=says):
        load_dataset_json(path, tmp_path)


def test_labels_in_another_axis_order_or_cropped_are_aligned(tmp_path):
    mask = write_slicer_case(tmp_path, "a", seed=1)
    dataset = describe_slicer_export(tmp_path, labels=["tumor"], modality="CT")
    (tmp_path / "a.seg.nrrd").unlink()
    # the same voxels with the y axis flipped (as a NIfTI label of a DICOM series may be)
    flipped = _image(np.ascontiguousarray(mask[:, ::-1, :]).astype(np.uint8))
    flipped.SetDirection((1, 0, 0, 0, -1, 0, 0, 0, 1))
    flipped.SetOrigin((0.0, (SIZE - 1) * SPACING, 0.0))
    sitk.WriteImage(flipped, str(tmp_path / "a-label.nrrd"))
    case = find_cases(dataset)[0]
    case.source.label_map["tumor"] = [1]
    assert np.array_equal(read_case(case, dataset).labels == 1, mask)
    # a segmentation cropped to its extent, as Slicer may save it
    z, y, x = (np.flatnonzero(mask.any(axis=axes)) for axes in ((1, 2), (0, 2), (0, 1)))
    box = mask[z[0] : z[-1] + 1, y[0] : y[-1] + 1, x[0] : x[-1] + 1]
    origin = (x[0] * SPACING, y[0] * SPACING, z[0] * SPACING)
    sitk.WriteImage(_image(box.astype(np.uint8), origin=origin), str(tmp_path / "a-label.nrrd"))
    assert np.array_equal(read_case(case, dataset).labels == 1, mask)


def test_case_names_that_prefix_each_other_stay_separate(tmp_path):
    write_slicer_case(tmp_path, "case_1", seed=1)
    write_slicer_case(tmp_path, "case_1_b", seed=2)
    dataset = describe_slicer_export(tmp_path, labels=["tumor"], modality="CT")
    assert len(dataset.channels) == 1
    cases = find_cases(dataset)
    assert [c.case_id for c in cases] == ["case_1", "case_1_b"]
    assert [c.images[0].name for c in cases] == ["case_1.nrrd", "case_1_b.nrrd"]


def test_validation_cases_that_match_nothing_are_an_error(tmp_path):
    from UNetPlusPlusLib.training.split import split_cases

    write_slicer_dataset(tmp_path, cases=2)
    cases = find_cases(describe_slicer_export(tmp_path, labels=["tumor"], modality="CT"))
    assert [c.case_id for c in split_cases(cases, 0.2, 0, ["case01"])[1]] == ["case01"]
    with pytest.raises(UNetPlusPlusError, match="match no case"):
        split_cases(cases, 0.2, 0, ["case9"])


def test_train_fraction_keeps_whole_patients_and_leaves_validation_alone(tmp_path):
    from UNetPlusPlusLib.training.dataset_types import CaseFiles
    from UNetPlusPlusLib.training.split import split_cases, subset_patients

    def case(patient: int, n: int) -> CaseFiles:
        name = f"P{patient:02d}_{n}"
        return CaseFiles(name, f"P{patient:02d}", [tmp_path / name], tmp_path / name, None)

    cases = [case(p, n) for p in range(10) for n in range(3)]
    train, val = split_cases(cases, 0.2, seed=0)
    half = subset_patients(train, 0.5, seed=0)
    patients = {c.patient_id for c in half}
    assert len(patients) == 4  # half of the 8 training patients, each with all 3 of its crops
    assert half == [c for c in train if c.patient_id in patients]
    assert patients <= {c.patient_id for c in train}
    assert subset_patients(train, 0.5, seed=0) == half  # seeded
    assert subset_patients(train, 1.0, seed=0) == train
    assert len({c.patient_id for c in subset_patients(train, 0.01, seed=0)}) == 1
    with pytest.raises(UNetPlusPlusError, match="train-fraction"):
        subset_patients(train, 0.0, seed=0)


def test_train_fraction_out_of_range_is_one_error_before_any_work(tmp_path, capsys):
    from UNetPlusPlusLib.cli import main

    status = main(["train", str(tmp_path), "-o", str(tmp_path / "out"), "--train-fraction", "1.5"])
    assert status == 2
    assert "argument --train-fraction: must be a fraction in (0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_voxels_of_a_value_no_segment_names_are_warned(tmp_path):
    """A .seg.nrrd whose labelmap holds a value no segment describes (edited outside Slicer):
    training took those voxels as background without a word (tester 18)."""
    write_slicer_case(tmp_path, "a", seed=1, segments=("tumor", "core"))
    dataset = describe_slicer_export(tmp_path, labels=["tumor"])
    assert not read_case(find_cases(dataset)[0], dataset).warnings  # 'core' is named: silent
    path = tmp_path / "a.seg.nrrd"
    segmentation = slicerio.read_segmentation(str(path))
    voxels = np.asarray(segmentation["voxels"]).copy()
    assert voxels.shape == (2, SIZE, SIZE, SIZE)  # overlapping segments: two layers
    voxels[0, :2, :3, :4] = 7  # 24 voxels (i, j, k) of a value without a segment
    segmentation["voxels"] = voxels
    slicerio.write_segmentation(str(path), segmentation)
    (said,) = read_case(find_cases(dataset)[0], dataset).warnings
    assert said.startswith("Case 'a': a.seg.nrrd holds voxels that no segment names")
    assert "(24 of value 7; layer 0)" in said and "taken as background" in said
