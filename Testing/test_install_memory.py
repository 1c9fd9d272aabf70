"""`unetpp models install` checks the weights with about one tensor in memory: it read the whole
safetensors file into tensors (``load_weights``) to check them against the network, so a large
model needed its full size in memory (twice for float16 weights) just to be installed."""

from __future__ import annotations

import itertools
import weakref

import safetensors.torch
from test_registry import make_package
from UNetPlusPlusLib.engine import manifest_weights, registry


def test_install_reads_one_tensor_at_a_time(tmp_path, monkeypatch):
    state = make_package(tmp_path / "pkg")

    def whole_file(*args, **kwargs):
        raise AssertionError("install read the whole weights file at once")

    monkeypatch.setattr(safetensors.torch, "load_file", whole_file)
    alive: set[int] = set()
    most, reads, tokens = [0], [0], itertools.count()
    read = manifest_weights._TensorsOnDemand.__getitem__

    def tracked(self, name):
        tensor = read(self, name)
        token = next(tokens)
        alive.add(token)
        weakref.finalize(tensor, alive.discard, token)
        most[0], reads[0] = max(most[0], len(alive)), reads[0] + 1
        return tensor

    monkeypatch.setattr(manifest_weights._TensorsOnDemand, "__getitem__", tracked)
    manifest = registry.install_model(str(tmp_path / "pkg"), cache_dir=tmp_path / "cache")
    assert manifest.name == "liver-test" and reads[0] >= len(state) > 10
    assert most[0] <= 2, f"{most[0]} tensors in memory at once"
