"""dataset.json's ``training`` field (training defaults) is checked when the file is read: a
misspelt key was ignored without a word, a bad value failed after the dataset checks with a
traceback, and a Decathlon-style list of cases ended `unetpp train` with an AttributeError.
A Decathlon / nnU-Net dataset.json is named as such, not as a spelling mistake."""

from __future__ import annotations

import json

import pytest
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.training.dataset_json import dataset_from_dict

BASE = {
    "name": "x",
    "channels": [{"name": "CT", "modality": "CT"}],
    "labels": ["liver"],
    "sources": [{"images": ["{case}.nii.gz"], "label": "{case}_seg.nii.gz",
                 "label_map": {"liver": [1]}}],
}  # fmt: skip


def _read(training) -> dict:
    return dataset_from_dict({**BASE, "training": training}, ".", source="d.json").training


@pytest.mark.parametrize(
    "training, expected",
    [
        ({"epoch": 5}, "'training.epoch' is not a training default (did you mean 'epochs'?)"),
        ({"batchsize": 2}, "(did you mean 'batch_size'?)"),
        ({"batch_size": "two"}, "'training.batch_size' must be a number, got 'two'"),
        ({"batch_size": 0}, "'training.batch_size' "),
        ({"batch_size": 2.5}, "'training.batch_size' "),
        ({"lr": -1e-3}, "'training.lr' must be a number greater than 0"),
        ({"foreground_fraction": 1.5}, "'training.foreground_fraction' must be a fraction"),
        ({"schedule": "linear"}, "'training.schedule' must be one of poly, cosine, constant"),
        ({"augment": "yes"}, "'training.augment' must be true or false"),
        ({"epochs": True}, "'training.epochs' must be a number, got True"),
        ("fast", "'training' must be an object of training defaults, got 'fast'"),
        (
            [{"image": "./imagesTr/a.nii.gz", "label": "./labelsTr/a.nii.gz"}],
            "'training' must be an object of training defaults (epochs, batch_size, ...), not a "
            "list of cases (entry 0 has image, label)",
        ),
    ],
)
def test_a_bad_training_field_is_one_error_naming_it(training, expected):
    with pytest.raises(UNetPlusPlusError) as error:
        _read(training)
    assert str(error.value).startswith("Dataset description d.json: "), error.value
    assert expected in str(error.value), error.value


def test_good_training_defaults_are_read_as_the_options_read_them():
    training = {"batch_size": 2.0, "lr": 3e-4, "augment": False, "schedule": "cosine", "seed": 0}
    assert _read(training) == {
        "batch_size": 2, "lr": 3e-4, "augment": False, "schedule": "cosine", "seed": 0,
    }  # fmt: skip
    assert _read(None) == {} and dataset_from_dict(BASE, ".").training == {}


@pytest.mark.parametrize(
    "extra, named",
    [
        (
            {"modality": {"0": "CT"}, "numTraining": 1, "licence": "CC-BY"},
            "'modality', 'numTraining'",
        ),
        (
            {"channel_names": {"0": "CT"}, "file_ending": ".nii.gz"},
            "'channel_names', 'file_ending'",
        ),
    ],
)
def test_a_decathlon_or_nnunet_description_is_named_as_such(extra, named):
    with pytest.raises(UNetPlusPlusError) as error:
        dataset_from_dict({**BASE, **extra}, ".", source="d.json")
    message = str(error.value)
    assert "Medical Segmentation Decathlon / nnU-Net" in message and named in message, message
    assert "spelling" not in message


def test_train_refuses_a_bad_training_field_before_any_case_is_read(tmp_path, capsys):
    description = tmp_path / "dataset.json"
    description.write_text(json.dumps({**BASE, "training": {"epoch": 5}}))
    out = tmp_path / "out"
    (data := tmp_path / "data").mkdir()  # empty: listing its cases would be another error
    code = main(["train", str(data), "--dataset-json", str(description),
                 "-o", str(out)])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'training.epoch' is not a training default" in err[0], err
    assert not out.exists()


@pytest.mark.parametrize("where", ["option", "dataset.json"])
def test_a_seed_beyond_64_bits_is_refused_before_any_case_is_read(tmp_path, capsys, where):
    """torch.manual_seed takes at most 2**64 - 1: a larger seed passed every check and ended
    the run after its preprocessing with a traceback ("Overflow when unpacking long long")."""
    seed = 2**64
    training = {"seed": seed} if where == "dataset.json" else {}
    description = tmp_path / "dataset.json"
    description.write_text(json.dumps({**BASE, "training": training}))
    out = tmp_path / "out"
    (data := tmp_path / "data").mkdir()  # empty: listing its cases would be another error
    argv = ["train", str(data), "--dataset-json", str(description), "-o", str(out)]
    code = main(argv + (["--seed", str(seed)] if where == "option" else []))
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"must be at most 2**64 - 1 = {seed - 1}, got {seed}" in err[0], err
    assert not out.exists()
    assert _read({"seed": seed - 1}) == {"seed": seed - 1}


def test_a_decathlon_folder_without_dataset_json_option_is_named_at_once(tmp_path, capsys):
    """`unetpp train Task03_Liver` (a Decathlon download: dataset.json, imagesTr, labelsTr) said
    "No Slicer exports found ..., or give --dataset-json"; only with that option did it say
    what the file is. Now the first error names the format; a dataset.json of ours in the
    folder is named with the option that reads it."""
    folder = tmp_path / "Task03_Liver"
    (folder / "imagesTr").mkdir(parents=True)
    decathlon = {"name": "Task03_Liver", "modality": {"0": "CT"}, "numTraining": 1,
                 "training": [{"image": "./imagesTr/liver_0.nii.gz"}]}  # fmt: skip
    (folder / "dataset.json").write_text(json.dumps(decathlon))
    out = tmp_path / "out"
    assert main(["train", str(folder), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a Medical Segmentation Decathlon / nnU-Net" in err[0], err
    (folder / "dataset.json").write_text(json.dumps(BASE))
    assert main(["train", str(folder), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"or give --dataset-json {folder / 'dataset.json'}" in err[0], err
    assert not out.exists()
