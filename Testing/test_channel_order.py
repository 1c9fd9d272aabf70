"""The sequence-order check of multi-channel MR models (engine/channel_order.py).

A synthetic four-sequence phantom (no shared data needed) with its own reference, then the real
BraTS cases (skipped without ../shared/data): the correct order passes on every case, the
swaps the study catches are refused (docs/INPUT_CHECKS_MR.md), nothing is written, the data and
geometry stay as they were, and a manifest without a fingerprint skips the check.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from brats_store import brats_cases
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.engine import channel_order as co
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.manifest import ModelManifest
from UNetPlusPlusLib.engine.sanity import channel_samples, check_model_input
from UNetPlusPlusLib.engine.streamed_checks import check_files
from UNetPlusPlusLib.engine.volume import Volume
from UNetPlusPlusLib.errors import UNetPlusPlusError

REPO = Path(__file__).resolve().parents[1]
BRAIN = REPO / "UNetPlusPlus" / "UNetPlusPlusLib" / "Resources" / "Models" / "brain-tumor"
NAMES = ("FLAIR", "T1", "T1ce", "T2")
SUFFIXES = ("flair", "t1", "t1ce", "t2")
# intensity of (white matter, grey matter, CSF, lesion) in each synthetic sequence
CONTRASTS = np.array(
    [[300, 350, 80, 700], [500, 400, 150, 350], [500, 420, 160, 900], [250, 350, 900, 700]],
    dtype=np.float32,
)


# ------------------------------------------------------------------------ synthetic phantom
def phantom(seed: int, shape=(40, 44, 48)) -> np.ndarray:
    """(4, z, y, x) float32: a skull-stripped 'brain' (ellipsoid, 0 outside) of white matter,
    grey matter, CSF and a lesion, each sequence with its own contrast and noise."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    radius = np.sqrt(z**2 + y**2 + x**2)
    tissue = np.where(radius < 0.45, 0, np.where(radius < 0.75, 1, 2))  # WM, GM, CSF shells
    centre = rng.uniform(-0.3, 0.3, 3)
    lesion = (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 < 0.3**2
    tissue[lesion] = 3
    image = CONTRASTS[:, tissue] * rng.uniform(0.8, 1.2, (4, 1, 1, 1)).astype(np.float32)
    image += rng.normal(0, 25, image.shape).astype(np.float32)
    image = np.maximum(image, 1.0)
    image[:, radius >= 0.95] = 0.0
    return image.astype(np.float32)


@functools.cache
def phantom_reference() -> str:
    """The channel fingerprint reference of phantoms 0..5 (JSON: each caller gets its own copy),
    computed once per session."""
    prints = [co.fingerprint(channel_samples(list(phantom(s)))) for s in range(6)]
    return json.dumps(co.build_reference(prints))


def synthetic_manifest(tmp_path: Path, with_reference: bool = True) -> ModelManifest:
    """A four-sequence MR model whose reference comes from phantoms 0..5 (no weights file:
    the checks run before any weights are read)."""
    data = json.loads((BRAIN / "model.json").read_text(encoding="utf-8"))
    data["inference"] = {}
    if with_reference:
        data["inference"]["channel_fingerprint"] = json.loads(phantom_reference())
    path = tmp_path / "model" / "model.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return ModelManifest.load(path)


#: (x, y, z) mm: the phantom's box is 130 x 145 x 156 mm and its brain fills about 1.3 l, as a
#: real one (the order check leaves a brain under 600 ml, a crop, unchecked)
SPACING, ORIGIN = (2.7, 3.3, 3.9), (-90.0, 12.5, 40.0)
DIRECTION = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


def as_volume(array: np.ndarray) -> Volume:
    """The phantom on an oblique-free but non-trivial LPS grid (checked unchanged below)."""
    return Volume(array, SPACING, ORIGIN, DIRECTION.copy(), channel_names=NAMES)


def phantom_file(channel: np.ndarray, path) -> str:
    """Write one (z, y, x) phantom channel at :data:`SPACING` to ``path``; returns it."""
    image = sitk.GetImageFromArray(channel)
    image.SetSpacing(SPACING)
    sitk.WriteImage(image, str(path))
    return str(path)


def test_phantom_in_its_order_passes_and_every_other_order_is_refused(tmp_path):
    manifest = synthetic_manifest(tmp_path)
    image = phantom(100)  # not one of the reference's phantoms
    assert check_model_input(manifest, as_volume(image)) == []
    import itertools

    for order in list(itertools.permutations(range(4)))[1:]:
        swapped = image[list(order)].copy()
        before = swapped.copy()
        volume = as_volume(swapped)
        with pytest.raises(UNetPlusPlusError) as error:
            check_model_input(manifest, volume)
        assert np.array_equal(volume.array, before)  # data and geometry left as they were
        assert volume.spacing == SPACING and volume.origin == ORIGIN
        assert np.array_equal(volume.direction, DIRECTION)
        message = str(error.value)
        assert "\n" not in message and "--no-channel-check" in message
        moved = [s for s in range(4) if order[s] != s]
        for slot in moved:  # slot holds sequence order[slot]: named both ways
            assert f"the volume given as {NAMES[slot]} looks like {NAMES[order[slot]]}" in message
        assert np.array_equal(swapped, before)  # the input is left as it was


def test_bypass_manifest_switch_and_old_manifests(tmp_path):
    manifest = synthetic_manifest(tmp_path)
    swapped = as_volume(phantom(7)[[3, 1, 2, 0]].copy())
    with pytest.raises(UNetPlusPlusError, match="wrong order"):
        check_model_input(manifest, swapped)
    assert check_model_input(manifest, swapped, channel_check=False) == []
    off = copy.deepcopy(manifest)
    off.inference["channel_check"] = False
    assert check_model_input(off, swapped) == []
    old = synthetic_manifest(tmp_path / "old", with_reference=False)  # no fingerprint: no check
    assert "channel_fingerprint" not in old.inference
    assert check_model_input(old, swapped) == []


def test_serve_cache_keeps_checks_per_bypass_setting(tmp_path):
    """``unetpp serve`` keeps the input checks per volume: a bypassed request must not let a
    later checked request through, nor a refusal block a later bypassed one."""
    from UNetPlusPlusLib.warm_cache import WarmCache

    manifest = synthetic_manifest(tmp_path)
    swapped = as_volume(phantom(8)[[1, 0, 2, 3]].copy())
    cache = WarmCache()
    with pytest.raises(UNetPlusPlusError, match="wrong order"):
        cache.input_checks(manifest, swapped)
    assert cache.input_checks(manifest, swapped, channel_check=False) == []
    with pytest.raises(UNetPlusPlusError, match="wrong order"):
        cache.input_checks(manifest, swapped, channel_check=True)


def test_manifest_field_is_validated_and_round_trips(tmp_path):
    manifest = synthetic_manifest(tmp_path)
    again = ModelManifest.from_dict(manifest.to_dict())
    assert again.inference == manifest.inference
    for bad, field in (
        ({"version": 1, "channels": 3, "mean": [], "std": []}, "channels must be 4"),
        ({**manifest.inference["channel_fingerprint"], "mean": [0.0] * 9}, "mean must hold 10"),
        ({**manifest.inference["channel_fingerprint"], "std": [float("nan")] * 10}, "std must"),
    ):
        data = manifest.to_dict()
        data["inference"]["channel_fingerprint"] = bad
        with pytest.raises(UNetPlusPlusError, match=field):
            ModelManifest.from_dict(data)
    data = manifest.to_dict()
    data["inference"]["channel_check"] = "yes"
    with pytest.raises(UNetPlusPlusError, match="channel_check"):
        ModelManifest.from_dict(data)


def test_input_unlike_the_training_data_gets_a_warning_not_a_refusal(tmp_path):
    """When even the best order fits the reference badly (distance > MAX_FIT: other data than
    the model was trained on), a clearly better order is only a warning that the order could
    not be checked, naming the closest order."""
    reference = copy.deepcopy(synthetic_manifest(tmp_path).inference["channel_fingerprint"])
    reference["mean"][6:] = [v + 1.5 for v in reference["mean"][6:]]  # skewness far off
    samples = channel_samples(list(phantom(4)[[3, 1, 2, 0]]))
    verdict = co.compare(co.fingerprint(samples), reference)
    assert verdict.gap > co.REFUSE_GAP and verdict.best_distance > co.MAX_FIT
    found = co.check_channel_order(samples, reference, NAMES)
    assert len(found) == 1 and found[0].startswith("The sequence order could not be checked")
    assert "the closest order: " in found[0] and "given as FLAIR looks like T2" in found[0]


def test_no_check_without_a_joint_mask_or_for_one_channel(tmp_path):
    reference = synthetic_manifest(tmp_path).inference["channel_fingerprint"]
    sparse = phantom(3)
    sparse[:, :, :, 2:] = 0  # a sliver of brain: too few voxels to judge
    samples = channel_samples(list(sparse[[3, 1, 2, 0]]))
    assert co.fingerprint(samples) is None
    assert co.check_channel_order(samples, reference, NAMES) == []
    assert co.check_channel_order(channel_samples([phantom(3)[0]]), reference, NAMES) == []


def test_streamed_samples_decide_as_the_whole_array(tmp_path):
    """``--roi`` checks the files streamed slab by slab: the same voxels, the same refusal."""
    manifest = synthetic_manifest(tmp_path)
    image = phantom(11)[[1, 0, 2, 3]]
    paths = []
    for name, channel in zip(NAMES, image):
        paths.append(Path(phantom_file(channel, tmp_path / f"{name}.nii.gz")))
    reference = manifest.inference["channel_fingerprint"]

    def order_check(samples):
        return co.check_channel_order(samples, reference, NAMES)

    with pytest.raises(UNetPlusPlusError) as whole:
        check_model_input(manifest, read_volume(paths, NAMES))
    with pytest.raises(UNetPlusPlusError) as streamed:
        check_files(paths, ["MR"] * 4, NAMES, slab_voxels=20_000, order_check=order_check)
    assert str(streamed.value) == str(whole.value)


def test_cli_refuses_in_one_line_and_writes_nothing(tmp_path, capsys):
    manifest = synthetic_manifest(tmp_path)
    image = phantom(12)[[3, 1, 2, 0]]
    paths = []
    for name, channel in zip(NAMES, image):
        paths.append(phantom_file(channel, tmp_path / f"{name}.nii.gz"))
    out = tmp_path / "out.seg.nrrd"
    args = ["segment", *paths, "--model", str(manifest.path), "-o", str(out), "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: The input volumes seem to be in the wrong order")
    assert err.count("\n") == 1 and not out.exists()
    # with --roi the whole files are checked streamed (cli_segment._read_roi_region): refused too
    assert main([*args, "--roi", "10", "10", "10", "30", "30", "30", "--lps"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: The input volumes seem to be in the wrong order")
    assert not out.exists()
    # bypassed, the run goes past the check (and stops at the missing weights of this fixture)
    assert main([*args, "--no-channel-check"]) != 0
    err = capsys.readouterr().err
    assert "wrong order" not in err and not out.exists()


def mrml_channel_nodes(channels: np.ndarray):
    """(scene, nodes): a real MRML scene (slicer-core) with one int16 scalar volume node per
    (z, y, x) channel of ``channels``, named as :data:`NAMES`; skips without slicer-core."""
    slicer = pytest.importorskip("slicer")
    if not hasattr(slicer, "vtkMRMLScene"):
        pytest.skip("slicer-core (MRML) is not installed")
    from UNetPlusPlusLib.adapter import geometry
    from UNetPlusPlusLib.engine.image_read import volume_from_sitk

    scene = slicer.vtkMRMLScene()
    nodes = []
    for name, channel in zip(NAMES, channels):
        itk = sitk.GetImageFromArray(channel.astype(np.int16))
        itk.SetSpacing(SPACING)
        itk.SetOrigin((-90.0, -126.0, -72.0))  # a scan's origin, not an array's default
        nodes.append(geometry.volume_node_from_volume(scene, volume_from_sitk([itk]), name))
    return scene, nodes


def test_slicer_logic_refuses_before_a_job_and_can_be_bypassed(tmp_path):
    """The Slicer Logic (real MRML, slicer-core) checks the nodes' own voxels: a swapped order
    is refused before any job starts, the scene untouched; ``channel_check = False`` lets it
    through (the panel's 'Check sequence order' box)."""
    manifest = synthetic_manifest(tmp_path)
    scene, nodes = mrml_channel_nodes(phantom(21)[[3, 1, 2, 0]])  # T2 as FLAIR and back
    from UNetPlusPlusLib.adapter.logic import SegmentationLogic

    count = scene.GetNumberOfNodes()
    logic = SegmentationLogic(persistent=False)
    try:
        with pytest.raises(UNetPlusPlusError, match="given as FLAIR looks like T2"):
            logic.check_inputs(nodes, manifest)
        with pytest.raises(UNetPlusPlusError, match="wrong order"):
            logic.start_job(nodes, manifest, depth=1)
        assert scene.GetNumberOfNodes() == count and not logic._jobs
        logic.channel_check = False
        assert logic.check_inputs(nodes, manifest) == []
    finally:
        logic.shutdown()


def test_logic_job_command_carries_the_bypass():
    from UNetPlusPlusLib.adapter.job import build_command

    command = build_command("python", [Path("a.nrrd")], Path("m.json"), Path("l.nrrd"))
    assert "--no-channel-check" not in command
    bypass = build_command(
        "python", [Path("a.nrrd")], Path("m.json"), Path("l.nrrd"), channel_check=False
    )
    assert bypass[-1] == "--no-channel-check"


def test_trainer_reference_from_multichannel_mr_training_files(tmp_path):
    """``unetpp train`` writes the reference of its training files for an all-MR,
    multi-channel dataset (training/package.py); CT or one channel gets none."""
    from types import SimpleNamespace

    from UNetPlusPlusLib.training.package import channel_reference

    cases = []
    for seed in range(3):
        images = []
        for name, channel in zip(NAMES, phantom(seed)):
            images.append(tmp_path / f"case{seed}_{name}.nii.gz")
            sitk.WriteImage(sitk.GetImageFromArray(channel), str(images[-1]))
        cases.append(SimpleNamespace(case_id=f"case{seed}", images=images))
    channels = [SimpleNamespace(name=n, modality="MR") for n in NAMES]
    reference = channel_reference(channels, cases)
    assert reference["cases"] == ["case0", "case1", "case2"]
    assert co.parse_reference(reference, 4) == reference
    image = phantom(9)
    samples = channel_samples(list(image))
    assert co.check_channel_order(samples, reference, NAMES) == []
    with pytest.raises(UNetPlusPlusError, match="wrong order"):
        co.check_channel_order([samples[i] for i in (3, 1, 2, 0)], reference, NAMES)
    ct = [SimpleNamespace(name=n, modality="CT") for n in NAMES]
    assert channel_reference(ct, cases) is None
    assert channel_reference(channels, cases[:2]) is None  # too few cases


def test_fingerprint_is_fast_on_a_brats_sized_case():
    """One 240 x 240 x 155 x 4 case: the check works on a bounded subsample (the seconds are
    measured by docs/INPUT_CHECKS_MR.md's command, not asserted here)."""
    big = np.zeros((4, 155, 240, 240), dtype=np.float32)
    big[:, 20:135, 30:210, 30:210] = np.tile(phantom(5, (23, 36, 36)), (1, 5, 5, 5))
    found = co.fingerprint(channel_samples(list(big)))
    assert found is not None and found.voxels <= co.RANK_VOXELS


# ------------------------------------------------------------------------ real BraTS data
@pytest.fixture(scope="module")
def brats_samples(brats_store):
    """Each case's strided samples (the voxels the check sees), read once per session."""
    return {
        name: channel_samples(list(volume.array)) for name, volume in brats_store.volumes().items()
    }


@pytest.fixture(scope="module")
def brats_prints(brats_samples):
    """Each case's fingerprint in the given order, computed once."""
    return {name: co.fingerprint(samples) for name, samples in brats_samples.items()}


#: wrong orders (slot s holds sequence ORDER[s]) the study refuses on all 19 cases with a gap
#: of at least 1.3 (the refusal threshold is 1.0); FLAIR <-> T1 is refused on all 19 too, but
#: with gaps from 1.02, and FLAIR <-> T1ce not always; T1 <-> T1ce by the fingerprint on 8 of 19,
#: by the enhancement asymmetry of the pair on all 19 (docs/INPUT_CHECKS_MR.md)
ALWAYS_REFUSED = [
    (0, 1, 3, 2),  # T1ce <-> T2
    (0, 3, 2, 1),  # T1 <-> T2
    (3, 1, 2, 0),  # FLAIR <-> T2
    (0, 2, 3, 1),  # three sequences moved
    (0, 3, 1, 2),
    (1, 2, 0, 3),
]


def test_brats_correct_order_passes_on_every_case(brats_samples, brats_prints):
    reference = ModelManifest.load(BRAIN).inference["channel_fingerprint"]
    assert len(brats_samples) == 19
    for name, samples in brats_samples.items():
        assert co.check_channel_order(samples, reference, NAMES) == [], name
        verdict = co.compare(brats_prints[name], reference)
        assert verdict.gap < 0, (name, verdict.gap)  # the given order is the best match


def test_a_reordered_fingerprint_is_that_of_the_reordered_samples(brats_samples, brats_prints):
    """What lets the swap tests below reorder each case's fingerprint instead of computing it
    again from the swapped samples: the same correlations and skewness, moved."""
    name = "Brats18_TCIA02_135_1"
    for order in [*ALWAYS_REFUSED, (0, 2, 1, 3)]:
        swapped = co.fingerprint([brats_samples[name][i] for i in order])
        moved = brats_prints[name].reordered(order)
        assert np.allclose(swapped.spearman, moved.spearman, rtol=0, atol=1e-12)
        assert np.array_equal(swapped.skewness, moved.skewness)
        assert swapped.voxels == moved.voxels
        assert np.allclose(swapped.asymmetry, moved.asymmetry, rtol=0, atol=1e-12)


def test_brats_reference_holds_training_cases_only():
    manifest = ModelManifest.load(BRAIN)
    cases = manifest.inference["channel_fingerprint"]["cases"]
    assert len(cases) == 14 and not set(cases) & set(manifest.validation["cases"])


@pytest.mark.parametrize("order", ALWAYS_REFUSED)
def test_brats_clear_swaps_are_refused(brats_samples, brats_prints, order):
    reference = ModelManifest.load(BRAIN).inference["channel_fingerprint"]
    for name, samples in brats_samples.items():
        swapped = [samples[i] for i in order]
        found = brats_prints[name].reordered(order)
        with pytest.raises(UNetPlusPlusError, match="wrong order") as error:
            co.check_channel_order(swapped, reference, NAMES, found)
        for slot in (s for s in range(4) if order[s] != s):
            assert f"given as {NAMES[slot]} looks like {NAMES[order[slot]]}" in str(error.value)


def test_brats_t1_t1ce_swap_is_refused_on_every_case(brats_samples, brats_prints):
    """T1 and T1ce are hard to tell apart by the fingerprint (it refuses the swap on 8 of 19
    cases); the enhancement asymmetry of the pair (contrast_pair.py) refuses it on all 19, and
    the right order keeps a margin from its warning threshold (docs/INPUT_CHECKS_MR.md)."""
    from UNetPlusPlusLib.engine import contrast_pair as cp

    reference = ModelManifest.load(BRAIN).inference["channel_fingerprint"]
    assert reference["contrast_pair"] == [1, 2]
    swap = (0, 2, 1, 3)
    for name, samples in brats_samples.items():
        found = brats_prints[name]
        assert found.asymmetry[1, 2] > cp.WARN_BELOW + 0.5, name  # study: 0.60 or more
        with pytest.raises(UNetPlusPlusError) as error:
            co.check_channel_order(
                [samples[i] for i in swap], reference, NAMES, found.reordered(swap)
            )
        assert "the volume given as T1ce looks like T1" in str(error.value), name


def test_brats_cli_refuses_swap_before_torch(shared_data, tmp_path):
    paths = brats_cases(shared_data)["Brats18_TCIA02_606_1"]
    swapped = [str(paths[i]) for i in (3, 1, 2, 0)]  # T2 given as FLAIR and FLAIR as T2
    code = (
        "import sys; from UNetPlusPlusLib.cli import main; c = main(sys.argv[1:]); "
        "print(c, 'torch' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "UNetPlusPlus")}
    args = ["segment", *swapped, "--task", "brain-tumor", "-o", "x.seg.nrrd"]
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.stdout.split() == ["2", "False"], done.stderr
    assert done.stderr.count("\n") == 1
    assert "the volume given as FLAIR looks like T2" in done.stderr
    assert not (tmp_path / "x.seg.nrrd").exists()


def test_brats_store_gives_the_files_voxels_and_geometry_read_only(brats_store, shared_data):
    name = "Brats18_2013_11_1"
    fresh = read_volume(brats_cases(shared_data)[name], NAMES)
    for stored in (brats_store.volume(name), brats_store.volume(name)):  # first and later calls
        assert stored.array.dtype == fresh.array.dtype and stored.spacing == fresh.spacing
        assert np.array_equal(stored.array, fresh.array) and stored.origin == fresh.origin
        assert np.array_equal(stored.direction, fresh.direction)
        assert stored.channel_names == fresh.channel_names
        with pytest.raises(ValueError, match="read-only"):
            stored.array[0, 0, 0, 0] = 1.0


def test_another_workers_brats_store_maps_the_copy_without_decoding(
    brats_store, shared_data, monkeypatch
):
    """pytest-xdist workers share the run's folder: a second store on it (another worker's)
    decodes nothing and maps the first one's copy, with its geometry."""
    import brats_store as store_module

    name = "Brats18_2013_11_1"
    first = brats_store.volume(name)
    monkeypatch.setattr(store_module, "read_volume", lambda *a: pytest.fail("decoded again"))
    again = store_module.BratsStore(shared_data, brats_store.folder).volume(name)
    assert again.array.shape == first.array.shape and not again.array.flags.writeable
    assert np.array_equal(again.array[:, 70], first.array[:, 70])
    assert (again.spacing, again.origin) == (first.spacing, first.origin)
    assert np.array_equal(again.direction, first.direction)
    assert again.channel_names == first.channel_names
