"""The training loop and the model package it writes.

Following UNet++ (Zhou et al., IEEE TMI 2019, Sec. III-B) the network is trained with deep
supervision: the hybrid loss (pixel-wise cross-entropy + soft Dice) on each head X(0, 1..4),
averaged. AdamW with a poly (or cosine) learning-rate schedule, gradient clipping, mixed
precision on CUDA only. Every epoch reseeds the random generators from (seed, epoch, rank) and
ends with a checkpoint, so a resumed run is bit-for-bit the run that was not interrupted.
Rank 0 validates every depth and the ensemble, logs, plots and writes the package.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..engine.manifest import (
    ChannelSpec,
    LabelSpec,
    ModelManifest,
    save_model_package,
    standard_terminology,
)
from ..engine.network import UNetPlusPlus3D
from ..errors import UNetPlusPlusError
from . import distributed
from .augment import AugmentConfig, training_batch
from .checkpoint import load_checkpoint, read_checkpoint_state, save_checkpoint
from .dataset import CaseFiles, DatasetDescription, find_cases
from .preprocess import PreprocessedCase, build_cache
from .sampler import PatchSampler
from .validation import DEPTHS, evaluate_depths, recommend_depth

LOG_FILE = "train.log"
HISTORY_FILE = "history.json"
CURVE_FILE = "training_curve.png"
DIGESTS_FILE = "rank_digests.json"
GRAD_CLIP = 12.0
SCHEDULES = ("poly", "cosine", "constant")
# Fields that must not change between a run and its resumption.
_RESUME_FIXED = (
    "spacing",
    "tile_size",
    "features",
    "norm",
    "batch_size",
    "iterations_per_epoch",
    "seed",
    "lr",
    "weight_decay",
    "schedule",
    "foreground_fraction",
    "augment",
    "world_size",
)


@dataclass
class TrainConfig:
    """Every setting of a run; stored in the checkpoint and the manifest."""

    out_dir: str
    spacing: tuple[float, float, float]
    tile_size: tuple[int, int, int]  # (x, y, z), each a multiple of 16
    features: tuple[int, ...] = (16, 32, 64, 128, 256, 16)
    norm: str = "instance"
    epochs: int = 50
    iterations_per_epoch: int = 100
    batch_size: int = 2
    lr: float = 3e-4
    weight_decay: float = 3e-5
    schedule: str = "poly"
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    foreground_fraction: float = 0.33
    augment: bool = True
    val_fraction: float = 0.2
    val_every: int = 1
    max_cases: Optional[int] = None
    max_val_cases: Optional[int] = None
    depth_tolerance: float = 0.01
    overlap: float = 0.25
    weights_dtype: str = "float32"
    threads: Optional[int] = None
    cache_dir: Optional[str] = None
    name: str = "unetpp-model"
    task: str = "custom"
    init: Optional[str] = None
    command: str = ""
    progress_bar: bool = True
    world_size: int = 1


# ----------------------------------------------------------------------------- helpers
def learning_rate(config: TrainConfig, iteration: int) -> float:
    """The scheduled learning rate at a global iteration (poly exponent 0.9, as nnU-Net)."""
    total = max(1, config.epochs * config.iterations_per_epoch)
    progress = min(iteration / total, 1.0)
    if config.schedule == "poly":
        return config.lr * (1.0 - progress) ** 0.9
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.lr


def split_cases(
    cases: Sequence[CaseFiles], fraction: float, seed: int, explicit: Sequence[str] = ()
) -> tuple[list[CaseFiles], list[CaseFiles]]:
    """Training and validation cases, split by patient so no patient is on both sides.

    ``explicit`` (case or patient ids, or regexes matching them) overrides ``fraction``.
    """
    if explicit:
        patterns = [re.compile(p) for p in explicit]

        def chosen(case: CaseFiles) -> bool:
            return any(p.fullmatch(case.case_id) or p.fullmatch(case.patient_id) for p in patterns)

        validation = [c for c in cases if chosen(c)]
        if not validation:
            raise UNetPlusPlusError(
                f"The validation cases {', '.join(explicit)} match no case or patient id."
            )
        patients = {c.patient_id for c in validation}
        validation = [c for c in cases if c.patient_id in patients]
    else:
        patients = sorted({c.patient_id for c in cases})
        count = 0 if len(patients) < 2 else max(1, round(fraction * len(patients)))
        count = min(count, len(patients) - 1)
        order = np.random.default_rng(seed).permutation(len(patients))
        held_out = {patients[i] for i in order[:count]}
        validation = [c for c in cases if c.patient_id in held_out]
    training = [c for c in cases if c not in validation]
    if not training:
        raise UNetPlusPlusError(
            "Every case ended up in the validation set; leave some patients for training."
        )
    return training, validation


class DeepSupervision(nn.Module):
    """``forward`` returns the logits of heads X(0, 1..4), so DDP synchronises them."""

    def __init__(self, network: UNetPlusPlus3D) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.network.forward_heads(x, 4)


def _channels_last(network: nn.Module) -> None:
    """Channels-last 3D weights: about 20% faster training steps with oneDNN on the CPU (and
    what cuDNN prefers). 1x1x1 kernels keep their layout, whose gradients come back contiguous
    (DDP would warn about mismatched gradient strides)."""
    with torch.no_grad():
        for parameter in network.parameters():
            if parameter.dim() == 5 and math.prod(parameter.shape[2:]) > 1:
                parameter.data = parameter.data.contiguous(memory_format=torch.channels_last_3d)


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def _safe_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")
    return name or "unetpp-model"


def _jsonable(config: TrainConfig) -> dict:
    data = asdict(config)
    for key in ("spacing", "tile_size", "features"):
        data[key] = list(data[key])
    return data


# ----------------------------------------------------------------------------- trainer
class Trainer:
    """One training run (a process of it, under torchrun)."""

    def __init__(
        self,
        dataset: DatasetDescription,
        config: TrainConfig,
        resume: bool = False,
        init_manifest: Optional[ModelManifest] = None,
        log: Optional[Callable[[str], None]] = None,
    ) -> None:
        self.dataset = dataset
        self.config = config
        self.resume = resume
        self.init_manifest = init_manifest
        self.out_dir = Path(config.out_dir)
        self._print = log or print
        self._check_config()

    # ---- logging -----------------------------------------------------------------------
    def log(self, message: str) -> None:
        if not self.context.is_main:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.out_dir / LOG_FILE, "a", encoding="utf-8") as handle:
            handle.write(f"{stamp} {message}\n")
        self._print(message)

    def _check_config(self) -> None:
        config = self.config
        if any(int(t) % 16 for t in config.tile_size):
            raise UNetPlusPlusError(
                f"Tile size {list(config.tile_size)} must be a multiple of 16 on every axis "
                "(four 2x poolings)."
            )
        if config.norm == "instance" and math.prod(int(t) // 16 for t in config.tile_size) < 2:
            raise UNetPlusPlusError(
                f"Tile size {list(config.tile_size)} leaves one voxel at the deepest level, "
                "where instance normalisation cannot train; use 32 on at least one axis."
            )
        if config.schedule not in SCHEDULES:
            raise UNetPlusPlusError(f"Unknown schedule {config.schedule!r}; use {SCHEDULES}.")
        if config.epochs < 1 or config.iterations_per_epoch < 1 or config.batch_size < 1:
            raise UNetPlusPlusError("Epochs, iterations per epoch and batch size must be >= 1.")

    # ---- setup -------------------------------------------------------------------------
    def _setup(self) -> None:
        self.context = distributed.init_distributed(self.config.device)
        self.config.world_size = self.context.world_size
        self.device = self.context.device
        threads = self.config.threads
        if threads is None and self.context.enabled and self.device.type == "cpu":
            threads = max(1, (torch.get_num_threads() or 1) // self.context.world_size)
        if threads:
            torch.set_num_threads(int(threads))
        if self.context.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        distributed.barrier(self.context)
        self.amp_dtype = None
        if self.config.amp and self.device.type == "cuda":
            bf16 = torch.cuda.is_bf16_supported()
            self.amp_dtype = torch.bfloat16 if bf16 else torch.float16

    def _load_cases(self) -> None:
        config = self.config
        cases = find_cases(self.dataset)
        if config.max_cases:
            cases = cases[: config.max_cases]
        self.train_files, self.val_files = split_cases(
            cases, config.val_fraction, config.seed, self.dataset.validation_cases
        )
        self.log(
            f"dataset '{self.dataset.name}': {len(cases)} cases, {len(self.train_files)} for "
            f"training and {len(self.val_files)} for validation (split by patient)"
        )
        for note in self.dataset.notes:  # input checks (training/dataset_check.py)
            self.log(f"warning: {note}")
        cache_dir = Path(config.cache_dir) if config.cache_dir else self.out_dir / "cache"
        all_files = self.train_files + self.val_files
        if self.context.is_main:
            build_cache(self.dataset, all_files, config.spacing, cache_dir, log=self.log)
        distributed.barrier(self.context)
        loaded = build_cache(
            self.dataset, all_files, config.spacing, cache_dir, log=self.log, write=False
        )
        self.train_cases: list[PreprocessedCase] = loaded[: len(self.train_files)]
        self.val_cases: list[PreprocessedCase] = loaded[len(self.train_files) :]
        self.val_on_training = not self.val_cases
        if self.val_on_training:
            self.log("warning: one patient only; validating on the training case(s)")
            self.val_cases = list(self.train_cases)
        if config.max_val_cases:
            self.val_cases = self.val_cases[: config.max_val_cases]

    def _build_model(self) -> None:
        config = self.config
        torch.manual_seed(config.seed)
        self.network = UNetPlusPlus3D(
            in_channels=len(self.dataset.channels),
            out_channels=len(self.dataset.labels) + 1,
            features=config.features,
            norm=config.norm,
        )
        if self.init_manifest is not None and not self.resume:
            self._load_initial_weights()
        self.network.to(self.device)
        _channels_last(self.network)
        self.model = distributed.wrap_model(DeepSupervision(self.network), self.context)
        self.optimizer = torch.optim.AdamW(
            self.network.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        use_scaler = self.amp_dtype == torch.float16
        self.scaler = None
        if use_scaler:  # torch.amp.GradScaler appeared in torch 2.3
            amp = getattr(torch, "amp", None)
            scaler_type = getattr(amp, "GradScaler", None)
            self.scaler = scaler_type("cuda") if scaler_type else torch.cuda.amp.GradScaler()
        from ..engine.loss import HybridLoss

        self.loss_fn = HybridLoss()

    def _load_initial_weights(self) -> None:
        from ..engine.manifest import load_weights

        manifest = self.init_manifest
        state = load_weights(manifest)
        own = self.network.state_dict()
        same_labels = [label.name.lower() for label in manifest.labels] == [
            label.name.lower() for label in self.dataset.labels
        ]
        usable = {
            k: v
            for k, v in state.items()
            if k in own
            and own[k].shape == v.shape
            and (same_labels or not k.startswith("final_conv"))
        }
        missing = sorted(set(own) - set(usable))
        self.network.load_state_dict(usable, strict=False)
        heads = "kept" if same_labels else "re-initialised (the labels differ)"
        self.log(
            f"fine-tuning from {manifest.path}: loaded {len(usable)} of {len(own)} tensors; "
            f"output heads {heads}" + (f"; {len(missing)} tensors new" if missing else "")
        )

    # ---- the loop ----------------------------------------------------------------------
    def run(self) -> Optional[ModelManifest]:
        """Train, validate, checkpoint, and write the model package (on rank 0)."""
        threads_before = torch.get_num_threads()
        self._setup()
        try:
            return self._run()
        finally:
            distributed.shutdown(self.context)
            torch.set_num_threads(threads_before)

    def _run(self) -> Optional[ModelManifest]:
        config = self.config
        if self.resume:
            self._check_resume(read_checkpoint_state(self.out_dir))
        self.log(f"training on {self.device} (world size {self.context.world_size})")
        self._load_cases()
        self._build_model()
        self.history: list[dict] = []
        start_epoch = 0
        if self.resume:
            state = load_checkpoint(self.out_dir, self.network, self.optimizer, self.scaler)
            start_epoch = int(state["epoch"])
            self.history = list(state.get("history", []))
            self.log(f"resumed after epoch {start_epoch} from {self.out_dir / 'checkpoint'}")
        sampler = PatchSampler(self.train_cases, config.tile_size[::-1], config.foreground_fraction)
        augment = AugmentConfig(enabled=config.augment)
        last_validation: Optional[dict] = None
        for epoch in range(start_epoch, config.epochs):
            loss = self._train_epoch(epoch, sampler, augment)
            entry: dict = {"epoch": epoch + 1, "loss": round(loss, 6)}
            is_last = epoch + 1 == config.epochs
            if self.context.is_main and ((epoch + 1) % config.val_every == 0 or is_last):
                last_validation = self._validate()
                entry["validation"] = {k: v["mean_dice"] for k, v in last_validation.items()}
            self.history.append(entry)
            self.log(f"epoch {epoch + 1}/{config.epochs}: {json.dumps(entry)}")
            if self.context.is_main:
                self._save_epoch(epoch + 1)
            distributed.barrier(self.context)
        return self._finish(last_validation)

    def _train_epoch(self, epoch: int, sampler: PatchSampler, augment: AugmentConfig) -> float:
        config, context = self.config, self.context
        seed = _epoch_seed(config.seed, epoch, context.rank)
        rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        self.model.train()
        spacing = config.spacing
        bar = None
        if context.is_main and config.progress_bar:
            from tqdm import tqdm

            bar = tqdm(total=config.iterations_per_epoch, desc=f"epoch {epoch + 1}", leave=False)
        losses = []
        for step in range(config.iterations_per_epoch):
            iteration = epoch * config.iterations_per_epoch + step
            for group in self.optimizer.param_groups:
                group["lr"] = learning_rate(config, iteration)
            images, labels = training_batch(sampler, rng, config.batch_size, augment, spacing)
            images = images.to(self.device, memory_format=torch.channels_last_3d)
            labels = labels.to(self.device, non_blocking=True)
            losses.append(self._step(images, labels))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if bar is not None:
            bar.close()
        return distributed.mean_over_ranks(context, float(np.mean(losses)))

    def _step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        enabled = self.amp_dtype is not None
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=enabled):
            heads = self.model(images)
        loss = self.loss_fn([h.float() for h in heads], labels)
        if not torch.isfinite(loss):
            raise UNetPlusPlusError(
                "The training loss became NaN or infinite; lower --lr or check the data."
            )
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.network.parameters(), GRAD_CLIP)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            nn.utils.clip_grad_norm_(self.network.parameters(), GRAD_CLIP)
            self.optimizer.step()
        return float(loss.detach())

    def _validate(self) -> dict:
        config = self.config
        started = time.perf_counter()
        results = evaluate_depths(
            self.network,
            self.val_cases,
            self.dataset.label_names,
            config.tile_size[::-1],
            config.overlap,
            self.device,
            DEPTHS,
            amp=False,
        )
        self.log(
            f"validation on {len(self.val_cases)} case(s) in "
            f"{time.perf_counter() - started:.1f} s: "
            + ", ".join(f"L{k}={v['mean_dice']}" for k, v in results.items())
        )
        return results

    def _save_epoch(self, epoch: int) -> None:
        state = {
            "epoch": epoch,
            "history": self.history,
            "config": _jsonable(self.config),
            "labels": self.dataset.label_names,
            "channels": [c.name for c in self.dataset.channels],
        }
        save_checkpoint(self.out_dir, self.network, self.optimizer, self.scaler, state)
        (self.out_dir / HISTORY_FILE).write_text(
            json.dumps(self.history, indent=1), encoding="utf-8"
        )
        plot_history(self.history, self.out_dir / CURVE_FILE)

    def _check_resume(self, state: dict) -> None:
        saved = state.get("config", {})
        current = _jsonable(self.config)
        for key in _RESUME_FIXED:
            if key in saved and saved[key] != current[key]:
                raise UNetPlusPlusError(
                    f"--resume: '{key}' was {saved[key]} in the checkpoint but is now "
                    f"{current[key]}; resume with the same settings (only --epochs may grow)."
                )
        for key, now in (
            ("labels", self.dataset.label_names),
            ("channels", [c.name for c in self.dataset.channels]),
        ):
            if key in state and state[key] != now:
                raise UNetPlusPlusError(
                    f"--resume: the checkpoint was trained with the {key} {state[key]}, but the "
                    f"dataset now gives {now}; pass the same --{key} as before."
                )
        if int(state.get("epoch", 0)) >= self.config.epochs:
            raise UNetPlusPlusError(
                f"--resume: the checkpoint already holds {state.get('epoch')} epochs; ask for "
                "more with --epochs."
            )

    # ---- the package -------------------------------------------------------------------
    def _finish(self, validation: Optional[dict]) -> Optional[ModelManifest]:
        digests = distributed.gather_strings(self.context, distributed.state_digest(self.network))
        if not self.context.is_main:
            return None
        (self.out_dir / DIGESTS_FILE).write_text(
            json.dumps({"world_size": self.context.world_size, "digests": digests}, indent=1),
            encoding="utf-8",
        )
        if validation is None:
            validation = self._validate()
        manifest = self._manifest(validation)
        dtype = {"float16": torch.float16, "float32": torch.float32}[self.config.weights_dtype]
        saved = save_model_package(self.out_dir, self.network.state_dict(), manifest, dtype)
        self.log(
            f"wrote {self.out_dir / 'model.json'} (recommended depth {saved.recommended_depth})"
        )
        return saved

    def _manifest(self, per_depth: dict) -> ModelManifest:
        config, dataset = self.config, self.dataset
        recommended = recommend_depth(per_depth, config.depth_tolerance)
        where = "the training cases" if self.val_on_training else "held-out patients"
        data = (
            f"{len(self.val_cases)} validation case(s) of '{dataset.name}' ({where}), scored "
            f"on the model grid ({list(config.spacing)} mm)"
        )
        labels = [
            LabelSpec(
                value=i,
                name=label.name,
                color=tuple(label.color),
                terminology=label.terminology or standard_terminology(label.name),
            )
            for i, label in enumerate(dataset.labels, start=1)
        ]
        channels = [
            ChannelSpec(c.name, c.modality, dict(c.normalization)) for c in dataset.channels
        ]
        training = {
            "command": config.command,
            "commit": _git_commit(),
            "epochs": config.epochs,
            "iterations_per_epoch": config.iterations_per_epoch,
            "batch_size": config.batch_size,
            "world_size": self.context.world_size,
            "lr": config.lr,
            "schedule": config.schedule,
            "seed": config.seed,
            "dataset": dataset.name,
            "training_cases": len(self.train_cases),
            "init": str(config.init) if config.init else None,
            "final_loss": self.history[-1]["loss"] if self.history else None,
        }
        return ModelManifest(
            name=_safe_name(config.name),
            task=_safe_name(config.task),
            sha256="0" * 64,
            network=self.network.config(),
            channels=channels,
            labels=labels,
            spacing=tuple(float(s) for s in config.spacing),
            tile_size=tuple(int(t) for t in config.tile_size),
            overlap=config.overlap,
            depths=(1, 2, 3, 4),
            recommended_depth=recommended,
            description=(
                f"UNet++ trained with 'unetpp train' on {dataset.name}: "
                f"{len(self.train_cases)} training case(s), {config.epochs} epoch(s). "
                + (dataset.description or "")
            ).strip(),
            prompt=dataset.prompt,
            postprocess=dict(dataset.postprocess),
            validation={
                "data": data,
                "label_source": dataset.label_sources() or "unknown",
                "cases": [c.case_id for c in self.val_cases],
                "depth_tolerance": config.depth_tolerance,
                "device": str(self.device),
                "per_depth": per_depth,
            },
            training=training,
        )


# ----------------------------------------------------------------------------- plot
def plot_history(history: Sequence[dict], path: Path) -> None:
    """Training loss and validation mean Dice per depth against the epoch, as a PNG."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    figure = Figure(figsize=(10, 4), dpi=100)
    loss_axes, dice_axes = figure.subplots(1, 2)
    epochs = [h["epoch"] for h in history]
    loss_axes.plot(epochs, [h["loss"] for h in history], marker="o", color="tab:red")
    loss_axes.set_xlabel("epoch")
    loss_axes.set_ylabel("training loss (CE + Dice, mean over heads)")
    loss_axes.grid(alpha=0.3)
    for depth in DEPTHS:
        points = [
            (h["epoch"], h["validation"][str(depth)])
            for h in history
            if h.get("validation", {}).get(str(depth)) is not None
        ]
        if points:
            label = "ensemble" if depth == "ensemble" else f"L{depth}"
            dice_axes.plot(*zip(*points), marker=".", label=label)
    dice_axes.set_xlabel("epoch")
    dice_axes.set_ylabel("validation mean Dice")
    dice_axes.set_ylim(0, 1)
    dice_axes.grid(alpha=0.3)
    if dice_axes.lines:
        dice_axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
