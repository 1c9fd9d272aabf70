"""One measurement in a fresh process: ``python -m benchlib.worker '<json job>'``.

Prints one JSON line with the results. Jobs:

- ``volume``: a whole-volume sliding window (MONAI or ours at one depth), its seconds, its peak
  resident memory (the process's high-water mark) and optionally its argmax labels.
- ``tile``: the fp32 matmul peak and one full-network forward on a 96^3 tile, interleaved so
  that both see the same machine load.
- ``model``: an installed default model on a typical volume at its recommended depth.
- ``executors``: seconds per tile of every executor, idle and loaded (``executor_worker.py``).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

from UNetPlusPlusLib.engine import runtime_env

runtime_env.apply()  # as the CLI does: OpenMP's wait policy chosen from the load, before torch

import numpy as np  # noqa: E402
import torch  # noqa: E402

from . import workload  # noqa: E402


def peak_rss_mb() -> float:
    """This process's resident-memory high-water mark (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def our_network(weights: Path):
    from UNetPlusPlusLib.engine.monai_weights import load_monai_weights
    from UNetPlusPlusLib.engine.network import UNetPlusPlus3D

    model = UNetPlusPlus3D(workload.IN_CHANNELS, workload.OUT_CHANNELS, workload.FEATURES)
    load_monai_weights(model, workload.load_weights(weights))
    return model.eval()


def monai_network(weights: Path):
    net = workload.monai_network()
    net.load_state_dict(workload.load_weights(weights), strict=True)
    return net


def run_monai(net, image: torch.Tensor) -> torch.Tensor:
    """MONAI's sliding window (Gaussian blending) over softmax probabilities, (K, z, y, x)."""
    from monai.inferers import sliding_window_inference

    def predict(tiles: torch.Tensor) -> torch.Tensor:
        return torch.softmax(net(tiles)[0], dim=1)

    with torch.inference_mode():
        out = sliding_window_inference(
            image[None],
            roi_size=(workload.TILE,) * 3,
            sw_batch_size=1,
            predictor=predict,
            overlap=workload.OVERLAP,
            mode="gaussian",
        )
    return out[0]


def run_ours(model, image: torch.Tensor, depth) -> torch.Tensor:
    """Our sliding window (Gaussian blending of probabilities), (K, z, y, x)."""
    from UNetPlusPlusLib.engine.tiling import sliding_window_inference

    def predict(tiles: torch.Tensor) -> torch.Tensor:
        return torch.softmax(model(tiles, depth=depth), dim=1)

    with torch.inference_mode(), model.reuse_buffers():
        return sliding_window_inference(
            image, (workload.TILE,) * 3, predict, workload.OUT_CHANNELS, overlap=workload.OVERLAP
        )


def argmax_classes(probabilities: torch.Tensor) -> torch.Tensor:
    """uint8 argmax over the class axis of (K, z, y, x) with a running maximum (ties keep the
    lower class, as ``argmax`` does). The same final step for both engines; ``argmax(dim=0)``
    itself spends ~0.3 s on a 160^3 volume reducing over the outermost axis."""
    best = probabilities[0].clone()
    labels = torch.zeros(best.shape, dtype=torch.uint8)
    for k in range(1, probabilities.shape[0]):
        better = probabilities[k] > best
        labels[better] = k
        torch.maximum(best, probabilities[k], out=best)
    return labels


def volume_job(job: dict) -> dict:
    image = torch.from_numpy(np.load(job["volume"]))
    weights = Path(job["weights"])
    if job["engine"] == "monai":
        net = monai_network(weights)

        def once():
            return run_monai(net, image)
    else:
        model = our_network(weights)
        depth = job["depth"]

        def once():
            return run_ours(model, image, depth)

    baseline = peak_rss_mb()
    seconds = []
    for _ in range(int(job.get("repeats", 1))):
        started = time.perf_counter()
        probabilities = once()
        labels = argmax_classes(probabilities)
        seconds.append(time.perf_counter() - started)
        del probabilities
    if job.get("labels_out"):
        np.save(job["labels_out"], labels.numpy())
    return {
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "baseline_rss_mb": baseline,
        "tiles": workload.tile_count(tuple(image.shape[1:])),
    }


def matmul_seconds(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, calls: int = 4) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        torch.mm(a, b, out=out)
    return (time.perf_counter() - started) / calls


def tile_job(job: dict) -> dict:
    """Matmul peak and single-tile forwards at every depth, interleaved round by round so
    that all see the same machine load; the best time of each is kept."""
    from UNetPlusPlusLib.engine.network import count_flops

    size = int(job.get("matmul_size", 4096))
    a, b = torch.randn(size, size), torch.randn(size, size)
    out = torch.empty(size, size)
    model = our_network(Path(job["weights"]))
    net = monai_network(Path(job["weights"])) if job.get("monai") else None
    tile = workload.TILE
    x = torch.from_numpy(np.load(job["volume"]))[None, :, :tile, :tile, :tile].contiguous()
    depths = (4, 3, 2, 1, "ensemble")
    nominal = {str(d): count_flops(model, tuple(x.shape), d) for d in depths}
    executed = {}
    best = {key: float("inf") for key in ("matmul", "monai", *map(str, depths))}
    with torch.inference_mode():
        torch.mm(a, b, out=out)
        for depth in depths:  # warm-up, and the FLOPs our kernels really execute
            with model.reuse_buffers() as workspace:
                model(x, depth)
            executed[str(depth)] = workspace.flops
        with model.reuse_buffers():
            for _ in range(int(job.get("rounds", 3))):
                best["matmul"] = min(best["matmul"], matmul_seconds(a, b, out))
                for depth in depths:
                    started = time.perf_counter()
                    model(x, depth)
                    best[str(depth)] = min(best[str(depth)], time.perf_counter() - started)
        if net is not None:
            net(x)
            for _ in range(int(job.get("monai_rounds", 1))):
                started = time.perf_counter()
                net(x)
                best["monai"] = min(best["monai"], time.perf_counter() - started)
                best["matmul"] = min(best["matmul"], matmul_seconds(a, b, out))
    return {
        "bf16": bf16_probe(model, x) if job.get("bf16") else None,
        "matmul_gflops": 2 * size**3 / best["matmul"] / 1e9,
        "nominal_flops": nominal,
        "executed_flops": executed,
        "seconds": {str(d): best[str(d)] for d in depths},
        "monai_seconds": best["monai"] if net is not None else None,
    }


def bf16_probe(model, x: torch.Tensor) -> dict:
    """CPU bfloat16 autocast (module path) against our float32 path: seconds and argmax match.

    Measured for the record only; the engine never turns it on by itself (issue 6)."""
    from UNetPlusPlusLib.engine.devices import cpu_autocast_supported

    if not cpu_autocast_supported():
        return {"skipped": "no native bfloat16 on this CPU (it would be emulated, ~300x slower)"}
    with torch.inference_mode():
        reference = model(x, 4).argmax(dim=1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(x, 4)
            started = time.perf_counter()
            logits = model(x, 4)
            seconds = time.perf_counter() - started
    return {"seconds": seconds, "agree": float((logits.argmax(dim=1) == reference).float().mean())}


def model_job(job: dict) -> dict:
    """An installed model at its recommended depth on a typical volume (seconds, labels found)."""
    from UNetPlusPlusLib.engine.image_read import read_volume
    from UNetPlusPlusLib.engine.predictor import Predictor

    predictor = Predictor.from_manifest_path(job["manifest"], device="cpu", threads=job["threads"])
    volume = read_volume(job["images"])
    point = job.get("point")
    started = time.perf_counter()
    result = predictor.segment(volume, depth="auto", point=point)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "depth": result.info.get("depth"),
        "size_xyz": list(volume.array.shape[1:][::-1]),
        "tiles": result.info.get("tiles"),
        "peak_rss_mb": peak_rss_mb(),
    }


def executors_job(job: dict) -> dict:
    from .executor_worker import executors_job as run

    return run(job)


JOBS = {"volume": volume_job, "tile": tile_job, "model": model_job, "executors": executors_job}


def main(argv: list[str]) -> int:
    job = json.loads(argv[0])
    torch.set_num_threads(int(job["threads"]))
    result = JOBS[job["kind"]](job)
    from UNetPlusPlusLib.engine import spin_guard

    result["openmp"] = {
        **spin_guard.report(),
        "others_cores_at_start": runtime_env.others_cores_at_start(),
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
