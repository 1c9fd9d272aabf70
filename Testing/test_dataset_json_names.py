"""``--dataset-json NAME``: the package's own dataset descriptions by name (fresh user 27).

Installed from a wheel, outside the checkout, ``--dataset-json
UNetPlusPlus/UNetPlusPlusLib/Resources/Datasets/lidc-vois.json`` (the README's path) named no
file, and nothing else reached the shipped descriptions but their site-packages path.
"""

from __future__ import annotations

import json

import pytest
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.resources import builtin_datasets_dir
from UNetPlusPlusLib.training.dataset_json import load_dataset_json, resolve_dataset_json

DATASETS = builtin_datasets_dir()


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A working folder outside the checkout, as after a wheel install."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("name", ["lidc-vois", "lidc-vois.json"])
def test_a_shipped_description_by_name(elsewhere, name):
    assert resolve_dataset_json(name) == DATASETS / "lidc-vois.json"
    dataset = load_dataset_json(name, elsewhere)
    assert dataset.name == load_dataset_json(DATASETS / "lidc-vois.json", elsewhere).name
    assert dataset.origin == str(DATASETS / "lidc-vois.json")


def test_a_file_of_that_name_here_wins(elsewhere):
    own = json.loads((DATASETS / "lidc-vois.json").read_text(encoding="utf-8"))
    own["name"] = "my-own-nodules"
    (elsewhere / "lidc-vois.json").write_text(json.dumps(own), encoding="utf-8")
    assert load_dataset_json("lidc-vois.json", elsewhere).name == "my-own-nodules"


def test_the_readme_path_outside_the_checkout_names_the_shipped_one(elsewhere):
    path = "UNetPlusPlus/UNetPlusPlusLib/Resources/Datasets/lidc-vois.json"
    with pytest.raises(UNetPlusPlusError) as caught:
        load_dataset_json(path, elsewhere)
    message = str(caught.value)
    assert message.startswith(f"Dataset description {path} does not exist.")
    assert "give --dataset-json lidc-vois" in message


def test_an_unknown_name_lists_the_shipped_ones(elsewhere):
    with pytest.raises(UNetPlusPlusError) as caught:
        load_dataset_json("lidc", elsewhere)
    message = str(caught.value)
    assert "Dataset description lidc does not exist." in message
    for name in ("brats2018", "lidc-vois", "liver", "liver-lits"):
        assert name in message
