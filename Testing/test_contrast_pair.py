"""T1 and T1ce told apart by contrast enhancement (engine/contrast_pair.py), no shared data.

A synthetic skull-stripped phantom whose T1ce is its T1 plus gadolinium enhancement (a rim
around a lesion and a few vessels), checked against a contrast-fingerprint reference that is
symmetric under the T1 <-> T1ce swap (so the fingerprint alone cannot tell them apart): the
right order passes, the swap is refused in one line by the enhancement asymmetry, through the
engine's input check and the CLI, the data and geometry untouched. The BraTS study itself is
checked in test_channel_order.py.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.engine import channel_order as co
from UNetPlusPlusLib.engine import contrast_pair as cp
from UNetPlusPlusLib.engine.manifest import ModelManifest
from UNetPlusPlusLib.engine.sanity import channel_samples, check_model_input
from UNetPlusPlusLib.engine.volume import Volume
from UNetPlusPlusLib.errors import UNetPlusPlusError

BRAIN = Path(__file__).resolve().parents[1] / "UNetPlusPlus/UNetPlusPlusLib/Resources/Models"
NAMES = ("FLAIR", "T1", "T1ce", "T2")
#: intensity of (white matter, grey matter, CSF, lesion) per sequence; T1ce = T1 before contrast
CONTRASTS = np.array(
    [[300, 350, 80, 700], [500, 400, 150, 300], [500, 400, 150, 300], [250, 350, 900, 700]],
    dtype=np.float32,
)
SWAP = [0, 2, 1, 3]  # T1 given as T1ce and T1ce as T1


def phantom(seed: int, shape=(36, 40, 44)) -> np.ndarray:
    """(4, z, y, x) float32: an ellipsoid 'brain' (0 outside) of white matter, grey matter,
    CSF and a lesion; T1ce is T1 plus enhancement (a rim around the lesion and some vessel
    voxels, about 3 % of the brain), each channel with its own noise."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    radius = np.sqrt(z**2 + y**2 + x**2)
    tissue = np.where(radius < 0.45, 0, np.where(radius < 0.75, 1, 2))
    centre = rng.uniform(-0.25, 0.25, 3)
    distance = np.sqrt((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2)
    tissue[distance < 0.25] = 3
    image = CONTRASTS[:, tissue] * rng.uniform(0.8, 1.2, (4, 1, 1, 1)).astype(np.float32)
    enhancing = (distance >= 0.25) & (distance < 0.29)
    enhancing |= rng.random(shape) < 0.01  # vessels, choroid plexus
    image[2][enhancing & (radius < 0.95)] += 600.0
    image += rng.normal(0, 25, image.shape).astype(np.float32)
    image = np.maximum(image, 1.0)
    image[:, radius >= 0.95] = 0.0
    return image.astype(np.float32)


@functools.lru_cache(maxsize=1)
def _symmetric_reference() -> str:
    prints = []
    for seed in range(6):
        samples = channel_samples(list(phantom(seed)))
        prints += [co.fingerprint(samples), co.fingerprint([samples[i] for i in SWAP])]
    return json.dumps(co.build_reference(prints, pair=[1, 2]))


def symmetric_reference() -> dict:
    """A fingerprint reference of phantoms 0..5 in both T1 / T1ce orders, naming the pair
    [1, 2]: the fingerprint cannot tell T1 from T1ce, only the enhancement asymmetry can
    (built once per session; each call returns a fresh copy)."""
    return json.loads(_symmetric_reference())


def test_asymmetry_is_antisymmetric_and_positive_from_pre_to_post():
    image = phantom(40)
    inside = np.all(image != 0, axis=0)
    matrix = cp.asymmetry_matrix(image[:, inside].astype(np.float64))
    assert np.allclose(matrix, -matrix.T)
    assert matrix[1, 2] > 0.5  # T1 -> T1ce: a heavy positive tail (enhancement)
    swapped = cp.asymmetry_matrix(image[SWAP][:, inside].astype(np.float64))
    assert swapped[1, 2] == pytest.approx(-matrix[1, 2])  # the swap flips the sign exactly
    assert cp.asymmetry_matrix(np.ones((2, 100)))[0, 1] == 0.0  # constant: no verdict


def test_pair_is_found_by_channel_names_only_when_unambiguous():
    assert cp.find_pair(NAMES) == [1, 2]
    assert cp.find_pair(["t1w", "T2", "T1-Gd"]) == [0, 2]
    assert cp.find_pair(["T1", "T2"]) is None
    assert cp.find_pair(["T1", "T1c", "T1ce"]) is None  # two post-contrast candidates
    assert cp.parse_pair([1, 2], 4) == [1, 2]
    for bad in ([1, 1], [1, 4], [1], "12", [True, 2]):
        with pytest.raises(ValueError, match="contrast_pair"):
            cp.parse_pair(bad, 4)


def test_swap_the_fingerprint_cannot_see_is_refused_by_enhancement():
    reference = symmetric_reference()
    image = phantom(41)  # not one of the reference's phantoms
    samples = channel_samples(list(image))
    assert co.check_channel_order(samples, reference, NAMES) == []
    swapped = [samples[i] for i in SWAP]
    without = {k: v for k, v in reference.items() if k != "contrast_pair"}
    verdict = co.compare(co.fingerprint(swapped), without)
    assert verdict.gap <= co.REFUSE_GAP  # the fingerprint alone does not refuse it
    with pytest.raises(UNetPlusPlusError) as error:
        co.check_channel_order(swapped, reference, NAMES)
    message = str(error.value)
    assert message.startswith("The input volumes seem to be in the wrong order: the volume")
    assert "given as T1 looks like T1ce" in message and "given as T1ce looks like T1" in message
    assert "contrast enhancement" in message and "--no-channel-check" in message
    assert "\n" not in message


def test_doubtful_asymmetry_warns_and_unlike_data_only_warns(monkeypatch):
    reference = symmetric_reference()
    swapped = [channel_samples(list(phantom(42)))[i] for i in SWAP]
    found = co.fingerprint(swapped)
    value = found.asymmetry[1, 2]
    monkeypatch.setattr(cp, "REFUSE_BELOW", value - 0.01)  # between the two thresholds
    said = co.check_channel_order(swapped, reference, NAMES, found)
    assert len(said) == 1 and said[0].startswith("The input volumes may be in the wrong order")
    assert "contrast enhancement" in said[0]
    monkeypatch.undo()
    far = {**reference, "mean": [v + 3.0 for v in reference["mean"]]}  # unlike any training
    said = co.check_channel_order(swapped, far, NAMES, found)
    assert said[0].startswith(co.UNCHECKED) and "contrast enhancement" in said[-1]


def write_manifest(tmp_path: Path, reference: dict) -> ModelManifest:
    """The brain-tumour manifest with ``reference`` (no weights: checks run before them)."""
    data = json.loads((BRAIN / "brain-tumor" / "model.json").read_text(encoding="utf-8"))
    data["inference"] = {"channel_fingerprint": reference}
    path = tmp_path / "model" / "model.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return ModelManifest.load(path)


def test_engine_input_check_and_cli_refuse_the_swap_leaving_data_alone(tmp_path, capsys):
    manifest = write_manifest(tmp_path, symmetric_reference())
    image = phantom(43)[SWAP]
    before = image.copy()
    direction = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    spacing = (3.0, 3.3, 3.9)  # mm: the brain fills about 1.1 l, as a real one (not a crop)
    volume = Volume(image, spacing, (-90.0, 12.5, 40.0), direction.copy(), NAMES)
    with pytest.raises(UNetPlusPlusError, match="contrast enhancement"):
        check_model_input(manifest, volume)
    assert np.array_equal(volume.array, before) and volume.spacing == spacing
    assert np.array_equal(volume.direction, direction) and volume.origin == (-90.0, 12.5, 40.0)
    assert check_model_input(manifest, volume, channel_check=False) == []
    paths = []
    for name, channel in zip(NAMES, image):
        paths.append(str(tmp_path / f"{name}.nii.gz"))
        item = sitk.GetImageFromArray(channel)
        item.SetSpacing(spacing)
        sitk.WriteImage(item, paths[-1])
    out = tmp_path / "out.seg.nrrd"
    assert main(["segment", *paths, "--model", str(manifest.path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: The input volumes seem to be in the wrong order")
    assert "contrast enhancement" in err and err.count("\n") == 1 and not out.exists()


def test_manifest_validates_the_pair(tmp_path):
    manifest = write_manifest(tmp_path, symmetric_reference())
    assert manifest.inference["channel_fingerprint"]["contrast_pair"] == [1, 2]
    shipped = ModelManifest.load(BRAIN / "brain-tumor")
    assert shipped.inference["channel_fingerprint"]["contrast_pair"] == [1, 2]
    data = manifest.to_dict()
    data["inference"]["channel_fingerprint"]["contrast_pair"] = [2, 2]
    with pytest.raises(UNetPlusPlusError, match="contrast_pair"):
        ModelManifest.from_dict(data)
