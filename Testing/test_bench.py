"""bench/: the report's last line has the issue's format; the workload is deterministic."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from benchlib import harness, workload  # noqa: E402

LAST_LINE = re.compile(
    r"^speedup_vs_monai_L4=\d+\.\d\d speedup_L1=\d+\.\d\d speedup_L2=\d+\.\d\d "
    r"speedup_L3=\d+\.\d\d frac_peak=\d+\.\d\d mem_growth_2x=\d+\.\d\d agree=[01]\.\d{5}$"
)


def fake_results() -> dict:
    depths = ("4", "3", "2", "1", "ensemble")
    nominal = {"4": 408e9, "3": 271e9, "2": 159e9, "1": 73e9, "ensemble": 408e9}
    executed = {d: 0.8 * f for d, f in nominal.items()}
    tile_seconds = {"4": 4.0, "3": 2.6, "2": 1.5, "1": 0.8, "ensemble": 4.1}
    volume = {"monai:4": {"seconds": [80.0, 75.0], "peak_rss_mb": 1800.0, "tiles": 8}}
    for d in depths:
        volume[f"ours:{d}"] = {
            "seconds": [8 * tile_seconds[d] + 1.0],
            "peak_rss_mb": 900.0,
            "baseline_rss_mb": 390.0,
            "tiles": 8,
        }
    return {
        "shape": (160, 160, 160),
        "double_shape": (320, 160, 160),
        "rounds": 2,
        "tile": {
            "matmul_gflops": 115.0,
            "nominal_flops": nominal,
            "executed_flops": executed,
            "seconds": tile_seconds,
            "monai_seconds": 7.5,
            "bf16": {"skipped": "no native bfloat16"},
        },
        "volume": volume,
        "double": {"peak_rss_mb": 960.0, "baseline_rss_mb": 390.0, "tiles": 20},
        "agree": 0.99987,
        "differing_voxels": 532,
        "models": {"liver": {"seconds": 9.5, "depth": 2, "size_xyz": [119, 119, 185]}},
    }


def test_report_ends_with_the_ratio_line_of_issue_6():
    args = argparse.Namespace(threads=2, quick=False)
    lines = harness.report(fake_results(), args, "0.50 0.40 0.30", "0.60 0.50 0.40")
    assert LAST_LINE.match(lines[-1]), lines[-1]
    values = dict(item.split("=") for item in lines[-1].split())
    assert values["speedup_vs_monai_L4"] == f"{75.0 / 33.0:.2f}"  # best MONAI / best ours L4
    assert values["speedup_L1"] == f"{33.0 / 7.4:.2f}"
    assert values["frac_peak"] == f"{0.8 * 408 / 4.0 / 115.0:.2f}"  # executed FLOPs
    assert values["mem_growth_2x"] == f"{960 / 900:.2f}"
    assert values["agree"] == "0.99987"
    text = "\n".join(lines)
    assert "liver: 9.5 s at L2" in text and "brain: " not in text
    assert "load average (1, 5, 15 min): before 0.50 0.40 0.30" in text


def test_the_machine_lines_name_monai_without_importing_it(monkeypatch):
    """The report's machine lines imported MONAI for its version: 2 CPU s per bench report."""
    from importlib import metadata

    from benchlib import machine

    monkeypatch.setitem(sys.modules, "monai", None)  # any `import monai` now fails
    try:
        expected = f"MONAI {metadata.version('monai')},"
    except metadata.PackageNotFoundError:
        expected = "MONAI not installed,"
    assert expected in "\n".join(machine.describe(2))


def test_synthetic_volume_is_deterministic_and_ct_like():
    a = workload.synthetic_volume((24, 20, 16), seed=0)
    b = workload.synthetic_volume((24, 20, 16), seed=0)
    assert a.shape == (1, 24, 20, 16) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert 0.0 <= a.min() and a.max() <= 1.0 and a.std() > 0.05
    assert not np.array_equal(a, workload.synthetic_volume((24, 20, 16), seed=1))


def test_running_maximum_argmax_matches_torch_argmax_including_ties():
    import torch
    from benchlib.worker import argmax_classes

    probabilities = torch.rand(4, 6, 7, 8, generator=torch.Generator().manual_seed(0))
    probabilities[2, 0, 0, 0] = probabilities[1, 0, 0, 0] = 2.0  # a tie: the lower class wins
    labels = argmax_classes(probabilities)
    assert labels.dtype == torch.uint8 and labels[0, 0, 0] == 1
    assert torch.equal(labels, probabilities.argmax(dim=0).to(torch.uint8))


def fake_inference() -> dict:
    rows = {
        "ours": {"L2:idle": 0.10, "L2:loaded": 0.20, "L4:idle": 0.3, "L4:loaded": 0.5},
        "openvino": {"L2:idle": 0.12, "L2:loaded": 0.50, "L4:idle": 0.3, "L4:loaded": 1.0},
        "onnxruntime": "not installed",
        "monai": {"L4:idle": 1.9, "L4:loaded": 2.7},
    }
    split = {"start": 2.0, "load": 1.0, "preprocess": 0.5, "infer": 3.0, "postprocess": 1.0}
    return {
        "executors": {
            "configs": {"shipped": {"rows": rows, "agree": {"openvino:L2": 0.99995}}},
            "load": ("1.00 1.00 1.00", "3.00 2.00 1.00"),
        },
        "e2e": {
            "liver_512:idle": {
                "seconds": 8.25,
                "split": {**split, "write": 0.75},
                "depth": 2,
                "load": "1.0 1.0 1.0",
            }
        },
    }


def test_last_line_gains_the_openvino_ratios_and_the_end_to_end_time():
    args = argparse.Namespace(threads=2, quick=True)
    results = {**fake_results(), "inference": fake_inference()}
    lines = harness.report(results, args, "0.50 0.40 0.30", "0.60 0.50 0.40")
    values = dict(item.split("=") for item in lines[-1].split())
    # OpenVINO time / ours, the worst over depths: L4 idle (0.3 / 0.3), L4 loaded (1.0 / 0.5)
    assert values["shipped_vs_openvino_idle"] == "1.00"
    assert values["shipped_vs_openvino_loaded"] == "2.00"
    assert values["shipped_vs_openvino_worst"] == "liver:L4:idle"
    assert values["liver_vs_openvino_idle"] == "1.20"  # the liver at its depth (here 2)
    assert values["liver_vs_openvino_loaded"] == "2.50"
    assert values["e2e_liver_512"] == "8.2"
    assert LAST_LINE.match(" ".join(lines[-1].split()[:7]))  # the issue-6 keys are unchanged
    text = "\n".join(lines)
    assert "ONNX Runtime   not installed" in text
    assert "infer 3.00" in text and "(random weights)" in text


def test_openvino_keys_take_the_worst_shipped_model_and_depth_and_name_it():
    from benchlib.executors_bench import openvino_ratios, ratio_keys

    configs = {
        "shipped": {"rows": {"fastest": {"L1:idle": 0.04, "L3:idle": 0.10, "L3:loaded": 0.2},
                             "openvino": {"L1:idle": 0.05, "L3:idle": 0.11, "L3:loaded": 0.3}}},
        "shipped:nodule": {"rows": {"fastest": {"L1:idle": 0.02, "L1:loaded": 0.05},
                                    "openvino": {"L1:idle": 0.015, "L1:loaded": 0.06}}},
        "shipped:brain": {"rows": {"fastest": "not installed", "openvino": {"L1:idle": 1.0}}},
        "large": {"rows": {"fastest": {"L4:idle": 2.0}, "openvino": {"L4:idle": 0.5}}},
    }  # fmt: skip
    ratios = openvino_ratios(configs, "fastest")
    assert set(ratios) == {"liver:L1:idle", "liver:L3:idle", "liver:L3:loaded",
                           "nodule:L1:idle", "nodule:L1:loaded"}  # fmt: skip
    assert ratios["nodule:L1:idle"] == pytest.approx(0.75)  # OpenVINO faster: below 1
    values = dict(key.split("=") for key in ratio_keys(configs, "fastest", 3))
    assert values == {
        "shipped_vs_openvino_idle": "0.75",  # the nodule's L1 (the large network is not shipped)
        "shipped_vs_openvino_loaded": "1.20",  # min(0.3 / 0.2, 0.06 / 0.05)
        "shipped_vs_openvino_worst": "nodule:L1:idle",
        "liver_vs_openvino_idle": "1.10",
        "liver_vs_openvino_loaded": "1.50",
    }
    assert ratio_keys({"large": configs["large"]}, "fastest", 3) == []  # nothing shipped


def test_openvino_keys_take_the_paired_median_and_the_report_shows_both():
    """Where the job timed the default and OpenVINO side by side (``paired``), a cell is the
    median of the per-round ratios; the best-of rows' ratio is printed beside it."""
    args = argparse.Namespace(threads=2, quick=True)
    inference = fake_inference()
    inference["default"] = "fastest"
    shipped = inference["executors"]["configs"]["shipped"]
    shipped["rows"]["fastest"] = {"L2:idle": 0.10, "L2:loaded": 0.25}  # best of: 1.20, 2.00
    shipped["paired"] = {"L2:idle": [1.02, 0.94, 0.90], "L2:loaded": [1.5, 1.7, 1.9]}
    shipped["paired_with"] = "fastest"
    lines = harness.report({**fake_results(), "inference": inference}, args, "0.5", "0.6")
    values = dict(item.split("=") for item in lines[-1].split())
    assert values["shipped_vs_openvino_idle"] == "0.94"  # not the best-of 1.20
    assert values["shipped_vs_openvino_loaded"] == "1.70"
    assert values["shipped_vs_openvino_worst"] == "liver:L2:idle"
    assert values["liver_vs_openvino_idle"] == "0.94"
    text = "\n".join(lines)
    assert "OpenVINO/fastest: median of 3 paired rounds (the keys), best of rows" in text
    cells = r"\n  paired median +0\.94 +- +1\.70 +-\n  best of +1\.20 +- +2\.00 +-\n"
    assert re.search(cells, text)  # L2 and L4, idle then loaded: fastest ran at L2 only
    assert any(line.startswith("executors:") and "ABBA" in line for line in lines)
    shipped["paired_with"] = "ours"  # paired against another executor: the best-of ratio
    lines = harness.report({**fake_results(), "inference": inference}, args, "0.5", "0.6")
    assert "shipped_vs_openvino_idle=1.20" in lines[-1]


def test_competing_load_is_stopped_on_exit():
    from benchlib.load import competing_load

    with competing_load(2, max_seconds=60) as processes:
        assert len(processes) == 2 and all(p.poll() is None for p in processes)
    assert all(p.returncode is not None for p in processes)


def test_openvino_ratios_are_taken_against_the_default_executor():
    args = argparse.Namespace(threads=2, quick=True)
    inference = fake_inference()
    inference["default"] = "fastest"
    shipped = inference["executors"]["configs"]["shipped"]
    shipped["rows"]["fastest"] = {"L2:idle": 0.06, "L2:loaded": 0.25}
    shipped["fastest_picks"] = {"L2:idle": ["openvino"], "L2:loaded": ["ours"]}
    results = {**fake_results(), "inference": inference}
    lines = harness.report(results, args, "0.50 0.40 0.30", "0.60 0.50 0.40")
    values = dict(item.split("=") for item in lines[-1].split())
    assert values["shipped_vs_openvino_idle"] == "2.00"  # 0.12 / 0.06
    assert values["shipped_vs_openvino_loaded"] == "2.00"  # 0.50 / 0.25
    assert values["liver_vs_openvino_idle"] == "2.00"  # one depth here: the same figures
    text = "\n".join(lines)
    assert "the CPU default here: fastest" in text
    assert "fastest ran: L2:idle openvino, L2:loaded ours" in text


def sphere_case(tmp_path, sphere_model) -> dict:
    import SimpleITK as sitk
    from helpers import make_sphere_image

    path = tmp_path / "sphere.nrrd"
    sitk.WriteImage(make_sphere_image((24, 24, 20)), str(path))
    return {"inputs": [str(path)], "args": ["--model", str(sphere_model)]}


def read_labels(path):
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    geometry = (image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection())
    return sitk.GetArrayFromImage(image), geometry


def test_warm_server_requests_give_the_cold_runs_labels(sphere_model, tmp_path, repo_root):
    """One real cold run (``e2e.run_case``: a fresh ``unetpp segment``) and one real server
    (``warm.WarmServer``): the time split by stage, the model's recommended depth when none is
    asked, the cold run's labels and geometry from the warm requests, a failed request."""
    import os

    from benchlib import e2e, warm

    case = sphere_case(tmp_path, sphere_model)
    env = dict(os.environ, PYTHONPATH=str(repo_root / "UNetPlusPlus"))
    cold = e2e.run_case(case, 1, env, output=tmp_path / "cold.seg.nrrd")
    missing = {"inputs": [str(tmp_path / "missing.nrrd")], "args": case["args"]}
    with warm.WarmServer(env) as server:
        first = server.request(case, 1, output=tmp_path / "first.seg.nrrd")
        again = server.request(case, 1, "rec", output=tmp_path / "again.seg.nrrd")
        other = server.request(case, 1, "2")  # a temporary output, removed after the request
        assert not list(server._folder.iterdir())
        with pytest.raises(RuntimeError, match="missing.nrrd"):  # reported, the server lives on
            server.request(missing, 1)
        process = server.process
    assert process.poll() == 0  # the end of its input ended the server
    assert first["first"] and not again["first"] and not other["first"]
    # the fixture's recommended depth (no --depth), and the depth asked for
    assert cold["depth"] == first["depth"] == again["depth"] == 3 and other["depth"] == 2
    assert cold["cpu_s"] > 0
    for run in (cold, first, again, other):
        assert set(run["split"]) == set(e2e.STAGES)
        assert all(v >= 0 for v in run["split"].values())
        assert abs(sum(run["split"].values()) - run["seconds"]) < 1e-6
    labels, geometry = read_labels(tmp_path / "cold.seg.nrrd")
    assert labels.any()
    for name in ("first", "again"):
        warm_labels, warm_geometry = read_labels(tmp_path / f"{name}.seg.nrrd")
        assert warm_geometry == geometry
        assert (warm_labels == labels).all()


def test_split_by_stage_gives_a_missing_stage_no_time():
    from benchlib.e2e import split_by_stage

    stamps = {"load": 1.0, "preprocess": 1.5, "infer": 2.0, "write": 4.0}  # no postprocess
    split = split_by_stage(stamps, 5.0)
    assert split == {
        "start": 1.0,
        "load": 0.5,
        "preprocess": 0.5,
        "infer": 2.0,
        "postprocess": 0.0,
        "write": 1.0,
    }


@pytest.mark.slow
def test_end_to_end_bench_measures_cold_and_warm_and_prints_the_keys(
    sphere_model, tmp_path, repo_root, monkeypatch
):
    """The bench's end-to-end part on the tiny model as the brain case: cold and warm rows,
    idle and loaded, and the new keys on the report's last line beside the existing ones.

    The "loaded" runs are counted, not loaded: two busy loops per loaded run took both cores
    of the test machine from the rest of the suite; ``competing_load`` itself is tested by
    test_competing_load_is_stopped_on_exit. The warm requests go to a real server; the cold
    runs are recorded (a fresh ``unetpp segment`` each, 3-4 CPU s of imports: ``e2e.run_case``
    itself is run for real by test_warm_server_requests_give_the_cold_runs_labels)."""
    import contextlib
    import os

    from benchlib import e2e, e2e_bench, warm

    loads: list[int] = []

    @contextlib.contextmanager
    def counted_load(processes: int = 2, max_seconds: float = 900.0):
        loads.append(processes)
        yield []

    cold_runs: list[tuple] = []

    def recorded_run(case: dict, threads: int, env: dict, output=None) -> dict:
        depth = int(case["args"][case["args"].index("--depth") + 1])
        cold_runs.append((case["inputs"], depth, threads, len(loads)))
        seconds = 1.0 + depth + 0.1 * (len(cold_runs) * 7 % 5)  # L4 longer; rounds differ
        return {"seconds": seconds, "split": e2e.split_by_stage({}, seconds), "depth": depth}

    monkeypatch.setattr(e2e_bench, "competing_load", counted_load)
    monkeypatch.setattr(warm, "competing_load", counted_load)
    monkeypatch.setattr(warm, "LOAD_RAMP_S", 0.0)
    monkeypatch.setattr(e2e, "run_case", recorded_run)
    env = dict(os.environ, PYTHONPATH=str(repo_root / "UNetPlusPlus"))
    found = {"brain": sphere_case(tmp_path, sphere_model)}
    messages: list[str] = []
    measured = e2e_bench.measure(True, 1, env, messages.append, found=found)
    rounds = e2e_bench.cold_rounds(True)
    assert rounds == 3
    # 3 cold rounds of L1 and L4 loaded once each, then 2 warm rounds of L1 and L4
    assert loads == [2] * (rounds * 2 + 2 * 2)
    inputs = found["brain"]["inputs"]  # idle, then loaded (inside the load's context) ...
    first = [(inputs, 1, 1, 0), (inputs, 1, 1, 1), (inputs, 4, 1, 1), (inputs, 4, 1, 2)]
    second = [(inputs, 1, 1, 3), (inputs, 1, 1, 3), (inputs, 4, 1, 4), (inputs, 4, 1, 4)]
    assert cold_runs[:8] == first + second  # ... then, the next round, loaded first
    assert len(cold_runs) == rounds * 4
    rows = [f"brain_L{d}:{c}" for d in (1, 4) for c in ("idle", "loaded")]
    assert sorted(measured["cold"]) == sorted(rows)
    for key in rows:  # every run's seconds kept, the row's own being their median
        seen = measured["cold"][key]["rounds"]
        assert len(seen) == rounds and measured["cold"][key]["seconds"] == sorted(seen)[1]
    assert sorted(measured["warm"]) == sorted(rows + ["brain:first"])
    assert measured["warm_rounds"] == 2
    for key in rows:
        assert len(measured["warm"][key]["rounds"]) == 2
        assert measured["warm"][key]["seconds"] == min(measured["warm"][key]["rounds"])
        assert measured["warm"][key]["depth"] == measured["cold"][key]["depth"] == int(key[7])
    assert measured["warm"]["brain:first"]["first"]

    inference = fake_inference()
    inference["e2e"], inference["e2e_warm"] = measured["cold"], measured["warm"]
    inference["e2e_warm_rounds"] = measured["warm_rounds"]
    args = argparse.Namespace(threads=2, quick=True)
    lines = harness.report({**fake_results(), "inference": inference}, args, "0.5", "0.6")
    assert LAST_LINE.match(" ".join(lines[-1].split()[:7]))  # the issue-6 keys are unchanged
    values = dict(item.split("=") for item in lines[-1].split())
    assert values.pop("shipped_vs_openvino_worst") == "liver:L4:idle"  # the one named cell
    values = {k: float(v) for k, v in values.items()}  # every other key is a number
    assert {"shipped_vs_openvino_idle", "shipped_vs_openvino_loaded"} <= set(values)
    assert "e2e_liver_512" not in values  # no liver case here
    for kind in ("cold", "warm"):
        runs = measured[kind]
        ratio = runs["brain_L4:idle"]["seconds"] / runs["brain_L1:idle"]["seconds"]
        assert values[f"brain_l4_vs_l1_{kind}"] == round(ratio, 2)
        loaded = [runs[f"brain_L{d}:loaded"]["seconds"] for d in (1, 4)]
        worst = max(s / runs[f"brain_L{d}:idle"]["seconds"] for d, s in zip((1, 4), loaded))
        assert values[f"loaded_vs_idle_{kind}"] == round(worst, 2)
    text = "\n".join(lines)
    assert "end to end, cold: unetpp segment in a fresh process" in text
    assert "end to end, warm: requests to one unetpp serve process, best of 2" in text
    assert "brain:first" in text and "brain_L4:loaded" in text
    assert text.count("  loaded / idle: brain_L1 ") == 2  # per row, cold and warm


def test_a_cold_row_is_its_median_run_with_every_round_kept():
    from benchlib import e2e_bench

    runs = [{"seconds": s, "split": {"infer": s / 2}} for s in (3.0, 1.0, 2.0)]
    row = e2e_bench.median_run(runs)
    assert row["seconds"] == 2.0 and row["split"] == {"infer": 1.0}  # one real run's split
    assert row["rounds"] == [3.0, 1.0, 2.0]  # in the order run
    assert e2e_bench.median_run(runs[:2])["seconds"] == 1.0  # even: the lower middle one
    with pytest.raises(ValueError):
        e2e_bench.median_run([])
    assert "rounds 3.00, 1.00, 2.00" in "\n".join(
        e2e_bench.report(
            {
                "cold": {
                    "x:idle": {
                        **row,
                        "load": 1.0,
                        "depth": 1,
                        "cpu_s": 1.0,
                        "split": {
                            st: 0.1
                            for st in (
                                "start",
                                "load",
                                "preprocess",
                                "infer",
                                "postprocess",
                                "write",
                            )
                        },
                    }
                }
            }
        )
    )


def test_end_to_end_keys_keep_the_liver_time_and_skip_missing_runs():
    from benchlib.e2e_bench import keys

    def run(seconds: float) -> dict:
        return {"seconds": seconds}

    cold = {"liver_512:idle": run(9.04), "liver_512:loaded": run(18.0), "nodule:idle": run(4.0)}
    cold |= {"nodule:loaded": run(10.0), "brain_L1:idle": run(3.0), "brain_L4:idle": run(6.0)}
    warm = {"brain:first": run(9.0), "nodule:idle": run(0.5), "nodule:loaded": run(0.75)}
    assert keys(cold, warm) == [
        "e2e_liver_512=9.0",
        "brain_l4_vs_l1_cold=2.00",
        "loaded_vs_idle_cold=2.50",  # the nodule: 10 / 4; the brain has no loaded run
        "loaded_vs_idle_warm=1.50",
    ]


def test_help_prints_the_usage_without_measuring():
    """`bench/run --help` ran the training-throughput measurement before the usage; it also
    imported torch (4 s of CPU) before printing it."""
    import os
    import subprocess

    run = subprocess.run(
        [sys.executable, str(Path(__file__).resolve().parents[1] / "bench" / "run"), "--help"],
        capture_output=True, text=True, timeout=120,
        env=dict(os.environ, PYTHONPROFILEIMPORTTIME="1"),  # each import, on stderr
    )  # fmt: skip
    assert run.returncode == 0 and run.stdout.startswith("usage: bench/run")
    assert "training throughput" not in run.stderr + run.stdout
    assert "| benchlib.run_args" in run.stderr  # the import log is there ...
    assert not re.search(r"\|\s*torch$", run.stderr, re.M)  # ... without torch


def test_e2e_interleaves_code_trees_and_executors_and_prints_medians(monkeypatch, capsys):
    from benchlib import e2e

    ran = []

    def fake_run(case, threads, env, output=None):
        ran.append((env.get("PYTHONPATH"), env.get("UNETPP_EXECUTOR")))
        seconds = {"ours": 2.0, "fastest": 3.0}[env["UNETPP_EXECUTOR"]]
        split = dict.fromkeys(e2e.STAGES, 0.1) | {"infer": seconds - 0.5}
        return {"seconds": seconds, "split": split, "depth": 3}

    monkeypatch.setattr(e2e, "cases", lambda which: {"nodule": {"inputs": [], "args": []}})
    monkeypatch.setattr(e2e, "run_case", fake_run)
    e2e.main(["--cases", "nodule", "--rounds", "2", "--executors", "ours,fastest",
              "--code", "a=/x,b=/y"])  # fmt: skip
    first = [("/x", "ours"), ("/x", "fastest"), ("/y", "ours"), ("/y", "fastest")]
    assert ran == first + first[::-1]  # every tree and executor, the order reversed per round
    out = capsys.readouterr().out
    assert "median nodule Lrec b/fastest: 3.00 s, preprocess + infer 2.60 s (2 runs" in out
    assert "median nodule Lrec a/ours: 2.00 s, preprocess + infer 1.60 s (2 runs" in out


def test_quick_executor_job_covers_every_shipped_model_and_depth(monkeypatch, tmp_path):
    """What `--quick` asks the executors job for (the job itself is timed, not tested here)."""
    from benchlib import e2e_bench, executors_bench

    monkeypatch.setattr(
        e2e_bench, "measure", lambda *a, **k: {"cold": {}, "warm": {}, "warm_rounds": 0}
    )
    jobs: list = []

    def run(job, label):
        jobs.append(job)
        return {"configs": {}}

    run.env = {}
    args = argparse.Namespace(quick=True, threads=2)
    results = executors_bench.measure(run, args, tmp_path, tmp_path / "w", lambda m: None)
    (job,) = jobs
    assert job["shipped_depths"] == [1, 2, 3, 4] and job.get("other_shipped", True)
    assert job["model_executors"] == ["ours", "openvino", "fastest"]
    assert job["other_depths"] == sorted({results["recommended_depth"], 4})
    assert "openvino-bf16" in job["skip"] and job["large_tile"] == 64
    assert job["default"] == results["default"]  # the executor paired with OpenVINO
