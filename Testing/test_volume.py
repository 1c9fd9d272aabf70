"""Volume IO and the geometry contract: resampled there and back, a mask lands where it was."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import dice, make_sphere_image, rotation_matrix, sphere_mask
from UNetPlusPlusLib.engine.image_read import (
    read_image,
    read_labelmap,
    read_volume,
    volume_from_sitk,
)
from UNetPlusPlusLib.engine.volume import (
    Box,
    Grid,
    LabelVolume,
    Volume,
    array_to_sitk,
    canonical_grid,
    crop_to_box,
    labels_to_sitk,
    paste_into,
    resample_labels,
    resample_to_reference,
    resample_volume,
    volume_to_sitk,
    write_labelmap,
)
from UNetPlusPlusLib.errors import UNetPlusPlusError

SPACING = (0.7, 0.9, 2.5)
ORIGIN = (-12.3, 40.1, 7.7)
SIZE_XYZ = (36, 32, 14)
RADIUS = 7.0  # mm; the sphere stays >= 9.7 mm from every face whatever the direction
PERMUTE = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], dtype=float)  # index x -> LPS y, ...
DIRECTIONS = {
    "identity": np.eye(3),
    "ras-flip": np.diag([-1.0, -1.0, 1.0]),
    "permuted": PERMUTE,
    "permuted-flipped": PERMUTE @ np.diag([1.0, -1.0, 1.0]),
    "oblique": rotation_matrix([20, 20, 0]),
    "oblique-flipped": rotation_matrix([20, 0, 20]) @ np.diag([-1.0, 1.0, -1.0]),
}


def off_centre_sphere(direction: np.ndarray, radius: float = RADIUS) -> tuple[sitk.Image, tuple]:
    """A sphere away from the volume centre, so flips and permutations would move it."""
    probe = sitk.Image(list(SIZE_XYZ), sitk.sitkFloat32)
    probe.SetSpacing(SPACING)
    probe.SetOrigin(ORIGIN)
    probe.SetDirection(direction.flatten().tolist())
    index = [f * (n - 1) for f, n in zip((0.4, 0.35, 0.4), SIZE_XYZ)]
    centre = probe.TransformContinuousIndexToPhysicalPoint(index)
    image = make_sphere_image(SIZE_XYZ, SPACING, ORIGIN, direction, centre, radius)
    return image, centre


def grid_image(grid: Grid) -> sitk.Image:
    return array_to_sitk(np.zeros(grid.shape_zyx, np.uint8), grid)


def assert_same_geometry(image: sitk.Image, volume) -> None:
    assert image.GetSize() == tuple(volume.array.shape[-1:-4:-1])
    assert np.allclose(image.GetSpacing(), volume.spacing, rtol=0, atol=1e-9)
    assert np.allclose(image.GetOrigin(), volume.origin, rtol=0, atol=1e-9)
    assert np.allclose(np.reshape(image.GetDirection(), (3, 3)), volume.direction, atol=1e-9)


# --------------------------------------------------------------------------- geometry contract
@pytest.mark.parametrize("name", sorted(DIRECTIONS))
def test_sphere_round_trip_through_canonical_grid_lands_on_the_same_voxels(name):
    image, centre = off_centre_sphere(DIRECTIONS[name])
    volume = volume_from_sitk([image])
    truth = sphere_mask(image, centre, RADIUS)

    grid = canonical_grid(volume, (1.0, 1.0, 1.0))
    assert np.array_equal(grid.direction, np.eye(3))
    assert grid.spacing == (1.0, 1.0, 1.0)

    # Forward: the sphere sits at the same physical place on the canonical grid.
    resampled = resample_volume(volume, grid)
    canonical_truth = sphere_mask(grid_image(grid), centre, RADIUS)
    assert dice(resampled.array[0] > 150, canonical_truth) > 0.9

    # Back: a perfect model's output on the canonical grid returns to the input voxels.
    for mask in (canonical_truth, resampled.array[0] > 150):
        probabilities = np.stack([1.0 - mask, mask]).astype(np.float32)
        back = resample_to_reference(probabilities, grid, volume)
        assert back.shape == (2,) + volume.shape_zyx
        labels = LabelVolume.on_grid(np.argmax(back, axis=0).astype(np.uint8), volume.grid)
        assert dice(labels.array == 1, truth) > 0.95
        assert_same_geometry(labels_to_sitk(labels), volume)
        assert_same_geometry(image, labels)


def test_a_flip_or_permutation_of_the_storage_order_gives_the_same_canonical_volume():
    image, _ = off_centre_sphere(np.eye(3))
    reference = volume_from_sitk([image])
    grid = canonical_grid(reference, (1.2, 1.2, 1.2))
    expected = resample_volume(reference, grid).array
    # Flip and PermuteAxes keep every voxel at its physical place but change the storage.
    variants = [
        sitk.Flip(image, [True, True, False]),
        sitk.PermuteAxes(image, [2, 0, 1]),
        sitk.Flip(sitk.PermuteAxes(image, [1, 2, 0]), [False, True, True]),
    ]
    for variant in variants:
        volume = volume_from_sitk([variant])
        assert not np.allclose(volume.direction, np.eye(3))
        variant_grid = canonical_grid(volume, (1.2, 1.2, 1.2))
        assert variant_grid.isclose(grid, tolerance=1e-9)
        actual = resample_volume(volume, variant_grid).array
        assert np.allclose(actual, expected, atol=1e-3)


def test_canonical_grid_covers_every_corner_of_an_oblique_volume():
    image, _ = off_centre_sphere(DIRECTIONS["oblique-flipped"])
    volume = volume_from_sitk([image])
    grid = canonical_grid(volume, (1.5, 2.0, 1.0))
    index = grid.physical_to_index(volume.grid.corner_points())
    assert index.min() >= -1e-6
    assert np.all(index <= np.asarray(grid.size_xyz) - 1 + 1e-6)
    # ... and is centred on them, without more than one voxel to spare on each side.
    lo, hi = index.min(axis=0), np.asarray(grid.size_xyz) - 1 - index.max(axis=0)
    assert np.allclose(lo, hi, atol=1e-6) and np.all(lo < 1.0)


def test_canonical_grid_of_an_identity_volume_at_its_own_spacing_is_its_grid():
    volume = Volume(np.zeros((1, 5, 6, 7), np.float32), (0.5, 1.0, 2.0), (3, -4, 5), np.eye(3))
    assert canonical_grid(volume, volume.spacing).isclose(volume.grid, tolerance=1e-12)


def test_resample_volume_fills_outside_with_each_channels_minimum():
    array = np.stack([np.full((4, 4, 4), 5.0), np.full((4, 4, 4), -1000.0)]).astype(np.float32)
    array[0, 0, 0, 0], array[1, 0, 0, 0] = 2.0, -1024.0
    volume = Volume(array, (1, 1, 1), (0, 0, 0), np.eye(3), ("a", "b"))
    shifted = Grid((4, 4, 4), (1, 1, 1), (10, 10, 10))
    out = resample_volume(volume, shifted)
    assert out.channel_names == ("a", "b")
    assert np.all(out.array[0] == 2.0) and np.all(out.array[1] == -1024.0)
    assert np.all(resample_volume(volume, shifted, default=7.0).array == 7.0)


def test_resample_labels_keeps_the_dtype_and_values():
    array = np.zeros((6, 6, 6), np.uint8)
    array[1:4, 2:5, 0:3] = 3
    labels = LabelVolume(array, (1, 1, 1), (0, 0, 0), np.eye(3))
    half = Grid((12, 12, 12), (0.5, 0.5, 0.5), (-0.25, -0.25, -0.25))
    out = resample_labels(labels, half)
    assert out.array.dtype == np.uint8 and set(np.unique(out.array)) == {0, 3}
    assert out.array.sum() == 8 * array.sum()


# --------------------------------------------------------------------------- crop and paste
@pytest.mark.parametrize("name", ["identity", "ras-flip", "oblique"])
def test_crop_to_box_keeps_voxels_at_their_physical_place(name):
    image, centre = off_centre_sphere(DIRECTIONS[name])
    volume = volume_from_sitk([image])
    box = Box.around(centre, (10.0, 10.0, 10.0))
    cropped, slices = crop_to_box(volume, box)
    assert np.array_equal(cropped.array, volume.array[(slice(None),) + slices])
    start = [s.start for s in reversed(slices)]
    assert np.allclose(cropped.origin, image.TransformIndexToPhysicalPoint(start), atol=1e-9)
    assert np.allclose(cropped.direction, volume.direction) and cropped.spacing == volume.spacing
    # The crop holds the whole sphere of radius 5 around the centre.
    crop_image = volume_to_sitk(cropped)
    assert sphere_mask(crop_image, centre, 5.0).sum() == sphere_mask(image, centre, 5.0).sum()
    pasted = paste_into(volume.shape_zyx, slices, cropped.array[0])
    assert pasted.shape == volume.shape_zyx
    assert np.array_equal(pasted[slices], volume.array[0][slices]) and pasted.sum() > 0


def test_crop_to_a_box_outside_the_volume_is_a_user_error():
    volume = Volume(np.zeros((1, 4, 4, 4), np.float32), (1, 1, 1), (0, 0, 0), np.eye(3))
    with pytest.raises(UNetPlusPlusError, match="outside the volume"):
        crop_to_box(volume, Box((100, 100, 100), (110, 110, 110)))
    # A box over a corner keeps only the voxels inside the image.
    _, slices = crop_to_box(volume, Box((-5, -5, -5), (1.2, 0.2, 0.0)))
    assert slices == (slice(0, 1), slice(0, 1), slice(0, 2))


def test_box_around_a_point_and_intersections():
    box = Box.around((10, 20, 30), (4, 6, 8))
    assert np.allclose(box.lower, (8, 17, 26)) and np.allclose(box.upper, (12, 23, 34))
    inter = box.intersect(Box((11, 0, 0), (50, 50, 50)))
    assert np.allclose(inter.lower, (11, 17, 26)) and np.allclose(inter.upper, (12, 23, 34))
    with pytest.raises(UNetPlusPlusError):
        box.intersect(Box((100, 100, 100), (101, 101, 101)))


# --------------------------------------------------------------------------- file IO
@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz", ".mha"])
def test_labelmap_and_volume_files_keep_their_geometry(tmp_path, suffix):
    direction = rotation_matrix([20, 20, 0]) @ np.diag([-1.0, -1.0, 1.0])
    array = np.zeros((7, 6, 5), np.uint8)
    array[2:5, 1:4, 1:3] = 2
    labels = LabelVolume(array, (0.7, 0.9, 2.5), ORIGIN, direction)
    path = tmp_path / f"labels{suffix}"
    write_labelmap(labels, path)
    back = read_labelmap(path)
    assert back.array.dtype == np.uint8 and np.array_equal(back.array, array)
    assert np.allclose(back.spacing, labels.spacing, atol=1e-5)
    assert np.allclose(back.origin, labels.origin, atol=1e-4)
    assert np.allclose(back.direction, labels.direction, atol=1e-5)

    image = make_sphere_image((8, 7, 6), (0.7, 0.9, 2.5), ORIGIN, direction, radius_mm=3)
    sitk.WriteImage(image, str(tmp_path / f"ct{suffix}"))
    volume = read_volume([tmp_path / f"ct{suffix}"], channel_names=["CT"])
    assert volume.array.shape == (1, 6, 7, 8) and volume.array.dtype == np.float32
    assert volume.channel_names == ("CT",)
    assert np.array_equal(volume.array[0], sitk.GetArrayFromImage(image))
    assert volume.grid.isclose(Grid.from_sitk(image), tolerance=1e-5)


def test_write_labelmap_rejects_an_unknown_extension(tmp_path):
    labels = LabelVolume(np.zeros((2, 2, 2), np.uint8), (1, 1, 1), (0, 0, 0), np.eye(3))
    with pytest.raises(UNetPlusPlusError, match="labels.png"):
        write_labelmap(labels, tmp_path / "labels.png")


def write(image: sitk.Image, path: Path) -> Path:
    sitk.WriteImage(image, str(path))
    return path


def test_channels_with_different_geometry_name_the_mismatching_file(tmp_path):
    first = write(make_sphere_image((8, 8, 8), (1, 1, 1)), tmp_path / "t1.nrrd")
    second = write(make_sphere_image((8, 8, 8), (1, 1, 1.5)), tmp_path / "flair.nrrd")
    shifted = write(make_sphere_image((8, 8, 8), (1, 1, 1), origin=(0, 0, 3)), tmp_path / "t2.nrrd")
    with pytest.raises(UNetPlusPlusError, match=r"flair\.nrrd.*spacing"):
        read_volume([first, second])
    with pytest.raises(UNetPlusPlusError, match=r"t2\.nrrd.*origin"):
        read_volume([first, shifted])
    # A difference below the tolerance (float32 header round-off) is accepted.
    nearly = make_sphere_image((8, 8, 8), (1, 1, 1 + 1e-6), origin=(1e-5, 0, 0))
    volume = read_volume([first, write(nearly, tmp_path / "t1c.nrrd")], ("T1", "T1c"))
    assert volume.array.shape == (2, 8, 8, 8)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_infinite_voxels_are_refused(tmp_path, bad):
    array = np.zeros((4, 5, 6), np.float32)
    array[1, 2, 3] = bad
    # (ITK's NIfTI writer turns NaN into 0, so use NRRD.)
    path = write(sitk.GetImageFromArray(array), tmp_path / "broken.nrrd")
    with pytest.raises(UNetPlusPlusError, match=r"broken\.nrrd.*NaN"):
        read_volume([path])


def test_images_that_are_not_3d_scalar_volumes_are_refused(tmp_path):
    cases = {
        "flat.nrrd": (sitk.Image([8, 8], sitk.sitkInt16), "2D"),
        "series.nii.gz": (sitk.Image([4, 4, 4, 3], sitk.sitkFloat32), "4D"),
        "rgb.mha": (sitk.Image([4, 4, 4], sitk.sitkVectorUInt8, 3), "3 values per voxel"),
        "slice.nrrd": (sitk.Image([8, 8, 1], sitk.sitkInt16), "single slice"),
    }
    for name, (image, message) in cases.items():
        path = write(image, tmp_path / name)
        with pytest.raises(UNetPlusPlusError, match=message):
            read_volume([path])
    with pytest.raises(UNetPlusPlusError, match="not found"):
        read_volume([tmp_path / "missing.nrrd"])


def test_a_truncated_file_is_a_clear_error(tmp_path):
    path = write(make_sphere_image((16, 16, 16)), tmp_path / "scan.nrrd")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UNetPlusPlusError, match=r"Cannot read .*scan\.nrrd"):
        read_image(path)


def write_dicom_series(folder: Path, count: int = 5) -> list[Path]:
    """A tiny CT series, 8x8 slices 2.5 mm apart."""
    folder.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    paths = []
    for k in range(count):
        array = (np.arange(64, dtype=np.int16).reshape(8, 8) + 100 * k).astype(np.int16)
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((0.8, 0.8))
        tags = {
            "0008|0060": "CT",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.1",
            "0020|000e": "1.2.826.0.1.3680043.2.1125.1.2",
            "0008|0018": f"1.2.826.0.1.3680043.2.1125.1.2.{k + 1}",
            "0020|0013": str(k + 1),
            "0020|0032": f"-10\\-20\\{2.5 * k}",
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0028|0030": "0.8\\0.8",
        }
        for tag, value in tags.items():
            image.SetMetaData(tag, value)
        paths.append(folder / f"slice{k:02d}.dcm")
        writer.SetFileName(str(paths[-1]))
        writer.Execute(image)
    return paths


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_dicom_series_with_a_truncated_slice(tmp_path):
    paths = write_dicom_series(tmp_path / "series")
    image = read_image(tmp_path / "series")
    assert image.GetSize() == (8, 8, 5)
    assert np.allclose(image.GetSpacing(), (0.8, 0.8, 2.5))
    # A truncated last slice is skipped with a warning naming it.
    truncate(paths[-1])
    with pytest.warns(UserWarning, match="slice04.dcm"):
        image = read_image(tmp_path / "series")
    assert image.GetSize() == (8, 8, 4)
    # A truncated slice in the middle leaves a gap: the volume would be distorted, so refuse.
    truncate(paths[2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(UNetPlusPlusError, match=r"missing or unevenly spaced.*slice02\.dcm"):
            read_image(tmp_path / "series")
    # The truncated file itself, read on its own, is a clear error naming it.
    with pytest.raises(UNetPlusPlusError, match="slice02.dcm"):
        read_image(paths[2])


def test_a_dicom_slice_copied_twice_is_named_as_a_duplicate(tmp_path):
    """A copy of slice 2 beside the series was refused as "a 5 mm gap after slice04.dcm where
    2.5 mm is expected" (on the demo series: "a 20 mm gap"), naming neither the copy nor the
    slice it duplicates (tester fresh30). It is one error naming both files."""
    paths = write_dicom_series(tmp_path / "series")
    (tmp_path / "series" / "zz_copy.dcm").write_bytes(paths[2].read_bytes())
    with pytest.raises(UNetPlusPlusError, match="same position") as error:
        read_image(tmp_path / "series")
    assert "slice02.dcm" in str(error.value) and "zz_copy.dcm" in str(error.value)
    assert "gap" not in str(error.value)


def test_a_folder_without_dicom_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(UNetPlusPlusError, match="No DICOM series"):
        read_image(tmp_path)


# --------------------------------------------------------------------------- public data
def test_lidc_slab_with_a_truncated_slice_is_read_without_it(shared_data):
    patient = shared_data / "lung-nodule" / "lidc-dicom-slabs" / "LIDC-IDRI-0003"
    if not patient.is_dir():
        pytest.skip("LIDC-IDRI-0003 slab not present")
    bad = next(patient.rglob("-204.000000.dcm"))
    with pytest.warns(UserWarning, match=r"-204\.000000\.dcm"):
        volume = read_volume([patient])  # the patient folder: the series is found below it
    assert volume.shape_zyx == (10, 512, 512)
    assert np.isclose(volume.spacing[2], 2.5)
    with pytest.raises(UNetPlusPlusError, match=r"-204\.000000\.dcm"):
        read_image(bad)
    with pytest.raises(UNetPlusPlusError, match="give the series folder"):
        read_volume([next(patient.rglob("-179.000000.dcm"))])


def test_dicom_example_matches_its_nifti_segmentation_in_physical_space(shared_data):
    folder = shared_data / "liver" / "totalsegmentator-examples"
    if not (folder / "example_ct_dicom").is_dir():
        pytest.skip("TotalSegmentator DICOM example not present")
    volume = read_volume([folder / "example_ct_dicom"], channel_names=["CT"])
    assert volume.shape_zyx == (20, 512, 512)
    assert np.allclose(volume.spacing, (0.9765625, 0.9765625, 2.0))
    assert -1100 < volume.array.min() < volume.array.max() < 4000
    # The segmentation is stored with y flipped (RAS-like); on the DICOM grid it is the same
    # voxels flipped along y.
    seg = read_labelmap(folder / "example_seg_dicom.nii.gz")
    assert not np.allclose(seg.direction, volume.direction)
    on_ct = resample_labels(seg, volume.grid)
    assert np.array_equal(on_ct.array, seg.array[:, ::-1, :])
    assert on_ct.array.max() > 0


def test_example_ct_is_read_as_float32_with_its_header(repo_root):
    path = repo_root / "Resources" / "Examples" / "example_ct.nii.gz"
    if not path.exists():
        pytest.skip("bundled example CT not present")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    volume = read_volume([path])
    assert volume.array.dtype == np.float32 and volume.shape_zyx == reader.GetSize()[::-1]
    assert volume.grid.isclose(
        Grid(reader.GetSize(), reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection())
    )


def test_volume_validates_its_array_shape():
    with pytest.raises(ValueError):
        Volume(np.zeros((4, 4, 4)), (1, 1, 1), (0, 0, 0), np.eye(3))
