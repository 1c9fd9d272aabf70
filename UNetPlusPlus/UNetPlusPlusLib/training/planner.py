"""The training plan: spacing, tile, width, batch and schedule from the data, device and budget.

In the spirit of nnU-Net's experiment planning (Isensee et al., Nature Methods 2021), but for a
CPU as well as a GPU and for a time budget a person chooses:

1. ``plan_geometry`` (no measurement): working spacing, tile, features, batch from the dataset
   fingerprint and the device. The tile covers the typical (90th percentile) foreground extent
   plus 25 % context per side (at least 4 voxels), never more than the typical case, rounded up
   to multiples of 16 and capped by what the device trains at an acceptable speed; on a CPU the
   spacing is coarsened (at most 2x) before the tile is capped.
2. ``schedule.fit_schedule`` (after a few real training steps were timed): iterations per
   epoch, epochs and validation interval so that preparation + training + validation fit the
   budget.
3. ``schedule.refit_epochs`` (after each epoch of a run with a given budget, epochs not fixed):
   the pace measured so far (a shared machine's load changes) sets how many epochs still fit.

Every explicit setting (command line, dataset.json, the ``--init`` model) wins and is shown as
overridden. The plan is written to ``OUT_DIR/plan.json``; ``--resume`` reads it back (only the
epochs may grow) and adds the session to ``resumes``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..errors import UNetPlusPlusError
from .fingerprint import DatasetFingerprint
from .plan_file import plan_problem

PLAN_FILE = "plan.json"
PLAN_VERSION = 1
PLANNED = (
    "spacing",
    "tile_size",
    "features",
    "batch_size",
    "iterations_per_epoch",
    "epochs",
    "val_every",
    "precision",
)
NARROW_FEATURES = (8, 16, 32, 64, 128, 8)
WIDE_FEATURES = (16, 32, 64, 128, 256, 16)
CONTEXT_SHARE = 0.25  # context per side, share of the foreground extent
MIN_CONTEXT_VOXELS = 4
MAX_COARSENING_CPU = 2.0


@dataclass
class DeviceInfo:
    """What the planner knows about the training device."""

    kind: str  # "cpu", "cuda", ...
    name: str
    threads: int  # CPU threads used (cores)
    bf16: bool  # native bfloat16: AVX512_BF16 / AMX on a CPU, bf16 support on CUDA
    memory_gb: Optional[float] = None  # GPU memory

    def max_tile_voxels(self) -> int:
        """Largest tile (voxels) the planner chooses on this device without being asked."""
        if self.kind == "cuda":
            memory = self.memory_gb or 8.0
            side = 64 if memory < 8 else 96 if memory < 20 else 128 if memory < 40 else 160
            return side**3
        # A few cores: 48^3 (the shipped CPU models' tile); up to 16: 64^3
        return 48**3 if self.threads <= 4 else 64**3 if self.threads < 16 else 96**3


def detect_device(device: Any, threads: int) -> DeviceInfo:
    """DeviceInfo of a torch device with ``threads`` CPU threads."""
    import torch

    from ..engine.devices import cpu_autocast_supported, cpu_name

    device = torch.device(device)
    if device.type == "cuda":
        index = device.index or 0
        props = torch.cuda.get_device_properties(index)
        return DeviceInfo(
            "cuda",
            props.name,
            threads,
            bool(torch.cuda.is_bf16_supported()),
            round(props.total_memory / 2**30, 1),
        )
    if device.type == "cpu":
        return DeviceInfo("cpu", cpu_name(), threads, cpu_autocast_supported())
    return DeviceInfo(device.type, device.type, threads, False)


def parse_duration(text: str) -> float:
    """Seconds in ``30m``, ``2h``, ``1h30m``, ``90s`` or a bare number of seconds (``3600``);
    raises UNetPlusPlusError otherwise (``cli_args.duration_seconds``)."""
    from ..cli_args import duration_seconds

    try:
        return duration_seconds(text)
    except ValueError as error:
        raise UNetPlusPlusError(f"--time-budget {error}.") from None


def format_duration(seconds: float) -> str:
    """``1h02m``, ``9m30s``, ``42s``; under 10 s two significant digits (``9.5s``, ``0.05s``:
    a resumed session's budget of 0.05 s read "0s"), under 0.01 s ``<0.01s``; 0 (or less)
    ``0s``."""
    seconds = max(0.0, float(seconds))
    if seconds == 0:
        return "0s"
    if seconds < 0.01:
        return "<0.01s"
    if seconds < 9.95:  # what rounds to 10.0 reads "10s" below
        return f"{float(f'{seconds:.2g}'):g}s"
    whole = int(round(seconds))
    if whole >= 3600:
        return f"{whole // 3600}h{(whole % 3600) // 60:02d}m"
    if whole >= 60:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole}s"


@dataclass
class Plan:
    """Everything a run is trained with, where each choice came from, and the estimate."""

    spacing: tuple[float, float, float]  # (x, y, z) mm
    tile_size: tuple[int, int, int]  # (x, y, z) voxels, multiples of 16
    features: tuple[int, ...]
    batch_size: int
    iterations_per_epoch: int = 0
    epochs: int = 0
    val_every: int = 1
    precision: str = "fp32"  # fp32 | bf16 (CPU autocast) | amp (CUDA autocast)
    validation_cases: int = 0  # validate on this many (evenly spread) cases; 0: all
    lr: Optional[float] = None  # AdamW learning rate (training/cli.py); None in older plans
    budget_s: Optional[float] = None
    budget_given: bool = False
    sources: dict = field(default_factory=dict)  # field -> "plan" or where the override came from
    reasons: dict = field(default_factory=dict)  # field -> why the plan chose it
    device: dict = field(default_factory=dict)
    fingerprint: dict = field(default_factory=dict)
    measured: dict = field(default_factory=dict)  # seconds per iteration, (last) validation
    estimate: dict = field(default_factory=dict)  # seconds: preparation, training, validation
    created: str = ""
    refits: list = field(default_factory=list)  # budget re-fits after an epoch: when, what
    # --resume sessions: after_epoch, epochs_before, epochs, when, and the estimate for the rest
    # (``estimate`` stays the first run's: model.json's estimate_s, the card)
    resumes: list = field(default_factory=list)
    split: dict = field(default_factory=dict)  # case ids per side (parent_split); --resume keeps it

    # ---- persistence ---------------------------------------------------------------------
    def to_dict(self) -> dict:
        data = asdict(self)
        for key in ("spacing", "tile_size", "features"):
            data[key] = list(data[key])
        return {"version": PLAN_VERSION, **data}

    @classmethod
    def from_dict(cls, data: dict) -> Plan:
        data = {k: v for k, v in data.items() if k != "version"}
        data["spacing"] = tuple(float(v) for v in data["spacing"])
        data["tile_size"] = tuple(int(v) for v in data["tile_size"])
        data["features"] = tuple(int(v) for v in data["features"])
        return cls(**data)

    def save(self, out_dir: Path) -> Path:
        path = Path(out_dir) / PLAN_FILE
        path.write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")
        return path

    @classmethod
    def load(cls, out_dir: Path) -> Optional[Plan]:
        """The plan.json in ``out_dir``, or None when there is none. Raises UNetPlusPlusError
        for one that cannot be read or is damaged (``plan_file.plan_problem``)."""
        path = Path(out_dir) / PLAN_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, RecursionError, ValueError) as error:
            raise _damaged_plan(path, str(error)) from error
        problem = plan_problem(data, {f.name for f in fields(cls)})
        if problem:
            raise _damaged_plan(path, problem)
        return cls.from_dict(data)

    def set_learning_rate(self, lr: float, source: Optional[str], reason: str) -> None:
        """Record the run's learning rate: ``source`` (``--lr``, ...) when it was given, None
        for a default, whose ``reason`` the table shows."""
        self.lr = float(lr)
        self.sources.pop("lr", None)
        self.reasons.pop("lr", None)
        if source:
            self.sources["lr"] = source
        else:
            self.reasons["lr"] = reason

    def _eta_lines(self) -> list[str]:
        """The ETA row; after ``--resume`` the estimate for the rest of the run first, then the
        first run's estimate, labelled as such (its date too: it may be another day's)."""
        budget, lines, first = "", [], self.estimate
        if self.budget_s:
            kind = "budget" if self.budget_given else "default budget on this device"
            budget = f" ({kind} {format_duration(self.budget_s)})"
        runs = [("ETA", first, f"in all{budget}", self.epochs * self.iterations_per_epoch, "%H:%M")]
        if self.resumes:  # plans before "iterations" was recorded: the epochs first planned
            rest, done = self.resumes[-1]["estimate"], self.resumes[-1]["after_epoch"]
            what = f"for the rest, resumed after epoch {done} of {self.epochs}"
            planned = self.resumes[0]["epochs_before"] * self.iterations_per_epoch
            runs = [("ETA", rest, what, rest["iterations"], "%H:%M"),
                    ("first run's estimate", first, f"in all{budget}",
                     first.get("iterations", planned), "%Y-%m-%d %H:%M")]  # fmt: skip
        for label, est, what, iterations, clock in runs:
            if "total" not in est:  # a fixed schedule: nothing timed before the first epoch
                lines.append(
                    f"  {label:<21} not timed before the first epoch (a fixed schedule): "
                    f"{iterations} iterations, {est['validations']} validation(s); "
                    "each epoch's line gives the ETA"
                )
                continue
            lines.append(
                f"  {label:<21} {format_duration(est['total'])} {what}: "
                f"preparation {format_duration(est['preparation'])}, {iterations} iterations "
                f"{format_duration(est['training'])}, {est['validations']} validation(s) "
                f"{format_duration(est['validation'])}; done about "
                + time.strftime(clock, time.localtime(est.get("finish_epoch", 0)))
            )
        return lines

    # ---- presentation --------------------------------------------------------------------
    def describe(self) -> list[str]:
        """The plan as printed before training: one line per choice with its origin."""
        lines = ["training plan:"]
        shown = {
            "spacing": " x ".join(f"{v:g}" for v in self.spacing) + " mm",
            "tile_size": " x ".join(str(v) for v in self.tile_size) + " voxels",
            "features": " ".join(str(v) for v in self.features),
            "batch_size": str(self.batch_size),
            "iterations_per_epoch": str(self.iterations_per_epoch),
            "epochs": str(self.epochs),
            "val_every": f"every {self.val_every} epoch(s) and after the last",
            "precision": self.precision,
            "validation_cases": str(self.validation_cases or "all"),
            "lr": f"{self.lr:g}" if self.lr is not None else "",
        }
        for key in (*PLANNED, "validation_cases", *(("lr",) if self.lr is not None else ())):
            source = self.sources.get(key, "plan")
            why = self.reasons.get(key, "") if source == "plan" else f"overridden by {source}"
            lines.append(f"  {key:<21} {shown[key]:<36} {why}".rstrip())
        device = self.device
        lines.append(
            f"  device                {device.get('kind')} {device.get('name', '')} "
            f"({device.get('threads')} threads"
            + (f", {device['memory_gb']} GB" if device.get("memory_gb") else "")
            + (", native bf16" if device.get("bf16") else "")
            + ")"
        )
        measured = self.measured
        if measured:
            lines.append(
                f"  measured              {measured.get('seconds_per_iteration', 0):.2f} s per "
                f"iteration, ~{measured.get('seconds_per_validation', 0):.1f} s per validation"
                + (
                    f" (the last, per depth, ~{measured['seconds_per_last_validation']:.1f} s)"
                    if "seconds_per_last_validation" in measured
                    else ""
                )
            )
        if self.estimate:
            lines += self._eta_lines()
        return lines


# ----------------------------------------------------------------------------- geometry
def _round16(value: float) -> int:
    return max(16, int(math.ceil(value / 16.0 - 1e-9)) * 16)


def planned_features(device: DeviceInfo) -> tuple[tuple[int, ...], str]:
    """The features (f0..f4, f_final) the plan chooses on ``device``, and why."""
    if device.kind == "cpu" and device.threads < 16:
        return NARROW_FEATURES, f"narrow: CPU with {device.threads} thread(s)"
    return WIDE_FEATURES, "the usual UNet++ width"


def plan_geometry(
    fingerprint: DatasetFingerprint,
    device: DeviceInfo,
    overrides: dict[str, tuple[Any, str]],
) -> Plan:
    """Spacing, tile, features and batch; ``overrides`` maps a field to (value, source)."""
    sources = {key: source for key, (_value, source) in overrides.items()}
    reasons: dict[str, str] = {}
    cap = device.max_tile_voxels()
    median = np.asarray(fingerprint.median_spacing(), float)
    foreground = fingerprint.foreground_mm(90)
    if not foreground.any():
        foreground = fingerprint.case_size_mm(50)
    case_size = fingerprint.case_size_mm(90)

    def needed_mm(spacing: np.ndarray) -> np.ndarray:
        context = np.maximum(CONTEXT_SHARE * foreground, MIN_CONTEXT_VOXELS * spacing)
        return np.minimum(foreground + 2 * context, np.maximum(case_size, 16 * spacing))

    if "spacing" in overrides:
        spacing = np.asarray(overrides["spacing"][0], float)
    else:
        spacing = median
        reasons["spacing"] = "median spacing of the cases"
        voxels = float(np.prod(needed_mm(median) / median))
        if device.kind == "cpu" and voxels > cap:
            factor = min(MAX_COARSENING_CPU, (voxels / cap) ** (1 / 3))
            spacing = median * factor
            reasons["spacing"] = (
                f"median spacing x{factor:.2f}, so the typical foreground with context fits a "
                "CPU tile"
            )
        spacing = np.round(spacing, 3)
    if "tile_size" in overrides:
        tile = [int(v) for v in overrides["tile_size"][0]]
    else:
        need = needed_mm(spacing)
        tile = [_round16(v) for v in need / spacing]
        capped = False
        while math.prod(tile) > cap and max(tile) > 16:
            tile[int(np.argmax(tile))] -= 16
            capped = True
        if math.prod(t // 16 for t in tile) < 2:  # instance norm needs 2+ voxels at the bottom
            tile[int(np.argmax(need / spacing))] = 32
        reasons["tile_size"] = (
            f"covers the 90th-percentile foreground ({_mm(foreground)} mm) with "
            f"{int(CONTEXT_SHARE * 100)}% context per side"
            + (f", capped at {cap} voxels on this device" if capped else "")
        )
    if "features" in overrides:
        features = tuple(int(v) for v in overrides["features"][0])
    else:
        features, reasons["features"] = planned_features(device)
    if "batch_size" in overrides:
        batch = int(overrides["batch_size"][0])
    else:
        small = device.kind == "cpu" and math.prod(tile) <= 32**3
        batch = 4 if small else 2
        reasons["batch_size"] = "small tiles: 4 per step" if small else "2 patches per step"
    plan = Plan(
        spacing=tuple(float(s) for s in spacing),  # type: ignore[arg-type]
        tile_size=tuple(tile),  # type: ignore[arg-type]
        features=features,
        batch_size=batch,
        sources={k: v for k, v in sources.items() if k in PLANNED},
        reasons=reasons,
        device=asdict(device),
        fingerprint=fingerprint.summary(),
        created=time.strftime("%Y-%m-%d %H:%M:%S"),
    )
    for key in ("iterations_per_epoch", "epochs", "val_every", "precision"):
        if key in overrides:
            setattr(plan, key, overrides[key][0])
    return plan


def _damaged_plan(path: Path, reason: str) -> UNetPlusPlusError:
    return UNetPlusPlusError(
        f"The run's plan {path} is damaged ({reason}); --resume continues that plan, so restore "
        "it, or start again with --overwrite."
    )


def _mm(values: Sequence[float]) -> str:
    return " x ".join(f"{v:.0f}" for v in values)
