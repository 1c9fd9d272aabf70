"""The Python steps of scripts/gpu_check.sh: a GPU tile benchmark and the out-of-memory fallback.

    python scripts/gpu_check.py bench [--device cuda] [--tiny]
    python scripts/gpu_check.py oom [--device cuda] [--tiny]

Each prints one JSON line. ``bench``: seconds per tile of our network (CUDA autocast, as the
Predictor runs it) at L1..L4 and of MONAI's BasicUNetPlusPlus with the same weights, plus
OpenVINO on its GPU plugin and TensorRT (torch_tensorrt) where installed, and the argmax
agreement of ours with MONAI. ``oom``: a sliding window with a large tile batch under an
artificial memory cap (``torch.cuda.set_per_process_memory_fraction``) must fall back (smaller
batch, then the CPU) and give the labels of an uncapped run. ``--tiny`` (a small network and
tile) and ``--device cpu`` let ``gpu_check.sh --dry-run`` check the plumbing on any machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "UNetPlusPlus"), str(REPO / "bench")]

from benchlib import workload  # noqa: E402
from UNetPlusPlusLib.engine.devices import autocast_context, resolve_device  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best_seconds(run, device: torch.device, rounds: int) -> float:
    run()
    _sync(device)
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        _sync(device)
        best = min(best, time.perf_counter() - started)
    return best


def bench(device: torch.device, tiny: bool) -> dict:
    from UNetPlusPlusLib.engine.monai_weights import load_monai_weights
    from UNetPlusPlusLib.engine.network import UNetPlusPlus3D

    features = (4, 8, 16, 32, 64, 4) if tiny else workload.FEATURES
    tile = 32 if tiny else workload.TILE
    rounds = 1 if tiny else 5
    monai = workload.monai_network(features).to(device)
    ours = UNetPlusPlus3D(workload.IN_CHANNELS, workload.OUT_CHANNELS, features)
    load_monai_weights(ours, {k: v.cpu() for k, v in monai.state_dict().items()})
    ours = ours.eval().to(device)
    x = torch.from_numpy(workload.synthetic_volume((tile,) * 3))[None].to(device)
    out: dict = {"device": str(device), "tile": tile, "features": list(features)}
    with torch.inference_mode():
        for depth in (1, 2, 3, 4):

            def run_ours(depth=depth):
                with autocast_context(device):
                    return ours(x, depth=depth)

            out[f"ours_L{depth}"] = _best_seconds(run_ours, device, rounds)
        out["monai_L4"] = _best_seconds(lambda: monai(x)[0], device, rounds)
        with autocast_context(device):
            mine = ours(x, depth=4).float().argmax(dim=1)
        out["agree_vs_monai"] = float((mine == monai(x)[0].argmax(dim=1)).float().mean())
    out["openvino_gpu_L4"] = _openvino_gpu(ours, x.cpu(), rounds)
    out["tensorrt_L4"] = _tensorrt(ours, x, device, rounds)
    out["speedup_vs_monai_L4"] = out["monai_L4"] / out["ours_L4"]
    return out


def _openvino_gpu(model, x: torch.Tensor, rounds: int):
    """Seconds per tile on OpenVINO's GPU plugin, or why not."""
    try:
        import openvino as ov
    except ImportError:
        return "openvino not installed"
    if not any(name.startswith("GPU") for name in ov.Core().available_devices):
        return "no OpenVINO GPU device"
    import tempfile

    from UNetPlusPlusLib.engine.onnx_export import export_depth

    with tempfile.TemporaryDirectory() as tmp:
        graph = export_depth(model.cpu(), 4, Path(tmp) / "L4.onnx")
        request = ov.Core().compile_model(str(graph), "GPU").create_infer_request()
        array = x.numpy()
        return _best_seconds(lambda: request.infer({0: array}), torch.device("cpu"), rounds)


def _tensorrt(model, x: torch.Tensor, device: torch.device, rounds: int):
    """Seconds per tile through torch_tensorrt (fp16), or why not."""
    if device.type != "cuda":
        return "not a CUDA device"
    try:
        import torch_tensorrt
    except ImportError:
        return "torch_tensorrt not installed"
    from UNetPlusPlusLib.engine.network import plain_modules

    class AtL4(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, tile):
            with plain_modules():
                return self.inner(tile, depth=4)

    compiled = torch_tensorrt.compile(
        AtL4(model).eval(), inputs=[x], enabled_precisions={torch.float16}
    )
    with torch.inference_mode():
        return _best_seconds(lambda: compiled(x), device, rounds)


def oom(device: torch.device, tiny: bool) -> dict:
    """A capped sliding window must fall back and still give the uncapped labels."""
    from UNetPlusPlusLib.engine.predictor import Predictor
    from UNetPlusPlusLib.engine.volume import Volume

    manifest = REPO / "Testing" / "fixtures" / "sphere_model" / "model.json"
    size = 48 if tiny else 192
    array = workload.synthetic_volume((size,) * 3) * 400.0 - 100.0  # CT-like HU
    volume = Volume(array, (2.0, 2.0, 2.0), (0.0, 0.0, 0.0), np.eye(3), ("CT",))
    reference = Predictor.from_manifest_path(manifest, device="cpu")
    expected = reference.segment(volume, depth=4).labels.array
    predictor = Predictor.from_manifest_path(manifest, device=str(device))
    capped = device.type == "cuda"
    if capped:
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(64e6 / total, device)  # 64 MB
    try:
        result = predictor.segment(volume, depth=4, tile_batch=4 if tiny else 64)
    finally:
        if capped:
            torch.cuda.set_per_process_memory_fraction(1.0, device)
    agree = float(np.mean(result.labels.array == expected))
    fallbacks = result.info.get("fallbacks", [])
    return {
        "device": str(device),
        "capped": capped,
        "fallbacks": fallbacks,
        "final_device": result.info.get("device"),
        "tile_batch": result.info.get("tile_batch"),
        "agree_vs_cpu": agree,
        "ok": agree >= 0.999 and (bool(fallbacks) or not capped),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gpu_check.py")
    parser.add_argument("step", choices=("bench", "oom"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="small network and tile")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    result = bench(device, args.tiny) if args.step == "bench" else oom(device, args.tiny)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
