"""The per-label volume plausibility of a result (engine/volume_plausibility.py): the manifest
key, the warning, the Predictor, the CLI, `unetpp serve`, the Slicer logic and job, and the
shipped models' ranges on the shared reference labels."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import make_sphere_image
from UNetPlusPlusLib.engine.manifest import ModelManifest
from UNetPlusPlusLib.engine.manifest_weights import check_weights_contract
from UNetPlusPlusLib.engine.registry import find_model
from UNetPlusPlusLib.engine.volume_plausibility import (
    check_volumes,
    segment_volumes_ml,
    volume_warning,
)
from UNetPlusPlusLib.errors import UNetPlusPlusError

#: the sphere model's ball (12 mm radius: 7.2 ml) passes; 3x thicker slices in its header do not
RANGE = {"liver": [0, 15]}
MARK = "plausible range"


def _model(sphere_model: Path, folder: Path, ranges) -> Path:
    """A copy of the sphere model whose manifest has ``postprocess.plausible_ml = ranges``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("model.json", "weights.safetensors"):
        shutil.copy(sphere_model.parent / name, folder / name)
    data = json.loads((folder / "model.json").read_text())
    data["postprocess"]["plausible_ml"] = ranges
    (folder / "model.json").write_text(json.dumps(data))
    return folder / "model.json"


def _sphere(folder: Path, slice_mm: float = 2.0) -> Path:
    """The sphere model's ball (2 mm voxels), saved with ``slice_mm`` as its header's z step."""
    image = make_sphere_image((32, 32, 32), (2.0, 2.0, 2.0), radius_mm=12.0)
    image.SetSpacing((2.0, 2.0, slice_mm))
    path = folder / f"ball_{slice_mm:g}mm.nrrd"
    sitk.WriteImage(image, str(path))
    return path


# ---------------------------------------------------------------------------- manifest key
@pytest.mark.parametrize(
    "ranges,problem",
    [
        ({"spleen": [0, 10]}, "not a label of this model"),
        ({"liver": [5, 5]}, "0 <= low < high"),
        ({"liver": [-1, 5]}, "0 <= low < high"),
        ({"liver": [0]}, "two finite numbers"),
        ({"liver": [True, 5]}, "two finite numbers"),
        ({"liver": [0, "3000"]}, "two finite numbers"),
        ([0, 3000], "JSON object"),
    ],
)
def test_a_wrong_range_is_refused_naming_the_field(sphere_model, tmp_path, ranges, problem):
    with pytest.raises(UNetPlusPlusError, match=r"'postprocess\.plausible_ml'") as error:
        ModelManifest.load(_model(sphere_model, tmp_path, ranges))
    assert problem in str(error.value)


def test_the_key_is_optional_and_kept(sphere_model, tmp_path):
    assert "plausible_ml" not in ModelManifest.load(sphere_model).postprocess
    manifest = ModelManifest.load(_model(sphere_model, tmp_path, RANGE))
    assert manifest.postprocess["plausible_ml"] == RANGE
    assert manifest.to_dict()["postprocess"]["plausible_ml"] == RANGE
    with pytest.raises(UNetPlusPlusError, match="infinite|finite"):
        data = json.loads((tmp_path / "model.json").read_text())
        data["postprocess"]["plausible_ml"] = {"liver": [0, float("inf")]}
        (tmp_path / "model.json").write_text(json.dumps(data))  # Infinity: valid to Python
        ModelManifest.load(tmp_path / "model.json")


def test_a_dataset_json_range_is_checked_before_training(tmp_path):
    from UNetPlusPlusLib.training.dataset_json import dataset_from_dict

    data = {
        "name": "d",
        "channels": [{"name": "CT", "modality": "CT"}],
        "labels": ["liver"],
        "sources": [
            {"images": ["{case}.nii.gz"], "label": "{case}_l.nii.gz", "label_map": {"liver": [1]}}
        ],
        "postprocess": {"plausible_ml": {"liver": [0, 3000]}},
    }
    assert dataset_from_dict(data, tmp_path).postprocess["plausible_ml"] == {"liver": [0, 3000]}
    data["postprocess"]["plausible_ml"] = {"livr": [0, 3000]}
    with pytest.raises(UNetPlusPlusError, match=r"'postprocess\.plausible_ml' names 'livr'"):
        dataset_from_dict(data, tmp_path)


# ---------------------------------------------------------------------------- the warning
def test_volumes_are_counted_per_label_in_ml():
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[:5] = 1  # 500 voxels of 2 x 2 x 2.5 mm = 10 mm^3
    labels[5:7] = 2
    assert segment_volumes_ml(labels, (2.0, 2.0, 2.5), [1, 2, 3]) == pytest.approx([5, 2, 0])
    tall = np.ones((40, 2, 2), np.uint8)  # more rows than one slab of the count
    assert segment_volumes_ml(tall, (10.0, 10.0, 10.0), [1]) == pytest.approx([160.0])


def test_the_warning_names_the_volume_the_range_and_the_likely_causes():
    above = volume_warning("liver", 3712.4, (0.0, 3000.0), (0.78, 0.78, 5.0))
    assert above.startswith("The 'liver' segment is 3712 ml, more than the 3000 ml")
    assert "(plausible range 0-3000 ml)" in above
    assert "wrong voxel spacing in the image header (it says 0.78 x 0.78 x 5 mm" in above
    assert "unusual anatomy" in above
    below = volume_warning("liver", 2.0, (10.0, 3000.0), (1.0, 1.0, 1.0))
    assert "is 2 ml, less than the 10 ml" in below and "partial field of view" in below
    assert "wrong voxel spacing" in below and "unusual anatomy" in below
    assert volume_warning("liver", 2999.0, (0.0, 3000.0), (1, 1, 1)) is None
    assert volume_warning("liver", 0.0, (10.0, 3000.0), (1, 1, 1)) is None  # empty: not judged
    click = volume_warning("nodule", 40.0, (0.0, 33.5), (0.7, 0.7, 1.25), at_point=True)
    assert click.startswith("The nodule found at the clicked point is 40 ml")  # CLI renames


def test_only_the_segment_outside_its_range_is_warned():
    manifest = find_model("brain-tumor")  # core, oedema, enhancing: 0-400 ml each
    labels = np.zeros((10, 10, 10), np.uint8)  # 10 mm voxels: 1 ml each
    labels.reshape(-1)[:450] = 2  # 450 ml of oedema
    labels.reshape(-1)[450:460] = 1  # 10 ml of core; no enhancing tumour
    warnings = check_volumes(manifest, labels, (10.0, 10.0, 10.0))
    assert len(warnings) == 1 and warnings[0].startswith("The 'oedema' segment is 450 ml")
    labels[labels == 2] = 0
    assert check_volumes(manifest, labels, (10.0, 10.0, 10.0)) == []


# ---------------------------------------------------------------------------- through the engine
def test_a_wrong_slice_thickness_is_warned_by_the_predictor(sphere_model, tmp_path):
    from UNetPlusPlusLib.engine.image_read import read_volume
    from UNetPlusPlusLib.engine.predictor import Predictor

    predictor = Predictor.from_manifest_path(
        _model(sphere_model, tmp_path, RANGE), device="cpu", threads=2
    )
    right = predictor.segment(read_volume([_sphere(tmp_path)]), depth=2)
    ml = segment_volumes_ml(right.labels.array, right.labels.spacing, [1])[0]
    assert 5.0 < ml < 10.0  # the 7.2 ml ball
    assert not [w for w in right.info["warnings"] if MARK in w]
    wrong = predictor.segment(read_volume([_sphere(tmp_path, 6.0)]), depth=2)
    found = [w for w in wrong.info["warnings"] if MARK in w]
    assert len(found) == 1, wrong.info["warnings"]
    assert "it says 2 x 2 x 6 mm" in found[0] and "more than the 15 ml" in found[0]
    assert wrong.labels.array.any()  # warned, never refused: the result is still there


def test_the_cli_and_serve_show_the_warning_once(sphere_model, tmp_path, capsys):
    from UNetPlusPlusLib.cli import build_parser, main
    from UNetPlusPlusLib.cli_serve import serve
    from UNetPlusPlusLib.warm_cache import WarmCache

    manifest, image = _model(sphere_model, tmp_path, RANGE), _sphere(tmp_path, 6.0)
    argv = [str(image), "--model", str(manifest), "--depth", "2", "--device", "cpu"]
    out = tmp_path / "labels.nrrd"
    assert main(["segment", *argv, "--labelmap", str(out), "--progress-json"]) == 0
    captured = capsys.readouterr()
    events = [json.loads(line) for line in captured.out.splitlines()]
    result = events[-1]["result"]
    assert sum(MARK in w for w in result["warnings"]) == 1
    # a warning about the result is a {"warning"} event too, like the early ones, not stderr text
    assert sum(MARK in e.get("warning", "") for e in events) == 1, events
    assert MARK not in captured.err
    assert result["volumes_ml"]["liver"] > 15.0 and out.is_file()
    assert main(["segment", *argv, "--labelmap", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count("warning: The 'liver' segment is") == 1, err

    replies = io.StringIO()
    request = {"id": 7, "argv": [*argv, "--labelmap", str(out)]}
    serve(io.StringIO(json.dumps(request) + "\n"), replies, build_parser, cache=WarmCache())
    answers = [json.loads(line) for line in replies.getvalue().splitlines()]
    result = next(a["result"] for a in answers if "result" in a)
    assert sum(MARK in w for w in result["warnings"]) == 1
    assert sum(MARK in a.get("warning", "") for a in answers) == 1, answers


def test_the_slicer_logic_and_job_show_the_warning(sphere_model, tmp_path, background_logic):
    pytest.importorskip("slicer")
    import slicer
    from helpers import logic_warnings_both_ways
    from test_adapter_logic import add_volume

    manifest = ModelManifest.load(_model(sphere_model, tmp_path, RANGE))
    logic = background_logic
    scene = slicer.vtkMRMLScene()
    node = add_volume(scene, sitk.ReadImage(str(_sphere(tmp_path, 6.0))), "thick-header")
    said, shown = logic_warnings_both_ways(logic, [node], manifest, depth=2)
    assert sum(MARK in w for w in said) == 1
    assert shown.count("\nWarning: The 'liver' segment is") == 1, shown


# ---------------------------------------------------------------------------- shipped models
@pytest.mark.parametrize("task", ["liver", "brain-tumor", "lung-nodule"])
def test_every_shipped_label_has_a_range_outside_the_training_contract(task):
    """The ranges are post-processing: editing them needs no retraining (manifest_contract.py)."""
    manifest = find_model(task)
    ranges = manifest.postprocess["plausible_ml"]
    assert set(ranges) == {label.name for label in manifest.labels}
    assert all(low == 0 for low, _ in ranges.values())  # partial views give small volumes
    check_weights_contract(manifest)  # the stored contract still matches


def test_a_click_on_a_synthetic_nodule_with_the_shipped_model():
    """The nodule model's range reaches a click's result, named as at the clicked point."""
    from test_point_prompt import SPACING
    from UNetPlusPlusLib.engine.predictor import Predictor
    from UNetPlusPlusLib.engine.volume import Volume

    rng = np.random.default_rng(0)
    array = (-850 + rng.normal(0, 30, (24, 48, 48))).astype(np.float32)
    k, j, i = np.indices(array.shape)
    centre = np.array([24, 24, 12]) * SPACING  # x, y, z mm
    points = np.stack([i * SPACING[0], j * SPACING[1], k * SPACING[2]], axis=-1)
    array[np.linalg.norm(points - centre, axis=-1) <= 4.0] = 50.0  # 0.27 ml
    volume = Volume(array[None], SPACING, (0, 0, 0), np.eye(3), ("CT",))
    predictor = Predictor.from_task("lung-nodule", device="cpu", threads=2)
    result = predictor.segment(volume, point=tuple(centre))
    assert result.labels.array.any()
    assert not [w for w in result.info["warnings"] if MARK in w]  # the shipped 0-33.5 ml
    predictor.manifest.postprocess["plausible_ml"] = {"nodule": [0, 0.05]}
    result = predictor.segment(volume, point=tuple(centre))
    found = [w for w in result.info["warnings"] if MARK in w]
    assert len(found) == 1 and found[0].startswith("The nodule found at the clicked point is")


def test_the_shared_reference_livers_pass_and_a_5_mm_header_is_warned(shared_data):
    """example_ct's reference liver (1126 ml, 3 mm) passes; on 1 mm slices with a header that
    says 5 mm (a thin-slice CT with a wrong slice thickness) it is 5.6 l, and with 5 mm voxels
    in its header 5.2 l: both warned."""
    manifest = find_model("liver")
    path = shared_data / "liver/totalsegmentator-examples/example_seg_fast_force_split.nii.gz"
    label = sitk.ReadImage(str(path))
    liver = (sitk.GetArrayFromImage(label) == 5).astype(np.uint8)
    assert check_volumes(manifest, liver, label.GetSpacing()) == []
    thin = np.repeat(liver, 3, axis=0)  # the same liver on 1 mm slices
    warnings = check_volumes(manifest, thin, (3.0, 3.0, 5.0))  # ... said to be 5 mm
    assert len(warnings) == 1 and "5628 ml" in warnings[0], warnings
    # tester's case: 5 mm voxels in example_ct's header (the model then gave 3746 ml)
    warnings = check_volumes(manifest, liver, (5.0, 5.0, 5.0))
    assert len(warnings) == 1 and "5212 ml" in warnings[0], warnings


def test_two_clicks_on_one_nodule_warn_its_volume_once(shared_data, tmp_path, capfd):
    """Point 2 on point 1's nodule ends empty in the output; its volume warning ('The nodule
    found at point 2 of 2 is 7 ml') contradicted the summary's 'nodule 2 0.0 ml' (tester 11)."""
    from UNetPlusPlusLib.cli import main

    model = tmp_path / "nodule"
    shutil.copytree(Path(find_model("lung-nodule").path).parent, model)
    data = json.loads((model / "model.json").read_text())
    data["postprocess"]["plausible_ml"] = {"nodule": [0.5, 0.6]}
    (model / "model.json").write_text(json.dumps(data))
    lidc = shared_data / "lung-nodule" / "lidc-vois"
    mask = sitk.ReadImage(str(lidc / "nodule_mask" / "LIDC-IDRI-0001_R_1.nii.gz"))
    centre = np.argwhere(sitk.GetArrayFromImage(mask) > 0).mean(0)[::-1]
    x, y, z = mask.TransformContinuousIndexToPhysicalPoint(centre.tolist())
    point = [str(-x), str(-y), str(z)]  # RAS
    image = lidc / "image" / "LIDC-IDRI-0001_R_1.nii.gz"
    out = tmp_path / "out.seg.nrrd"
    argv = ["segment", str(image), "--model", str(model / "model.json"), "-o", str(out)]
    assert main([*argv, "--point", *point, "--point", *point]) == 0
    err = capfd.readouterr().err
    assert err.count("found at point 1 of 2 is") == 1  # above the 0.6 ml of this range
    assert "found at point 2 of 2" not in err and "lies on the lesion of point 1" in err
