"""The executors' three modules: executor_backends.py (ours, torch eager, the two libraries),
fastest.py (the probe between ours and OpenVINO) and executors.py (the default, make_executor).
Imports run one way, and every name imported from executors.py before the split is the same
object there, so the Predictor, the bench and the tests run one implementation."""

from __future__ import annotations

import torch
from test_layering import import_graph
from UNetPlusPlusLib.engine import executor_backends, executors, fastest

ENGINE = "UNetPlusPlusLib.engine."


def test_imports_run_one_way_backends_then_fastest_then_executors():
    graph = import_graph()
    assert ENGINE + "executor_backends" in graph[ENGINE + "fastest"]
    assert {ENGINE + "executor_backends", ENGINE + "fastest"} <= graph[ENGINE + "executors"]
    assert not {ENGINE + "fastest", ENGINE + "executors"} & graph[ENGINE + "executor_backends"]
    assert ENGINE + "executors" not in graph[ENGINE + "fastest"]


def test_executors_re_exports_the_names_it_had():
    for name in ("Executor", "OursExecutor", "TorchEagerExecutor", "OnnxRuntimeExecutor",
                 "OpenVinoExecutor", "available_executors", "NAMES", "Depth"):  # fmt: skip
        assert getattr(executors, name) is getattr(executor_backends, name), name
    assert executors.FastestExecutor is fastest.FastestExecutor
    assert executors.never_busy is fastest.never_busy
    assert set(executors.__all__) <= set(dir(executors))


def test_make_executor_and_the_probe_make_the_backends_classes(sphere_predictor, tmp_path):
    model = sphere_predictor.model
    for name in ("ours", "torch"):
        made = executors.make_executor(name, model, "cpu", threads=1)
        assert type(made) is executor_backends.BACKENDS[name]
    made = executors.make_executor("fastest", model, "cpu", threads=1, cache_dir=tmp_path)
    assert type(made) is fastest.FastestExecutor and made.memory is not None
    # the probe's library: a graph executor gets the graph cache, another only the model
    probe = fastest.FastestExecutor(model, threads=2, cache_dir=tmp_path, candidate="openvino")
    library = probe._other()  # made only, nothing imported or compiled yet
    assert type(library) is executor_backends.OpenVinoExecutor
    assert library.cache_dir == tmp_path and library.threads == 2
    probe = fastest.FastestExecutor(model, threads=1, candidate="torch")
    probe.OURS_FIRST = 0
    tile = torch.zeros(1, 1, 32, 32, 32)
    with torch.no_grad():
        ours = executor_backends.OursExecutor(model, 1).run(tile, 2)
        assert torch.equal(probe.run(tile, 2), ours)  # the warm-up tile returns ours
    assert type(probe._library) is executor_backends.TorchEagerExecutor
