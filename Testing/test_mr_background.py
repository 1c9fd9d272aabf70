"""MR inputs the brain-tumour model cannot read right (engine/sanity.py, check_model_samples).

A model whose MR normalisation and non-zero crop rely on a background of exactly 0 refuses an
MR channel with (almost) no voxels at 0 (background at 1, noise, an offset of all or one
channel), and every multi-channel model refuses two channels that are the same image up to
scale (FLAIR x 1000 given as T1ce). Synthetic phantoms of ``test_channel_order`` first, then
the real BraTS cases (skipped without ../shared/data): the 19 correctly given cases pass with
no warning, the tester's variants of Brats18_2013_11_1 are refused in one line, exit 2,
nothing written.
"""

from __future__ import annotations

import copy
from typing import Iterator

import numpy as np
import pytest
import SimpleITK as sitk
from test_channel_order import (
    BRAIN,
    DIRECTION,
    NAMES,
    ORIGIN,
    SPACING,
    as_volume,
    mrml_channel_nodes,
    phantom,
    synthetic_manifest,
)
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.engine import channel_order as co
from UNetPlusPlusLib.engine import sanity
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.manifest import ModelManifest
from UNetPlusPlusLib.engine.sanity import channel_samples, check_model_input
from UNetPlusPlusLib.engine.streamed_checks import check_files
from UNetPlusPlusLib.errors import UNetPlusPlusError


def variants(image: np.ndarray, seed: int = 0) -> Iterator[tuple[str, np.ndarray, str]]:
    """The tester's variants of a (4, z, y, x) skull-stripped case: (name, array, refusal
    text), made one at a time. Noise fills the background alike in every channel (float32)."""
    rng = np.random.default_rng(seed)
    background = np.all(image == 0, axis=0)
    count = int(np.count_nonzero(background))

    def filled(values) -> np.ndarray:
        """``image`` with its background set to ``values`` (a scalar or one per voxel)."""
        fill = np.zeros(background.shape, np.float32)
        fill[background] = values
        return np.where(background, fill, image)

    def noise(scale: float) -> np.ndarray:
        return np.abs(rng.standard_normal(count, dtype=np.float32)) * np.float32(scale)

    yield "background 1", filled(1.0), "Input 'FLAIR' has 0."
    yield "background noise", filled(noise(5) + np.float32(1e-3)), "Input 'FLAIR' has 0."
    yield "+500", image + 500, "Input 'FLAIR' has 0.00%"
    t2 = image.copy()
    t2[3] += 500
    yield "T2 + 500", t2, "Input 'T2' has 0.00%"
    del t2
    # integer-rounded noise: 3-44 % exact zeros, but scattered
    scattered = "Input 'FLAIR': its zero voxels are scattered"
    yield "integer noise 0.7", filled(np.round(noise(0.7))), scattered
    mode = "Input 'FLAIR': its most frequent value is 1, not 0"
    yield "integer noise 3", filled(np.round(noise(3))), mode
    slabs = filled(1.0)  # a background of 1 with zero slices at both ends
    slabs[:, :2], slabs[:, -2:] = 0.0, 0.0
    yield "background 1, zero end slices", slabs, "its most frequent value is 1, not 0"
    del slabs
    duplicate = image.copy()
    duplicate[2] = image[0] * 1000
    yield "FLAIR x 1000 as T1ce", duplicate, "'FLAIR' and 'T1ce' are the same image up to"


def assert_one_line_refusal(message: str, expected: str) -> None:
    assert "\n" not in message and expected in message, message
    if "exactly 0" in message:
        assert "skull-stripped MR with the background set to exactly 0" in message


# ------------------------------------------------------------------------ synthetic phantom
def test_phantom_variants_are_refused_and_left_untouched(tmp_path):
    manifest = synthetic_manifest(tmp_path)
    image = phantom(100)
    assert check_model_input(manifest, as_volume(image)) == []
    for name, array, expected in variants(image):
        before = array.copy()
        volume = as_volume(array)
        with pytest.raises(UNetPlusPlusError) as error:
            check_model_input(manifest, volume)
        assert_one_line_refusal(str(error.value), expected)
        assert np.array_equal(volume.array, before), name  # data and geometry as they were
        assert volume.spacing == SPACING and volume.origin == ORIGIN
        assert np.array_equal(volume.direction, DIRECTION)
        # --no-channel-check bypasses the order only, not these refusals
        with pytest.raises(UNetPlusPlusError, match="exactly 0|up to scale"):
            check_model_input(manifest, volume, channel_check=False)


def test_zero_background_only_for_models_that_rely_on_it(tmp_path):
    manifest = synthetic_manifest(tmp_path, with_reference=False)
    assert sanity.needs_zero_background(manifest)
    off = copy.deepcopy(manifest)
    off.inference["crop_nonzero"] = False
    assert not sanity.needs_zero_background(off)
    offset = phantom(5) + 500
    assert sanity.check_model_samples(off, channel_samples(list(offset))) == []
    with pytest.raises(UNetPlusPlusError, match="exactly 0"):
        sanity.check_model_samples(manifest, channel_samples(list(offset)))
    # the near-duplicate refusal holds for any multi-channel model
    duplicate = phantom(5)
    duplicate[1] = duplicate[3] * 0.001
    with pytest.raises(UNetPlusPlusError, match="'T1' and 'T2' are the same image up to scale"):
        sanity.check_model_samples(off, channel_samples(list(duplicate)))


def test_a_zero_share_just_above_the_limit_passes(tmp_path):
    """2 % zeros in one region, 0 the most frequent value: accepted; 0.5 %: refused."""
    manifest = synthetic_manifest(tmp_path, with_reference=False)
    rng = np.random.default_rng(3)
    image = phantom(6) + 1.0 + rng.random(phantom(6).shape)  # no value twice but 0
    flat = image.reshape(4, -1)
    flat[:, : int(flat.shape[1] * 2 * sanity.MR_MIN_ZERO_SHARE)] = 0.0  # 2 %, one region
    assert sanity.check_model_samples(manifest, channel_samples(list(image))) == []
    flat[:, :] += 1.0
    flat[:, : int(flat.shape[1] * 0.5 * sanity.MR_MIN_ZERO_SHARE)] = 0.0  # 0.5 %
    with pytest.raises(UNetPlusPlusError, match=r"has 0\.50% of its voxels exactly 0"):
        sanity.check_model_samples(manifest, channel_samples(list(image)))


def test_streamed_and_cached_checks_refuse_as_the_whole_array(tmp_path):
    from UNetPlusPlusLib.warm_cache import WarmCache

    manifest = synthetic_manifest(tmp_path)
    for name, array, expected in variants(phantom(11)):
        folder = tmp_path / name.replace(" ", "_")
        folder.mkdir()
        paths = [folder / f"{n}.nii.gz" for n in NAMES]
        for path, channel in zip(paths, array):
            image = sitk.GetImageFromArray(channel)
            image.SetSpacing(SPACING)  # as as_volume's: the same image volume in ml
            sitk.WriteImage(image, str(path))

        image_ml = array[0].size * float(np.prod(SPACING)) / 1000

        def model_check(samples, image_ml=image_ml):
            return sanity.check_model_samples(manifest, samples, True, image_ml)  # as the CLI

        with pytest.raises(UNetPlusPlusError) as whole:
            check_model_input(manifest, read_volume(paths, NAMES))
        with pytest.raises(UNetPlusPlusError) as streamed:
            check_files(paths, ["MR"] * 4, NAMES, slab_voxels=20_000, order_check=model_check)
        with pytest.raises(UNetPlusPlusError) as cached:
            WarmCache().input_checks(manifest, as_volume(array), channel_check=False)
        assert str(streamed.value) == str(whole.value) == str(cached.value), name
        assert_one_line_refusal(str(whole.value), expected)


def write_channels(folder, array) -> list[str]:
    """One NIfTI file per channel of ``array`` (C, z, y, x), named as NAMES; their paths."""
    paths = []
    for channel_name, channel in zip(NAMES, array):
        paths.append(str(folder / f"{channel_name}.nii.gz"))
        image = sitk.GetImageFromArray(channel)
        image.SetSpacing(SPACING)  # as as_volume's: a brain of a real one's volume
        sitk.WriteImage(image, paths[-1])
    return paths


def test_cli_refuses_in_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    manifest = synthetic_manifest(tmp_path)
    for name, array, expected in variants(phantom(12)):
        paths = write_channels(tmp_path, array)
        out = tmp_path / "out.seg.nrrd"
        args = ["segment", *paths, "--model", str(manifest.path), "-o", str(out), "--quiet"]
        roi = ["--roi", "10", "10", "10", "30", "30", "30", "--lps"]  # streamed checks
        for extra in ([], roi, ["--no-channel-check"]):
            assert main([*args, *extra]) == 2, (name, extra)
            err = capsys.readouterr().err
            assert err.startswith("error: ") and err.count("\n") == 1, err
            assert_one_line_refusal(err.strip(), expected)
            assert not out.exists()


def test_slicer_logic_refuses_a_nonzero_background(tmp_path):
    manifest = synthetic_manifest(tmp_path)
    array = phantom(21)
    array[3] += 500  # the T2 offset
    scene, nodes = mrml_channel_nodes(array)
    from UNetPlusPlusLib.adapter.logic import SegmentationLogic

    count = scene.GetNumberOfNodes()
    logic = SegmentationLogic(persistent=False)
    logic.channel_check = False  # the order bypass does not bypass this
    try:
        with pytest.raises(UNetPlusPlusError, match="Input 'T2' has 0.00%"):
            logic.check_inputs(nodes, manifest)
        with pytest.raises(UNetPlusPlusError, match="exactly 0"):
            logic.start_job(nodes, manifest, depth=1)
        assert scene.GetNumberOfNodes() == count and not logic._jobs
    finally:
        logic.shutdown()


def test_order_unlike_training_data_is_a_warning_that_it_could_not_be_checked(tmp_path):
    reference = copy.deepcopy(synthetic_manifest(tmp_path).inference["channel_fingerprint"])
    reference["mean"][6:] = [v + 3.0 for v in reference["mean"][6:]]  # skewness far off
    samples = channel_samples(list(phantom(4)))  # the right order: no gap, yet no fit
    verdict = co.compare(co.fingerprint(samples), reference)
    assert verdict.distances.min() > co.MAX_FIT
    found = co.check_channel_order(samples, reference, NAMES)
    assert len(found) == 1 and found[0].startswith("The sequence order could not be checked")
    assert "do not look like the model's training data" in found[0]


# ------------------------------------------------------------------------ real BraTS data
@pytest.fixture(scope="module")
def brats_volumes(brats_store):
    """The 19 cases, decoded once per session (read-only, memory-mapped)."""
    return brats_store.volumes()


def test_brats_cases_pass_margins_hold_and_fill_less_than_the_limit(brats_volumes):
    """All 19 correctly given cases: no refusal, no warning (so ``check_model_samples``, part
    of ``check_model_input``, passes too); zero share >= 0.76 (limit 0.01), largest rank
    correlation between two sequences <= 0.79 (limit 0.98); they fill 1084-1729 ml, at least
    1.4 times below the shipped 2500 ml limit."""
    manifest = ModelManifest.load(BRAIN)
    limit = manifest.inference["max_nonzero_ml"]
    assert limit == 2500
    assert len(brats_volumes) == 19
    for name, volume in brats_volumes.items():
        assert check_model_input(manifest, volume) == [], name
        samples = channel_samples(list(volume.array))
        assert min(float(np.mean(s == 0)) for s in samples) > 0.75, name
        rho = co.fingerprint(samples).spearman[np.triu_indices(4, 1)]
        assert rho.max() < 0.8, name
        filled = np.count_nonzero(volume.array, axis=(1, 2, 3)).max() * np.prod(volume.spacing)
        assert filled / 1000 < limit / 1.4, name


def test_brats_tester_variants_are_refused(brats_volumes, tmp_path, capsys):
    manifest = ModelManifest.load(BRAIN)
    volume = brats_volumes["Brats18_2013_11_1"]
    first = None
    for _name, array, expected in variants(volume.array):
        with pytest.raises(UNetPlusPlusError) as error:
            check_model_input(manifest, volume.with_array(array))
        assert_one_line_refusal(str(error.value), expected)
        first = first or (array, expected)  # "background 1", for the command line below
    array, expected = first
    paths = []
    for channel_name, channel in zip(NAMES, array):  # uncompressed: gzip is not what is tested
        paths.append(str(tmp_path / f"{channel_name}.nii"))
        image = sitk.GetImageFromArray(channel)
        image.SetSpacing(volume.spacing)
        sitk.WriteImage(image, paths[-1])
    out = tmp_path / "out.seg.nrrd"
    assert main(["segment", *paths, "--task", "brain-tumor", "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err and not out.exists(), err


# ------------------------------------------- not skull-stripped (tester 6, session 6)
def limited_manifest(tmp_path, limit_ml: float) -> ModelManifest:
    """The synthetic model with ``inference.max_nonzero_ml`` = ``limit_ml``."""
    import json

    path = synthetic_manifest(tmp_path).path
    data = json.loads(path.read_text(encoding="utf-8"))
    data["inference"]["max_nonzero_ml"] = limit_ml
    path.write_text(json.dumps(data), encoding="utf-8")
    return ModelManifest.load(path)


def test_a_head_larger_than_the_limit_is_refused_everywhere(tmp_path, capsys):
    """The phantom is non-zero over about 1.2 l on the test grid: refused under a 1000 ml
    limit by the whole-array, cached, streamed (--roi), bypassed-order and Slicer Logic checks,
    in one line, nothing written; passes under 2000 ml."""
    from UNetPlusPlusLib.warm_cache import WarmCache

    array = phantom(13)
    expected = "Input 'FLAIR' is non-zero over"
    assert check_model_input(limited_manifest(tmp_path / "a", 2000.0), as_volume(array)) == []
    manifest = limited_manifest(tmp_path / "b", 1000.0)
    with pytest.raises(UNetPlusPlusError) as whole:
        check_model_input(manifest, as_volume(array))
    assert_one_line_refusal(str(whole.value), "Input 'FLAIR' is non-zero over 1225 ml")
    assert "does not look skull-stripped" in str(whole.value)
    with pytest.raises(UNetPlusPlusError, match=expected):
        WarmCache().input_checks(manifest, as_volume(array), channel_check=False)
    paths = write_channels(tmp_path, array)
    out = tmp_path / "out.seg.nrrd"
    args = ["segment", *paths, "--model", str(manifest.path), "-o", str(out), "--quiet"]
    roi = ["--roi", "10", "10", "10", "30", "30", "30", "--lps"]  # streamed checks
    for extra in ([], roi, ["--no-channel-check"]):
        assert main([*args, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert_one_line_refusal(err.strip(), "Input 'FLAIR' is non-zero over 1225 ml")
        assert not out.exists()
    scene, nodes = mrml_channel_nodes(array)
    from UNetPlusPlusLib.adapter.logic import SegmentationLogic

    count = scene.GetNumberOfNodes()
    logic = SegmentationLogic(persistent=False)
    try:
        with pytest.raises(UNetPlusPlusError, match=expected):
            logic.start_job(nodes, manifest, depth=1)
        assert scene.GetNumberOfNodes() == count and not logic._jobs
    finally:
        logic.shutdown()


def head_around(image: np.ndarray) -> np.ndarray:
    """A (4, z, y, x) skull-stripped case with a bright 'skull and scalp' filling the rest of
    an ellipsoidal head (about 3.4 l on a BraTS grid), the background outside still 0."""
    shape = image.shape[1:]
    z, y, x = np.ix_(*[np.arange(n) - n / 2 for n in shape])  # broadcast, not three grids
    half = [0.45 * n for n in shape]
    head = (z / half[0]) ** 2 + (y / half[1]) ** 2 + (x / half[2]) ** 2 < 1.0
    out = image.copy()
    for channel in out:
        channel[head & (channel == 0)] = 1.3 * np.percentile(channel[channel > 0], 95)
    return out


def test_brats_case_with_a_whole_head_is_refused(brats_volumes):
    """Brats18_2013_11_1 with a skull left around the brain is refused (it gave 726 ml of
    oedema instead of 74 ml with only the order warning)."""
    manifest = ModelManifest.load(BRAIN)
    volume = brats_volumes["Brats18_2013_11_1"]
    with pytest.raises(UNetPlusPlusError) as error:
        check_model_input(manifest, volume.with_array(head_around(volume.array)))
    assert_one_line_refusal(str(error.value), "Input 'FLAIR' is non-zero over")


def test_a_crop_inside_the_brain_is_refused_as_a_crop():
    """A clinician's 24 mm cube around the tumour has no 0 background: it was refused as "not
    skull-stripped" only (tester 21); an image too small for a whole brain now also says it
    may be a crop, with the --roi advice; a whole-brain-sized image does not."""
    from UNetPlusPlusLib.engine.mr_background import check_zero_background

    rng = np.random.default_rng(3)
    samples = [rng.uniform(50, 500, 4096).astype(np.float32) for _ in range(4)]
    with pytest.raises(
        UNetPlusPlusError, match=r"skull-stripped MR.*only 14 ml.*if it is a crop.*--roi"
    ):
        check_zero_background(samples, NAMES, image_ml=13.8)
    with pytest.raises(UNetPlusPlusError, match="skull-stripped MR") as error:
        check_zero_background(samples, NAMES, image_ml=1500.0)
    assert "crop" not in str(error.value)


def test_a_brats_crop_around_the_tumour_is_refused_as_a_crop(brats_store):
    from UNetPlusPlusLib.engine.sanity import check_sequence_order

    volume = brats_store.volume("Brats18_TCIA01_378_1")
    flair = volume.array[0]
    centre = np.median(np.argwhere(flair > np.percentile(flair[flair > 0], 99.5)), axis=0)
    box = tuple(slice(int(c) - 12, int(c) + 12) for c in centre)
    crop = [np.ascontiguousarray(channel[box]) for channel in volume.array]
    with pytest.raises(UNetPlusPlusError, match="if it is a crop"):
        check_sequence_order(ModelManifest.load(BRAIN), crop, True, volume.spacing)
