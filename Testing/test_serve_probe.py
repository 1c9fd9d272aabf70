"""The ``fastest`` executor's probe in idle time (``FastestExecutor.idle_probe``) and in
``unetpp serve``: the decision state lives in the kept Predictor and survives between
requests, the server probes between them, and the labels stay those of the reference path."""

from __future__ import annotations

import io
import json
import threading

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from fastest_clock import timed_fastest
from helpers import make_sphere_image
from UNetPlusPlusLib.engine import executors
from UNetPlusPlusLib.engine.predictor import Predictor
from UNetPlusPlusLib.warm_cache import WarmCache


@pytest.fixture(autouse=True)
def graph_cache(tmp_path, monkeypatch):
    """Exported graphs and probe memory go to a fresh user cache per test."""
    monkeypatch.setenv("UNETPP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("UNETPP_EXECUTOR", raising=False)


@pytest.mark.parametrize(("library_s", "pick"), [(0.5, "ours"), (0.02, "torch")])
def test_idle_probe_decides_on_the_last_tile_before_the_next_run(sphere_predictor, library_s, pick):
    fastest = timed_fastest(sphere_predictor, ours_s=0.1, library_s=library_s)
    tile = torch.randn(1, 1, 32, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = fastest.ours.run(tile, 2)
        fastest.run(tile, 2)  # OURS_FIRST = 1: ours alone, nothing decided, the tile kept
        assert not fastest.decided(tuple(tile.shape), 2) and fastest._library is not None
        assert fastest.idle_probe(stop=lambda: True) == 0  # a waiting request: nothing runs
        ran = fastest.idle_probe()
        # the warm-up tile, then two pairs: a 5x difference is decided after MIN_PAIRS
        assert ran == 5 and fastest.decided(tuple(tile.shape), 2)
        assert "last" not in fastest._state[("2", tuple(tile.shape))]  # the copy is freed
        assert fastest.idle_probe() == 0  # decided: nothing more to do
        out = fastest.run(tile, 2)
    assert fastest.chosen == pick
    assert (out.argmax(1) == expected.argmax(1)).float().mean() >= 0.999


def test_idle_probe_stops_between_tiles_when_a_request_waits(sphere_predictor):
    fastest = timed_fastest(sphere_predictor, ours_s=0.1, library_s=0.105)  # close: many pairs
    tile = torch.randn(1, 1, 32, 32, 32, generator=torch.Generator().manual_seed(3))
    asked = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) > 3

    with torch.no_grad():
        fastest.run(tile, 1)
        assert fastest.idle_probe(stop) == 3  # warm-up and one pair, then the request came
        assert not fastest.decided(tuple(tile.shape), 1)
        fastest.run(tile, 1)  # the probe goes on in the request's own tiles
    assert len(fastest._state[("1", tuple(tile.shape))]["times"]["ours"]) == 2


def test_serve_keeps_the_probe_state_between_requests_and_probes_between_them(
    tmp_path, sphere_model, monkeypatch
):
    """Real executors (ours and OpenVINO) on the tiny model through ``serve``: the first
    request runs its tiles on ours only, the server then decides in idle time, and the next
    requests find the decision in the same executor; labels equal the reference path's."""
    if "openvino" not in executors.available_executors():
        pytest.skip("OpenVINO is not installed")
    from UNetPlusPlusLib import cli_serve
    from UNetPlusPlusLib.cli import build_parser

    monkeypatch.setattr(cli_serve, "IDLE_PROBE_AFTER_S", 0.05)
    monkeypatch.setattr(cli_serve, "BUSY_PROBE_AFTER_S", 0.1)  # the suite's workers share the CPUs
    image = make_sphere_image((40, 36, 30), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0), np.eye(3), 12.0)
    ct = tmp_path / "ct.nrrd"
    sitk.WriteImage(image, str(ct))
    base = [str(ct), "--model", str(sphere_model), "--device", "cpu", "--threads", "2"]
    base += ["--depth", "2"]
    cache = WarmCache()
    probed = threading.Event()
    seen: list = []  # (tiles the idle probe ran, the executor's state) per idle probe
    original = cache.idle_probe

    chosen: list = []  # the executor of every tile after the first idle probe

    def idle_probe(stop):
        ran = original(stop)
        executor = cache._predictor[1].executor
        seen.append((ran, executor, {k: dict(v) for k, v in executor._state.items()}))
        if not probed.is_set():
            run = executor.run

            def logged(tile, depth):
                out = run(tile, depth)
                chosen.append(executor.chosen)
                return out

            executor.run = logged
        probed.set()
        return ran

    cache.idle_probe = idle_probe

    def requests():  # the next request only once the server has probed after the first
        for i in range(3):
            argv = [*base, "--labelmap", str(tmp_path / f"out{i}.nrrd")]
            yield json.dumps({"id": i, "argv": argv}) + "\n"
            if i == 0:
                assert probed.wait(120), "the server never probed in idle time"

    replies = io.StringIO()
    assert cli_serve.serve(requests(), replies, build_parser, cache=cache) == 0
    ends = [json.loads(line) for line in replies.getvalue().splitlines()]
    results = [end for end in ends if "result" in end or "error" in end]
    assert [end.get("error") for end in results] == [None] * 3, results

    ran, executor, state = seen[0]
    assert isinstance(executor, executors.FastestExecutor)
    (key, entry), *_ = state.items()  # one depth and tile shape
    assert key[0] == "2" and entry["ours_first"] >= 1 and entry["warm"]
    assert "pick" in entry and ran >= 5  # decided in idle time: warm-up and two pairs at least
    final = cache._predictor[1].executor
    assert final is executor and final._state[key]["warm"]  # the same state: no second warm-up
    assert final._state[key]["ours_first"] == entry["ours_first"]  # no tile counted afresh
    # the second request's first tile ran on the choice (later ones may probe again: the
    # chosen one is re-timed when the machine's load changes)
    assert chosen and chosen[0] == ("ours" if entry["pick"] == "ours" else "openvino")

    reference = Predictor.from_manifest_path(sphere_model, device="cpu", threads=2, executor="ours")
    volume = cache.volume([str(ct)], ["CT"])
    expected = reference.segment(volume, depth=2).labels.array
    assert (expected == 1).sum() > 500
    for i in range(3):
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / f"out{i}.nrrd")))
        assert np.mean(labels == expected) >= 0.999, i
