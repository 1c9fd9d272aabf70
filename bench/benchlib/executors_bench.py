"""Harness side of the executor and end-to-end measurements (issue 14), and their report.

``measure`` runs the ``executors`` worker job (``executor_worker.py``: seconds per tile per
executor, idle and under ``load.competing_load``) and the end-to-end runs (``e2e_bench.py``:
cold one-shot CLI processes and warm ``unetpp serve`` requests, idle and loaded). ``report``
returns the table lines and the ``key=value`` pairs that ``harness`` appends to its last line.
"""

from __future__ import annotations

from pathlib import Path

from . import e2e_bench, machine, pairing
from .executor_worker import EXECUTORS

LABELS = {
    "ours": "ours",
    "torch": "torch eager",
    "onnxruntime": "ONNX Runtime",
    "openvino": "OpenVINO fp32",
    "openvino-bf16": "OpenVINO bf16",
    "fastest": "fastest",
    "monai": "MONAI",
}
QUICK_LARGE_TILE = 64  # --quick: the large network on a 64^3 tile (the full mode: 96^3)
#: --quick runs these on the nodule and brain models (the full mode: all but MONAI)
QUICK_MODEL_EXECUTORS = ["ours", "openvino", "fastest"]
#: config name -> the short model name of the ratio keys
SHIPPED_NAMES = {"shipped": "liver", "shipped:nodule": "nodule", "shipped:brain": "brain"}
TITLES = {
    "shipped": "liver model (8..128, 1 -> 2 channels, its tile {tile}, liver weights)",
    "shipped:nodule": "lung-nodule model (8..128, 1 -> 2 channels, its tile {tile})",
    "shipped:brain": "brain-tumor model (8..128, 4 -> 4 channels, its tile {tile})",
    "large": "large network (16..256, tile {tile}, MONAI weights)",
}


def default_cpu_executor() -> str:
    """The executor ``unetpp segment`` uses on the CPU here (engine/executors.py)."""
    from UNetPlusPlusLib.engine.executors import default_executor

    return default_executor("cpu")


def recommended_liver_depth() -> int:
    """The shipped liver model's recommended depth (the ratio keys are taken there)."""
    from UNetPlusPlusLib.engine.registry import find_model

    return int(find_model("liver").recommended_depth)


#: rounds of the default executor and OpenVINO alone, after the full rounds (executor_worker.
#: paired_only_rounds), in both modes
PAIRED_ONLY_ROUNDS = 4


def measure(run, args, workdir: Path, weights: Path, log) -> dict:
    """Executor rows and end-to-end runs; ``run`` is the harness's worker Runner."""
    results: dict = {"recommended_depth": recommended_liver_depth()}
    results["default"] = default_cpu_executor()
    log("executors: seconds per tile, idle then under 2 busy processes")
    load_before = machine.load_average()
    job = {
        "kind": "executors",
        "weights": str(weights),
        "cache": str(workdir / "graphs"),
        "rounds": 2 if args.quick else 5,
        # the default and OpenVINO alone, after the full rounds: the keys' medians over 6 or
        # 9 paired rounds (2 left one cell's ratio anywhere in 0.70-1.25, session 18)
        "paired_rounds": PAIRED_ONLY_ROUNDS,
        "shipped_depths": [1, 2, 3, 4],  # every shipped model at every depth (issue 14)
        "large": True,
        "default": results["default"],  # timed side by side with OpenVINO (pairing.py)
    }
    if args.quick:  # bf16 is measured in the full mode only; a smaller tile for the large net
        job.update(
            skip=["openvino-bf16"],
            large_tile=QUICK_LARGE_TILE,
            model_executors=QUICK_MODEL_EXECUTORS,
            other_depths=sorted({results["recommended_depth"], 4}),  # as before on the liver
        )
    results["executors"] = run(job, "executors")
    results["executors"]["load"] = (load_before, machine.load_average())
    log("end to end, cold (fresh processes) and warm (one unetpp serve), idle and loaded")
    end_to_end = e2e_bench.measure(args.quick, args.threads, run.env, log)
    results["e2e"], results["e2e_warm"] = end_to_end["cold"], end_to_end["warm"]
    results["e2e_warm_rounds"] = end_to_end["warm_rounds"]
    return results


def _seconds(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "-"


def _ratio(value) -> str:
    return f"{value:.2f}" if isinstance(value, float) else "-"


def openvino_ratios(configs: dict, default: str, paired: bool = True) -> dict[str, float]:
    """OpenVINO's seconds per tile / the default executor's, per ``"model:Ldepth:condition"``
    over the shipped models' configs (``SHIPPED_NAMES``) of the ``executors`` job's result.
    >= 1.0: the default is at least as fast. Rows missing or not measured are left out.

    ``paired``: where the job timed the two side by side (a config's ``paired``, per-round
    ratios, ``pairing.py``), the median over rounds; a config without them (results of an older
    job) falls back to the ratio of the best-of rows. ``paired=False``: the best-of ratio only.
    """
    ratios: dict[str, float] = {}
    for name, model in SHIPPED_NAMES.items():
        config = configs.get(name, {})
        rows = config.get("rows", {})
        ours, openvino = rows.get(default), rows.get("openvino")
        if not (isinstance(ours, dict) and isinstance(openvino, dict)):
            continue
        rounds = config.get("paired") if config.get("paired_with", default) == default else None
        for key, seconds in ours.items():
            if paired and rounds:
                if rounds.get(key):
                    ratios[f"{model}:{key}"] = pairing.median_ratio(rounds[key])
            elif key in openvino and seconds > 0:
                ratios[f"{model}:{key}"] = openvino[key] / seconds
    return ratios


def ratio_keys(configs: dict, default: str, liver_depth: int) -> list[str]:
    """The last line's OpenVINO keys: ``shipped_vs_openvino_idle/_loaded``, the WORST (lowest)
    ratio over the shipped models and depths under that condition; ``shipped_vs_openvino_worst``,
    where the lowest of all was (``nodule:L1:idle``); and ``liver_vs_openvino_idle/_loaded``,
    the liver model at its recommended depth (what the two first keys meant before)."""
    ratios = openvino_ratios(configs, default)
    keys: list[str] = []
    for condition in ("idle", "loaded"):
        found = {k: v for k, v in ratios.items() if k.endswith(":" + condition)}
        if found:
            keys.append(f"shipped_vs_openvino_{condition}={min(found.values()):.2f}")
    if ratios:
        keys.append(f"shipped_vs_openvino_worst={min(ratios, key=ratios.get)}")
    for condition in ("idle", "loaded"):
        liver = ratios.get(f"liver:L{liver_depth}:{condition}")
        if liver is not None:
            keys.append(f"liver_vs_openvino_{condition}={liver:.2f}")
    return keys


def _ratio_lines(name: str, config: dict, default: str, columns: list) -> list[str]:
    """A shipped model's OpenVINO / default cells: the paired median (what the keys take) and
    the ratio of the best-of rows, in the table's columns; none for other configs."""
    if name not in SHIPPED_NAMES:
        return []
    model = SHIPPED_NAMES[name]

    def cells(ratios: dict) -> str:
        return "".join(f"{_ratio(ratios.get(f'{model}:{c}')):>13}" for c in columns)

    best = openvino_ratios({name: config}, default, paired=False)
    if not best:
        return []
    if not (config.get("paired") and config.get("paired_with", default) == default):
        return [f"  {'OpenVINO/' + default:<15}{cells(best)}"]  # an older job: best of only
    rounds = max(len(v) for v in config["paired"].values())
    medians = openvino_ratios({name: config}, default)
    return [
        f"  OpenVINO/{default}: median of {rounds} paired rounds (the keys), best of rows",
        f"  {'paired median':<15}{cells(medians)}",
        f"  {'best of':<15}{cells(best)}",
    ]


def report(results: dict, threads: int) -> tuple[list[str], list[str]]:
    """Lines for the report, and key=value pairs for the last line."""
    executors = results["executors"]
    before, after = executors.get("load", ("?", "?"))
    default = results.get("default", "ours")
    lines = [
        "",
        f"executors: seconds per tile, best of interleaved rounds, {threads} threads; 'loaded' "
        "= with 2 busy processes started by the bench; on the shipped models the default and "
        "OpenVINO timed side by side (back to back, ABBA, each after a settle tile of its own)",
        f"(machine load average before {before}; after {after}); the CPU default here: {default}",
    ]
    openmp = executors.get("openmp")
    if openmp:  # engine/runtime_env.py: decided at the job's start; spin_guard in the job
        others = openmp.get("others_cores_at_start")
        seen = "" if others is None else f", other programs used {others:.2f} cores at its start"
        lines.append(
            f"OpenMP wait policy of the job's process: {openmp.get('wait_policy')}{seen}; "
            f"switches to one thread while the cores were shared: "
            f"{openmp.get('one_thread_switches')}"
        )
    keys: list[str] = []
    for name, config in executors["configs"].items():
        title = TITLES.get(name, name + " {tile}").format(tile=config.get("tile", "?"))
        lines.append(f"{title}")
        rows = config["rows"]
        columns = sorted(
            {key for row in rows.values() if isinstance(row, dict) for key in row},
            key=lambda k: (k.split(":")[1] != "idle", k),
        )
        lines.append(f"  {'executor':<15}" + "".join(f"{c:>13}" for c in columns) + "  agreement")
        for executor in EXECUTORS:
            row = rows.get(executor)
            if row is None:
                continue
            if isinstance(row, str):
                lines.append(f"  {LABELS[executor]:<15}{row}")
                continue
            agree = [v for k, v in config["agree"].items() if k.startswith(executor + ":")]
            note = f"  {min(agree):.5f}" if agree and executor != "ours" else ""
            if executor == "monai" and name == "shipped":
                note = "  (random weights)"
            lines.append(
                f"  {LABELS[executor]:<15}"
                + "".join(f"{_seconds(row.get(c)):>13}" for c in columns)
                + note
            )
        lines += _ratio_lines(name, config, default, columns)
        picks = config.get("fastest_picks") or {}
        if picks:
            lines.append(
                "  fastest ran: "
                + ", ".join(f"{key} {'+'.join(names)}" for key, names in sorted(picks.items()))
            )
    depth = results.get("recommended_depth", 2)
    keys += ratio_keys(executors["configs"], default, depth)
    cold, warm = results.get("e2e", {}), results.get("e2e_warm", {})
    rounds = results.get("e2e_warm_rounds", "?")
    lines += e2e_bench.report({"cold": cold, "warm": warm, "warm_rounds": rounds})
    keys += e2e_bench.keys(cold, warm)
    return lines, keys
