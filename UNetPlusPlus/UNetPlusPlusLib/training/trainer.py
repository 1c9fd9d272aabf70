"""The training loop.

Following UNet++ (Zhou et al., IEEE TMI 2019, Sec. III-B) the network is trained with deep
supervision: the hybrid loss (pixel-wise cross-entropy + soft Dice) on each head X(0, 1..4),
averaged. AdamW with a poly (or cosine) learning-rate schedule, gradient clipping, autocast
where the plan chose it (CUDA; bfloat16 on CPUs where it measured faster and not worse). Before
the first step a new run times a few steps and fits its plan (``planner``). Every epoch
reseeds the random generators from (seed, epoch, rank) and ends with a checkpoint, so a resumed
run is bit-for-bit the run that was not interrupted.
Rank 0 validates every depth and the ensemble, logs, plots and writes the package (``package``).
The set-up before the first step (cases, network, optimizer) is ``trainer_setup``; the plan's
part (timing, fitting, ETA) is ``run_plan``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from ..engine.manifest import ModelManifest, save_model_package
from ..engine.network_shape import tile_problem
from ..errors import CancelledError, UNetPlusPlusError
from . import distributed
from .augment import AugmentConfig, training_batch
from .checkpoint import load_checkpoint, read_checkpoint_state, save_checkpoint
from .dataset_types import DatasetDescription
from .package import build_manifest, git_commit, plot_history, write_card
from .planner import Plan, format_duration
from .progress import epoch_event
from .resume_checks import check_resume, jsonable
from .run_plan import PlanningMixin
from .sampler import PatchSampler
from .schedule import LAST_VALIDATION_FACTOR
from .step_pace import BAR_FORMAT, StepPace
from .steps import NonFiniteLoss, learning_rate, training_step
from .trainer_setup import SetupMixin
from .validation import DEPTHS, evaluate_depths, timed_validation, validation_summary

LOG_FILE = "train.log"
HISTORY_FILE = "history.json"
FINAL_VALIDATION = "final_validation"  # marks the history entry model.json's figures come from
CURVE_FILE = "training_curve.png"
# The curve is redrawn after an epoch when this long has passed since it was last drawn, and
# after the last epoch of a run or session: a drawing costs 0.2-0.4 s of CPU (and importing
# matplotlib about 1 s once), a share of a few-second epoch but nothing of a real one.
CURVE_EVERY_S = 30.0
DIGESTS_FILE = "rank_digests.json"
SCHEDULES = ("poly", "cosine", "constant")


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
    train_fraction: float = 1.0  # share of the training patients used (learning curves)
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
    precision: str = "fp32"  # fp32 | bf16 (CPU autocast) | amp (CUDA autocast)


# ----------------------------------------------------------------------------- helpers
def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


def unmarked_history(entries: list) -> list[dict]:
    """A checkpoint's history for ``--resume``, without a final-validation mark (the resumed
    run marks its own last epoch); history written before the mark reads as it is."""
    drop = (FINAL_VALIDATION, "seconds_per_volume")
    return [{k: v for k, v in e.items() if k not in drop} for e in entries if isinstance(e, dict)]


# ----------------------------------------------------------------------------- trainer
class Trainer(SetupMixin, PlanningMixin):
    """One training run (a process of it, under torchrun)."""

    def __init__(
        self,
        dataset: DatasetDescription,
        config: TrainConfig,
        resume: bool = False,
        init_manifest: Optional[ModelManifest] = None,
        log: Optional[Callable[[str], None]] = None,
        plan: Optional[Plan] = None,
        started: Optional[float] = None,
        plan_only: bool = False,
        session_budget_s: Optional[float] = None,
        accept_changed_cases: bool = False,
        resume_state: Optional[dict] = None,
    ) -> None:
        """``plan``: a new plan (geometry only: timed and fitted before the first step) or the
        fitted plan of a resumed run; ``started``: time.monotonic() when the command began (the
        budget counts from there); ``plan_only``: stop after printing and writing the plan;
        ``accept_changed_cases``: resume although a case's content changed (a warning);
        ``resume_state``: the checkpoint's JSON part, when the caller has read it (``resume``;
        else it is read once, at the start of :meth:`run`)."""
        self.dataset = dataset
        self.config = config
        self.resume, self.accept_changed_cases = resume, accept_changed_cases
        self.resume_state = resume_state
        self.init_manifest = init_manifest
        self.out_dir = Path(config.out_dir)
        self._print = log or print
        self.on_epoch: Optional[Callable[[dict], None]] = None  # --progress-json (issue 12)
        self.should_stop: Optional[Callable[[], bool]] = None  # --cancel-file: CancelledError
        self.plan = plan
        self.started = time.monotonic() if started is None else started
        self.plan_only = plan_only
        self.session_budget_s = session_budget_s  # this run's limit (--resume --time-budget)
        self.elapsed_s = 0.0  # training wall time over all runs of this plan
        self.budget_used_before = 0.0  # wall time of the earlier runs of this plan
        self._step_pace = StepPace()  # each step's seconds: the pace without the warm-up
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
        problem = tile_problem(config.tile_size, config.norm)  # said before reading (cli)
        if problem is not None:
            raise UNetPlusPlusError(f"{problem[0].upper()}{problem[1:]}.")
        if config.schedule not in SCHEDULES:
            raise UNetPlusPlusError(f"Unknown schedule {config.schedule!r}; use {SCHEDULES}.")
        planned = self.plan is not None and not self.plan.estimate  # schedule still to fit
        schedule = (config.epochs, config.iterations_per_epoch)
        if config.batch_size < 1 or (not planned and min(schedule) < 1):
            raise UNetPlusPlusError("Epochs, iterations per epoch and batch size must be >= 1.")

    # ---- the loop ----------------------------------------------------------------------
    def run(self) -> Optional[ModelManifest]:
        """Train, validate, checkpoint, and write the model package (on rank 0)."""
        threads_before = torch.get_num_threads()
        git_commit()  # the code that trains, not HEAD when the package is written
        self._setup()
        try:
            return self._run()
        finally:
            distributed.shutdown(self.context)
            torch.set_num_threads(threads_before)

    def _run(self) -> Optional[ModelManifest]:
        config = self.config
        state: dict = {}
        if self.resume:
            if self.resume_state is None:  # read once: the tensor files are hashed
                self.resume_state = read_checkpoint_state(self.out_dir)
            state = self.resume_state
            check_resume(state, self.config, self.dataset)
            self._read_saved_paces(state)  # before the first ETA; older files converted
        self.log(f"training on {self.device} (world size {self.context.world_size})")
        self._load_cases()
        self._build_model()
        if self.plan is not None and not self.plan.estimate:
            self._fit_plan()
            if self.plan_only:
                return None
        elif self.plan is not None:
            self._select_validation_cases()
            if self.resume:  # the table and plan.json show this run, not the first one's ETA
                self._warn_short_resumed_session(state)  # a limit that cannot hold an epoch
                self._note_resume(state)
            for line in self.plan.describe():
                self.log(line)
        self.history: list[dict] = []
        self._curve_at, self._curve_epochs = self.started, -1  # when drawn, and with how many
        start_epoch = 0
        if self.resume:
            state = load_checkpoint(self.out_dir, self.network, self.optimizer, self.scaler)
            start_epoch = int(state["epoch"])
            self.history = unmarked_history(state.get("history", []))
            self.elapsed_s = float(state.get("elapsed_s", 0.0))
            self.budget_used_before = float(state.get("budget_used_s", 0.0))
            self.log(
                f"resumed after epoch {start_epoch} from {self.out_dir / 'checkpoint'} "
                f"({format_duration(self.elapsed_s)} trained before); "
                + self._resume_eta(start_epoch)
            )
        self.log(
            f"precision: {config.precision}"
            + (" (bfloat16 autocast on the CPU)" if config.precision == "bf16" else "")
        )
        sampler = PatchSampler(self.train_cases, config.tile_size[::-1], config.foreground_fraction)
        augment = AugmentConfig(enabled=config.augment)
        last_validation: Optional[dict] = None
        validated_after = -1  # the epoch whose weights last_validation scored
        self._bar = None
        if self.context.is_main and config.progress_bar:
            from tqdm import tqdm

            per_epoch = config.iterations_per_epoch
            self._bar = tqdm(
                total=config.epochs * per_epoch, initial=start_epoch * per_epoch,
                desc="training", unit="it", dynamic_ncols=True, bar_format=BAR_FORMAT,
            )  # fmt: skip
        try:
            epoch = start_epoch
            while epoch < config.epochs:  # a budget re-fit may change config.epochs
                started = time.monotonic()
                loss = self._train_epoch(epoch, sampler, augment)
                # the pace of this epoch's steps, without the process's first (warm-up) step:
                # what the ETA, the re-fit and the session stop extrapolate (step_pace.py)
                self._iteration_s = self._step_pace.per_step() or (
                    (time.monotonic() - started) / config.iterations_per_epoch
                )
                epoch_s = self._iteration_s * config.iterations_per_epoch
                entry: dict = {"epoch": epoch + 1, "loss": round(loss, 6)}
                is_last = epoch + 1 == config.epochs
                if self.context.is_main and ((epoch + 1) % config.val_every == 0 or is_last):
                    # per-depth seconds only for the last one: the manifest records them
                    last_validation = self._validate(timed=is_last)
                    validated_after = epoch + 1
                    entry["validation"] = {k: v["mean_dice"] for k, v in last_validation.items()}
                self.elapsed_s += time.monotonic() - started
                self.history.append(entry)
                self._refit(epoch + 1, epoch_s)  # first: the ETA is that of the re-fitted plan
                eta = self._eta(epoch + 1)
                self.log(
                    f"epoch {epoch + 1}/{config.epochs}: {json.dumps(entry)}; "
                    f"ETA {format_duration(eta)}"
                )
                if self.on_epoch is not None and self.context.is_main:
                    self.on_epoch(epoch_event(entry, config.epochs, eta))
                if self.context.is_main:
                    self._save_epoch(epoch + 1)
                distributed.barrier(self.context)
                epoch += 1
                if self._session_over(epoch, epoch_s):
                    if self.context.is_main:
                        self._draw_curve()
                    return None
        finally:
            if self._bar is not None:
                self._bar.close()
        # a re-fit may have made an epoch without a timed validation the last
        return self._finish(last_validation if validated_after == config.epochs else None)

    def _train_epoch(self, epoch: int, sampler: PatchSampler, augment: AugmentConfig) -> float:
        config, context = self.config, self.context
        seed = _epoch_seed(config.seed, epoch, context.rank)
        rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        self.model.train()
        spacing = config.spacing
        losses = []
        parameters = list(self.network.parameters())
        self._step_pace.start_epoch()
        for step in range(config.iterations_per_epoch):
            if self.should_stop is not None and self.should_stop():
                raise CancelledError()
            step_started = time.monotonic()
            iteration = epoch * config.iterations_per_epoch + step
            for group in self.optimizer.param_groups:
                group["lr"] = learning_rate(config, iteration)
            images, labels = training_batch(sampler, rng, config.batch_size, augment, spacing)
            images = images.to(self.device, memory_format=torch.channels_last_3d)
            labels = labels.to(self.device, non_blocking=True)
            losses.append(self._step(parameters, images, labels))
            self._step_pace.add(time.monotonic() - step_started)
            if self._bar is not None:  # its ETA at the steps' pace, not tqdm's (step_pace.py)
                left = self._bar.total - self._bar.n - 1
                eta = self._step_pace.eta_text(left, self._pace("seconds_per_iteration"))
                shown = {"epoch": epoch + 1, "loss": f"{losses[-1]:.4f}", "eta": eta}
                self._bar.set_postfix(shown, refresh=False)
                self._bar.update(1)
        return distributed.mean_over_ranks(context, float(np.mean(losses)))

    def _step(self, parameters: list, images: torch.Tensor, labels: torch.Tensor) -> float:
        """One training step. A non-finite loss under bf16/fp16 autocast, with weights that are
        still finite, switches the rest of the run to float32 (logged, and recorded as the
        run's precision) and retries the batch; otherwise NonFiniteLoss is raised."""
        try:
            return training_step(
                self.model, parameters, self.optimizer, self.loss_fn, images, labels,
                self.amp_dtype, self.scaler,
            )  # fmt: skip
        except NonFiniteLoss:
            finite = all(bool(torch.isfinite(p).all()) for p in parameters)
            if self.amp_dtype is None or not finite:
                raise
        self.log(
            f"warning: the loss was not finite under {self.config.precision} autocast; "
            "continuing in float32 (the weights were still finite)"
        )
        self.config.precision = "fp32"
        if self.plan is not None:
            self.plan.precision = "fp32"
            self.plan.reasons["precision"] = "fp32: the loss was not finite under autocast"
        self.amp_dtype, self.scaler = None, None
        return training_step(
            self.model, parameters, self.optimizer, self.loss_fn, images, labels, None, None
        )

    def _validate(self, timed: bool = True) -> dict:
        """Dice of every depth on the validation cases; ``timed``: also each depth's seconds per
        volume (each depth run on its own), else all depths from one pass (same Dice)."""
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
            timed=timed,
        )
        seconds = time.perf_counter() - started
        # the pace is kept per one-pass validation (run_plan._pace): a timed one counts as more
        self._validation_s = seconds / (LAST_VALIDATION_FACTOR if timed else 1.0)
        self.log(validation_summary(results, len(self.val_cases), seconds))
        return results

    def _save_epoch(self, epoch: int) -> None:
        state = {
            "epoch": epoch,
            "history": self.history,
            "config": jsonable(self.config),
            "elapsed_s": round(self.elapsed_s, 2),
            "budget_used_s": round(self._budget_used(), 2),
            "pace": {  # the measured rates, for the ETA of a --resume (run_plan._pace)
                "seconds_per_iteration": round(self._pace("seconds_per_iteration"), 4),
                "seconds_per_validation": round(self._pace("seconds_per_validation"), 2),
                # also marks the pace above as one-pass (schedule.one_pass_pace)
                "seconds_per_last_validation": round(
                    LAST_VALIDATION_FACTOR * self._pace("seconds_per_validation"), 2
                ),
            },
            "labels": self.dataset.label_names,
            "channels": [c.name for c in self.dataset.channels],
            "cases": self.cases_record,  # the cases' training prints (--resume compares them)
        }
        save_checkpoint(self.out_dir, self.network, self.optimizer, self.scaler, state)
        (self.out_dir / HISTORY_FILE).write_text(
            json.dumps(self.history, indent=1), encoding="utf-8"
        )
        if epoch >= self.config.epochs or time.monotonic() - self._curve_at >= CURVE_EVERY_S:
            self._draw_curve()

    def _record_final_validation(self, validation: dict) -> None:
        """Mark the last epoch's history entry as the final validation (the figures model.json
        and CARD.md record): its Dice per depth and seconds per volume; history.json is
        rewritten and the curve redrawn where the entry had no Dice (a validation the finish
        step ran). The checkpoint's history stays unmarked: a ``--resume`` may train on."""
        if not self.history:
            return
        entry = self.history[-1]
        added = "validation" not in entry
        entry["validation"] = {k: v["mean_dice"] for k, v in validation.items()}
        entry["seconds_per_volume"] = {k: v["seconds_per_volume"] for k, v in validation.items()}
        entry[FINAL_VALIDATION] = True
        (self.out_dir / HISTORY_FILE).write_text(
            json.dumps(self.history, indent=1), encoding="utf-8"
        )
        if added:
            self._curve_epochs = -1
            self._draw_curve()

    def _draw_curve(self) -> None:
        """Draw ``training_curve.png`` from the history, unless it already shows every epoch."""
        if self._curve_epochs != len(self.history):
            plot_history(self.history, self.out_dir / CURVE_FILE)
            self._curve_at, self._curve_epochs = time.monotonic(), len(self.history)

    # ---- the package -------------------------------------------------------------------
    def _finish(self, validation: Optional[dict]) -> Optional[ModelManifest]:
        """Write the package (rank 0). ``validation``: the last epoch's, reused where it timed
        every depth; else (None, from one pass, or no seconds) a timed validation runs here, so
        model.json and CARD.md always carry each depth's seconds per volume."""
        digests = distributed.gather_strings(self.context, distributed.state_digest(self.network))
        if not self.context.is_main:
            return None
        (self.out_dir / DIGESTS_FILE).write_text(
            json.dumps({"world_size": self.context.world_size, "digests": digests}, indent=1),
            encoding="utf-8",
        )
        if validation is None or not timed_validation(validation):
            if validation is not None:  # the one the budget re-fit made the last
                self.log("the last validation scored every depth from one pass: timing each")
            validation = self._validate()
        self._record_final_validation(validation)
        manifest = build_manifest(self, validation)
        dtype = {"float16": torch.float16, "float32": torch.float32}[self.config.weights_dtype]
        saved = save_model_package(self.out_dir, self.network.state_dict(), manifest, dtype)
        write_card(self.out_dir, saved, self.plan)
        self.log(
            f"wrote {self.out_dir / 'model.json'} (recommended depth {saved.recommended_depth})"
        )
        return saved
