"""The plan's part of a training run: time a few steps and fit the schedule before the first
step, print and write the plan, keep the ETA, and re-fit the epochs to a given budget after each
epoch at the pace measured so far (a shared machine's load changes). ``Trainer`` mixes it in.
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np

from . import distributed
from .augment import AugmentConfig
from .planner import Plan, format_duration
from .sampler import PatchSampler
from .schedule import (
    DEFAULT_BUDGET_S,
    LAST_VALIDATION_FACTOR,
    default_iterations,
    finish_reserve,
    fit_schedule,
    needs_timing,
    one_pass_pace,
    refit_epochs,
    validations_seconds,
)
from .steps import (
    SHORT_RUN,
    DeepSupervision,
    calibrate,
    precision_candidates,
    untimed_precision_note,
    validation_seconds,
)


class PlanningMixin:
    """Needs the Trainer's config, plan, context, network, loss_fn, cases, log and started."""

    def _pace(self, key: str) -> float:
        """``seconds_per_iteration`` or ``seconds_per_validation`` (one validation from one pass
        per tile; a timed one counts as ``LAST_VALIDATION_FACTOR`` of them) at the latest rate:
        this run's, else plan.json's (the calibration), else the checkpoint's ``pace`` (the
        last epoch before ``--resume``; a fixed schedule times no steps before its first
        epoch); 0.0 when none was measured."""
        mine = {"seconds_per_iteration": "_iteration_s", "seconds_per_validation": "_validation_s"}
        measured = self.plan.measured if self.plan is not None else {}
        saved = getattr(self, "_saved_pace", None) or {}
        for value in (getattr(self, mine[key], None), measured.get(key), saved.get(key)):
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
                return float(value)
        return 0.0

    def _read_saved_paces(self, state: dict) -> None:
        """On ``--resume``: the checkpoint ``state``'s pace, and plan.json's ``measured``, per
        one-pass validation (``schedule.one_pass_pace``): those written before validations
        were priced so hold a per-depth pace, which overstated the ETA, the session stop's
        estimate and the re-fits' validation cost until this run's first validation. Logged;
        plan.json is rewritten with the converted pace when the resume is recorded."""
        pace = state.get("pace")
        self._saved_pace, old_checkpoint = one_pass_pace(pace if isinstance(pace, dict) else {})
        old_plan = False
        if self.plan is not None:
            self.plan.measured, old_plan = one_pass_pace(self.plan.measured)
        old = [
            name for name, yes in (("checkpoint", old_checkpoint), ("plan.json", old_plan)) if yes
        ]
        if old:
            were, its = ("were", "their") if len(old) == 2 else ("was", "its")
            self.log(
                f"the {' and '.join(old)} {were} written before validations ran from one pass: "
                f"{its} validation pace, per depth, is divided by {LAST_VALIDATION_FACTOR} for "
                "those before the last"
            )

    def _rest(self, epochs_done: int) -> dict:
        """What is left after ``epochs_done`` epochs at the latest measured rates
        (:meth:`_pace`): iterations, training seconds, validations, validation seconds. A
        re-fit that ended the run after ``epochs_done`` (:meth:`_refit`) leaves the finish
        step's per-depth validation of the final weights: one validation, not none."""
        config = self.config
        per_iteration = self._pace("seconds_per_iteration")
        per_validation = self._pace("seconds_per_validation")
        iterations = max(0, config.epochs - epochs_done) * config.iterations_per_epoch
        validations = sum(
            1
            for e in range(epochs_done + 1, config.epochs + 1)
            if e % config.val_every == 0 or e == config.epochs
        )
        if epochs_done >= config.epochs and getattr(self, "_ended_by_refit", None) == epochs_done:
            validations = 1  # its validation ran from one pass, or none ran: timed at the finish
        return {
            "iterations": iterations,
            "training": iterations * float(per_iteration),
            "validations": validations,
            "validation": validations_seconds(validations, float(per_validation)),
        }

    def _eta(self, epochs_done: int) -> float:
        """Seconds left: iterations and validations still to run at the latest measured rates."""
        rest = self._rest(epochs_done)
        return rest["training"] + rest["validation"]

    def _resume_eta(self, epochs_done: int) -> str:
        """The ETA said when a run resumes: the plan table's (``plan.resumes``, the one record
        of this session's estimate), else (a checkpoint without plan.json) :meth:`_eta`."""
        resumes = self.plan.resumes if self.plan is not None else []
        if resumes and resumes[-1].get("after_epoch") == epochs_done:
            estimate = resumes[-1]["estimate"]
            done = time.strftime("%H:%M", time.localtime(estimate.get("finish_epoch", 0)))
            return f"ETA for the rest {format_duration(estimate['total'])}; done about {done}"
        return f"ETA for the rest {format_duration(self._eta(epochs_done))}"

    def _fit_plan(self) -> None:
        """Time a few steps where the plan uses them (:meth:`_timing_needed`), fit the
        schedule, print and write the plan."""
        config, plan = self.config, self.plan
        assert plan is not None
        data = None
        if self.context.is_main:
            requested = plan.precision if "precision" in plan.sources else "auto"
            if config.max_val_cases:
                plan.sources["validation_cases"] = "--max-val-cases"
                plan.validation_cases = len(self.val_cases)
            if self._timing_needed(requested):
                self._plan_timed(requested)
            else:
                self._plan_untimed(requested)
            data = plan.to_dict()
        plan = Plan.from_dict(distributed.broadcast_object(self.context, data))
        self.plan = plan
        config.epochs = int(plan.epochs)
        config.iterations_per_epoch = int(plan.iterations_per_epoch)
        config.val_every = int(plan.val_every)
        config.precision = plan.precision
        self._select_validation_cases()
        self._check_config()
        self._set_precision()
        for line in plan.describe():
            self.log(line)
        if self.context.is_main:
            self.log(f"wrote {plan.save(self.out_dir)}")

    def _timing_needed(self, requested: str) -> bool:
        """Whether the calibration's timings are used: for a budget (``schedule.needs_timing``)
        or "auto" precision that only a comparison can settle (``steps.precision_candidates``).
        A fixed schedule (``--epochs`` without ``--time-budget``) and a settled precision need
        none, ``--plan-only`` included: its plan.json and ETA row say "not timed" (``timed``
        false), and a run's ETA follows its first epoch."""
        if needs_timing(self.plan):
            return True
        return self._untimed_precision(requested) is None

    def _untimed_precision(self, requested: str) -> Optional[tuple[str, str]]:
        """(precision, why) where no timing could change it: one candidate, or fp32 where the
        bf16 Dice check could not be allowed (with fixed epochs :meth:`_comparison_allowed`
        does not depend on the seconds: at least 160 iterations in all); else None."""
        candidates = precision_candidates(requested, self.device)
        if len(candidates) == 1:
            return candidates[0], untimed_precision_note(candidates[0], self.device)
        if not needs_timing(self.plan) and not self._comparison_allowed(2.0 * SHORT_RUN):
            return "fp32", "fp32: a bf16 Dice check would cost more than 10% of this run"
        return None

    def _plan_timed(self, requested: str) -> None:
        """Calibrate (``steps.calibrate``): the precision, the measured seconds, the schedule
        fitted to them."""
        config, plan = self.config, self.plan
        tile_zyx = config.tile_size[::-1]
        calibration = calibrate(
            self.network,
            DeepSupervision,
            self.loss_fn,
            PatchSampler(self.train_cases, tile_zyx, config.foreground_fraction),
            PatchSampler(self.val_cases, tile_zyx, 0.5),
            AugmentConfig(enabled=config.augment),
            config.spacing,
            config.batch_size,
            tile_zyx,
            self.device,
            config.lr,
            config.weight_decay,
            requested,
            config.seed,
            self.log,
            comparison_allowed=self._comparison_allowed,
        )
        if "precision" not in plan.sources:
            plan.precision = calibration.precision
            plan.reasons["precision"] = calibration.note or "measured"
        plan.measured.update(calibration.timings)
        if calibration.note:
            plan.measured["precision_note"] = calibration.note
        per_validation = validation_seconds(
            [c.shape_zyx for c in self.val_cases], tile_zyx, config.overlap,
            calibration.seconds_per_tile,
        )  # fmt: skip
        fit_schedule(
            plan,
            len(self.train_cases),
            calibration.seconds_per_iteration,
            per_validation,
            time.monotonic() - self.started,
            validation_cases=len(self.val_cases),
        )
        self._warn_short_session()

    def _warn_short_session(self) -> None:
        """A fixed schedule with ``--time-budget`` trains in sessions of whole epochs (the
        budget fit does not apply): said before training where the budget cannot hold the
        first epoch and its validation (per depth when it is the only epoch), as that epoch
        then passes it."""
        plan = self.plan
        if not plan.budget_given or not {"epochs", "iterations_per_epoch"} <= set(plan.sources):
            return
        measured = plan.measured
        epoch_s = plan.iterations_per_epoch * float(measured.get("seconds_per_iteration", 0))
        one_pass = float(measured.get("seconds_per_validation", 0))
        only = plan.epochs == 1
        validation_s = validations_seconds(1, one_pass) if only else one_pass
        if not only and plan.val_every != 1:
            validation_s = 0.0
        budget = float(plan.budget_s or 0)
        left = budget - (time.monotonic() - self.started) - finish_reserve(budget)
        if epoch_s + validation_s > left:
            what = "the validation of the final weights, every depth" if only else "its validation"
            self.log(
                f"warning: the time budget {format_duration(budget)} cannot hold one epoch "
                f"(~{format_duration(epoch_s)}) plus {what} (~{format_duration(validation_s)}) "
                "after the preparation: the first epoch will pass it; give a longer "
                "--time-budget"
            )

    def _plan_untimed(self, requested: str) -> None:
        """The plan of a fixed schedule without timed steps: the precision that needs no
        comparison, the schedule's counts (``fit_schedule`` without seconds)."""
        plan = self.plan
        untimed = self._untimed_precision(requested)
        assert untimed is not None
        chosen, why = untimed
        if "precision" not in plan.sources:
            plan.precision = chosen
            plan.reasons["precision"] = why or chosen
        fit_schedule(
            plan, len(self.train_cases), None, 0.0, time.monotonic() - self.started,
            validation_cases=len(self.val_cases),
        )  # fmt: skip
        self.log(
            "no steps timed: the schedule is fixed (epochs without --time-budget); "
            "the ETA follows the first epoch"
        )

    def _warn_short_resumed_session(self, state: dict) -> None:
        """On ``--resume --time-budget`` (this session's limit): said before training where the
        limit cannot hold the next epoch and its validation (per depth, and the package's
        share, when it is the last) after this session's preparation, at the pace the
        checkpoint ``state`` recorded (its last epoch; else plan.json's calibration), as a new
        run with a fixed schedule says it (:meth:`_warn_short_session`): that epoch still runs,
        so each session of a run in pieces makes progress, and then passes the limit. Nothing
        is said without a limit or a recorded pace."""
        limit, config = self.session_budget_s, self.config
        done = int(state.get("epoch", 0))
        if not limit or done >= config.epochs:
            return
        saved = getattr(self, "_saved_pace", None) or {}

        def recorded(key: str) -> float:
            value = saved.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
                return float(value)
            return self._pace(key)

        per_iteration = recorded("seconds_per_iteration")
        if per_iteration <= 0:
            return
        epoch_s = config.iterations_per_epoch * per_iteration
        one_pass, nxt = recorded("seconds_per_validation"), done + 1
        what, validation_s = "", 0.0
        if nxt == config.epochs:
            what = "the validation of the final weights, every depth"
            validation_s = validations_seconds(1, one_pass)
        elif nxt % config.val_every == 0:
            what, validation_s = "its validation", one_pass
        left = float(limit) - (time.monotonic() - self.started)
        if nxt == config.epochs:
            left -= finish_reserve(float(limit))
        if epoch_s + validation_s > left:
            plus = f" plus {what} (~{format_duration(validation_s)})" if what else ""
            self.log(
                f"warning: the time budget {format_duration(float(limit))} of this session "
                f"cannot hold one epoch (~{format_duration(epoch_s)} at the pace the checkpoint "
                f"recorded, {per_iteration:.2f} s per iteration){plus} after the preparation: "
                f"epoch {nxt} of {config.epochs} will pass it; give a longer --time-budget"
            )

    def _note_resume(self, state: dict) -> None:
        """On ``--resume`` from the checkpoint ``state`` (its JSON part): the estimate for the
        rest of the run at the measured rates, recorded in ``plan.resumes`` and written to
        plan.json with the epochs this run trains to (the plan table shows it)."""
        plan = self.plan
        assert plan is not None
        done = int(state.get("epoch", 0))
        epochs_before = int(state.get("config", {}).get("epochs", plan.epochs))
        rest = self._rest(done)  # the same rates as every later ETA (one source)
        training, validation = rest["training"], rest["validation"]
        preparation = time.monotonic() - self.started
        plan.resumes.append(
            {
                "after_epoch": done,
                "epochs_before": epochs_before,
                "epochs": plan.epochs,
                "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "estimate": {
                    "preparation": round(preparation, 1),
                    "iterations": rest["iterations"],
                    "training": round(training, 1),
                    "validation": round(validation, 1),
                    "validations": rest["validations"],
                    "total": round(preparation + training + validation, 1),
                    "finish_epoch": time.time() + training + validation,
                },
            }
        )
        if self.context.is_main:
            plan.save(self.out_dir)

    def _select_validation_cases(self) -> None:
        """The plan's evenly spread subset of the validation cases (the same on resume)."""
        count = int(self.plan.validation_cases or 0) if self.plan is not None else 0
        if 0 < count < len(self.val_cases):
            picks = np.unique(np.linspace(0, len(self.val_cases) - 1, count).round().astype(int))
            self.val_cases = [self.val_cases[i] for i in picks]
            self.log(f"validating on {len(self.val_cases)} evenly spread validation case(s)")

    def _comparison_allowed(self, seconds: float) -> bool:
        """The bf16-vs-fp32 short run may take at most 10 % of the run: of the budget (given or
        the device default), or of the fixed epochs at the default iterations per epoch."""
        plan, config = self.plan, self.config
        if plan is None:
            return False
        if plan.budget_given or "epochs" not in plan.sources:
            run_s = plan.budget_s or DEFAULT_BUDGET_S.get(self.device.type, 3600.0)
        else:
            iterations = config.iterations_per_epoch or default_iterations(
                len(self.train_cases), config.batch_size
            )
            per_step = seconds / (2 * SHORT_RUN)  # the short run's two step times, per step
            run_s = config.epochs * iterations * per_step
        return seconds <= 0.1 * run_s

    def _session_over(self, done: int, epoch_s: float) -> bool:
        """True (and logged) when the next epoch would pass this session's limit: --time-budget
        on --resume, or with a fixed schedule (--epochs and --iterations-per-epoch)."""
        plan, config = self.plan, self.config
        limit = self.session_budget_s
        fixed = plan is not None and {"epochs", "iterations_per_epoch"} <= set(plan.sources)
        if limit is None and fixed and plan.budget_given and not self.resume:
            limit = plan.budget_s
        if not limit or done >= config.epochs:
            return False
        validation = self._pace("seconds_per_validation")
        if done + 1 == config.epochs:  # the next is the last: its validation runs per depth
            validation = validations_seconds(1, validation)
        needed = (time.monotonic() - self.started) + epoch_s + validation
        stop = needed > float(limit)
        stop = bool(distributed.broadcast_object(self.context, stop))
        if stop:
            self.log(
                f"stopping after epoch {done} of {config.epochs}: the next epoch would pass this "
                f"session's time budget ({format_duration(float(limit))}); the checkpoint is "
                "saved, --resume continues the same plan"
            )
        return stop

    def _budget_used(self) -> float:
        """Seconds of the budget used by this run and the earlier runs of the same plan."""
        return self.budget_used_before + (time.monotonic() - self.started)

    def _refit(self, done: int, epoch_s: float) -> None:
        """After epoch ``done``: re-fit the epochs to the given budget at the measured pace;
        the new schedule is written to plan.json (``refits`` says when and why)."""
        plan, config = self.plan, self.config
        if plan is None or done >= config.epochs:  # after the last epoch: finish, no new epochs
            return
        data = None
        if self.context.is_main:
            budget = float(plan.budget_s or 0)
            remaining = budget - self._budget_used() - finish_reserve(budget)
            validation_s = self._pace("seconds_per_validation")
            data = refit_epochs(plan, done, remaining, epoch_s, validation_s)
        refit = distributed.broadcast_object(self.context, data)
        if refit is None:
            return
        epochs, val_every = refit
        if self.context.is_main:
            plan.refits.append(
                {
                    "after_epoch": done,
                    "epochs_before": plan.epochs,
                    "epochs": epochs,
                    "val_every": val_every,
                    "seconds_per_iteration": round(epoch_s / config.iterations_per_epoch, 4),
                }
            )
            self.log(
                f"re-fitted to the budget at the measured pace "
                f"({epoch_s / config.iterations_per_epoch:.2f} s per iteration): "
                f"{plan.epochs} -> {epochs} epochs, validation every {val_every}"
            )
            if epochs == done:
                self._warn_final_validation(float(plan.budget_s or 0))
            plan.epochs, plan.val_every = epochs, val_every
            plan.save(self.out_dir)
        if epochs == done:  # the finish step validates the final weights per depth (_rest)
            self._ended_by_refit = done
        plan.epochs, plan.val_every = epochs, val_every
        config.epochs, config.val_every = epochs, val_every
        if self._bar is not None:
            self._bar.total = epochs * config.iterations_per_epoch
            self._bar.refresh()

    def _warn_final_validation(self, budget: float) -> None:
        """Logged when a re-fit ends the run and the budget left cannot hold the per-depth
        validation of the final weights (the pace slowed after the last re-fit): it still
        runs (model.json needs it), and the log says by about how much the run passes the
        budget."""
        stop_s = validations_seconds(1, self._pace("seconds_per_validation"))
        left = budget - self._budget_used()
        over = stop_s + finish_reserve(budget) - left
        if over > 0:
            self.log(
                f"warning: the time budget ({format_duration(budget)}) has "
                f"{format_duration(max(left, 0.0))} left; the validation of the final weights "
                f"(every depth, ~{format_duration(stop_s)}) and the package will pass it by "
                f"about {format_duration(over)}"
            )
