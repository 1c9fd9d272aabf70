"""``unetpp train`` settings that do not depend on the data are refused before any case is read
(training/option_checks.py, engine/network_shape.py): ``--tile 16 16 16`` was refused by the
Trainer only after the dataset check and the fingerprint had read every case; ``--features``
of zero or a negative width passed ``--plan-only`` (a traceback after the fingerprint), and an
f2..f4 of 1 too. The cases here are unreadable on purpose: reading one would be another error.
"""

from __future__ import annotations

import argparse
import json

import pytest
import torch
from test_training_dataset import write_slicer_dataset
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.engine.network import UNetPlusPlus3D
from UNetPlusPlusLib.engine.network_shape import features_problem, tile_problem
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.training.option_checks import check_tile_and_norm
from UNetPlusPlusLib.training.train_args import add_train_arguments


def _unreadable_exports(folder):
    """Slicer exports whose images are not images: any read of a case fails."""
    data = write_slicer_dataset(folder, cases=2)
    for image in data.glob("case??.nrrd"):
        image.write_bytes(b"NRRD0004\nnot an image\n")
    return data


def _one_error(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err and "fingerprint" not in captured.out
    return lines[0]


@pytest.mark.parametrize("tile", [["16", "16", "16"], ["16", "16", "16", "--norm", "instance"]])
def test_a_tile_too_small_for_instance_norm_is_refused_before_any_case_is_read(
    tmp_path, capsys, tile
):
    data = _unreadable_exports(tmp_path / "data")
    out = tmp_path / "out"
    code = main(["train", str(data), "-o", str(out), "--labels", "tumor", "--plan-only",
                 "--epochs", "1", "--tile", *tile])  # fmt: skip
    assert code == 2
    error = _one_error(capsys)
    assert error.startswith("error: Tile 16 16 16 leaves one voxel at the deepest level"), error
    assert "use 32 on at least one axis (--tile; norm instance from " in error, error
    assert not out.exists()


def test_a_dataset_description_tile_is_refused_before_any_case_is_listed(tmp_path, capsys):
    description = tmp_path / "dataset.json"
    description.write_text(
        json.dumps(
            {
                "name": "x",
                "channels": [{"name": "CT", "modality": "CT"}],
                "labels": ["liver"],
                "sources": [{"images": ["{case}.nii.gz"], "label": "{case}_seg.nii.gz",
                             "label_map": {"liver": [1]}}],
                "tile_size": [16, 16, 16],
            }
        )
    )  # fmt: skip
    (data := tmp_path / "data").mkdir()  # empty: listing its cases would be another error
    out = tmp_path / "out"
    assert main(["train", str(data), "--dataset-json", str(description), "-o", str(out)]) == 2
    error = _one_error(capsys)
    assert "Tile 16 16 16 leaves one voxel" in error and "(the dataset description;" in error
    assert not out.exists()


def _args(*options: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    return parser.parse_args(["data", "-o", "out", *options])


def test_the_norm_decides_whether_a_16_voxel_tile_trains():
    check_tile_and_norm(_args("--tile", "16", "16", "16", "--norm", "none"))
    check_tile_and_norm(_args("--tile", "32", "16", "16"))  # 2 voxels at the deepest level
    check_tile_and_norm(_args("--tile", "16", "16", "16"), saved={"norm": "batch"})
    with pytest.raises(UNetPlusPlusError, match=r"\(the checkpoint; norm instance from --norm\)"):
        check_tile_and_norm(_args("--norm", "instance"), saved={"tile_size": [16, 16, 16]})
    # a dataset.json run whose norm its description may set: decided once it is read
    check_tile_and_norm(_args("--tile", "16", "16", "16", "--dataset-json", "d.json"))


def test_the_rule_is_the_networks():
    """What tile_problem refuses, the network cannot train: one voxel at level 4 under
    instance norm raises in torch; what it accepts runs a training step's forward."""
    assert tile_problem((16, 16, 16), "instance") is not None
    assert tile_problem((16, 16, 16), "none") is None
    network = UNetPlusPlus3D(1, 2, (2, 2, 2, 2, 2, 2), norm="instance").train()
    with pytest.raises(ValueError, match="too small for depth 4 with instance norm"):
        network(torch.zeros(1, 1, 16, 16, 16))
    assert tile_problem((32, 16, 16), "instance") is None
    assert network(torch.zeros(1, 1, 16, 16, 32)).shape == (1, 2, 16, 16, 32)


@pytest.mark.parametrize(
    "features, named",
    [
        (["0", "2", "4", "8", "16", "2"], "(f0=0)"),
        (["-8", "16", "32", "64", "128", "8"], "(f0=-8)"),
        (["8", "16", "1", "64", "128", "8"], "(f2=1)"),
        (["8", "16", "32", "64", "128", "0"], "(f_final=0)"),
    ],
)
def test_features_the_network_refuses_are_refused_when_parsed(tmp_path, capsys, features, named):
    data = _unreadable_exports(tmp_path / "data")
    out = tmp_path / "out"
    code = main(["train", str(data), "-o", str(out), "--plan-only", "--features", *features])
    assert code == 2
    error = _one_error(capsys)
    assert error.startswith("error: argument --features: needs six whole numbers f0 f1 f2 f3"), (
        error
    )
    assert "each at least 1 and f2..f4 at least 2" in error and named in error, error
    assert not out.exists()
    with pytest.raises(ValueError, match="at least 2"):  # the network's own refusal, one rule
        UNetPlusPlus3D(1, 2, [int(f) for f in features])


def test_features_the_network_builds_are_accepted():
    """1 2 3 4 5 6 and odd widths build and train (f_{i+1} // 2 channels are up-sampled, as in
    MONAI's BasicUNetPlusPlus): accepted, however narrow."""
    for features in ((1, 2, 3, 4, 5, 6), (8, 16, 33, 65, 127, 8)):
        assert features_problem(features) is None
        assert _args("--features", *map(str, features)).features == list(features)
        network = UNetPlusPlus3D(1, 2, features)
        network(torch.zeros(1, 1, 32, 32, 32)).sum().backward()


def test_a_dataset_description_with_an_f2_of_one_names_the_field():
    from UNetPlusPlusLib.training.dataset_json import dataset_from_dict

    with pytest.raises(UNetPlusPlusError) as error:
        dataset_from_dict(
            {
                "name": "x",
                "channels": [{"name": "CT", "modality": "CT"}],
                "labels": ["liver"],
                "sources": [{"images": ["{case}.nii.gz"], "label": "{case}_seg.nii.gz",
                             "label_map": {"liver": [1]}}],
                "features": [8, 16, 1, 64, 128, 8],
            },
            ".",
            source="d.json",
        )  # fmt: skip
    assert str(error.value).startswith("Dataset description d.json: 'features' needs six whole")
    assert "(f2=1)" in str(error.value)


def test_a_given_batch_and_tile_that_cannot_fit_are_refused_before_any_case_is_read(
    tmp_path, capsys
):
    """The memory check of a given batch and tile needs no case; it ran after the dataset check
    had read every case (make_plan), so unreadable cases were the error instead. --modality CT
    spares the modality guess its reading of a few images."""
    data = _unreadable_exports(tmp_path / "data")
    out = tmp_path / "out"
    code = main(["train", str(data), "-o", str(out), "--labels", "tumor", "--modality", "CT",
                 "--batch-size", "1024", "--tile", "256", "256", "256", "--plan-only",
                 "--threads", "1"])  # fmt: skip
    assert code == 2
    error = _one_error(capsys)
    assert error.startswith("error: --batch-size 1024 with a 256x256x256 tile (--tile) needs"), (
        error
    )
    assert not out.exists()
