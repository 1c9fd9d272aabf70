"""The set-up of a training run, before its first step: the process group, the device and its
threads (``_setup``), the split and the preprocessed cases (``_load_cases``), the network with
its initial weights, the optimizer and the precision (``_build_model``). ``Trainer`` mixes it in.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..engine.network import UNetPlusPlus3D
from . import distributed
from .case_content import LEGACY_METHOD, parent_method
from .dataset import find_cases
from .fingerprint import case_contents, with_legacy_prints
from .optimizer import AdamW
from .parent_split import choose_split
from .preprocess import PreprocessedCase, build_cache
from .resume_checks import cases_record, check_resume_cases
from .steps import DeepSupervision, autocast_dtype, channels_last


class SetupMixin:
    """Needs the Trainer's config, dataset, plan, resume (and resume_state, the checkpoint's
    JSON part, read by ``Trainer._run``), init_manifest, out_dir and log."""

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
        self.amp_dtype = autocast_dtype(self.config.precision, self.device)

    def _load_cases(self) -> None:
        config = self.config
        cases = find_cases(self.dataset)
        if config.max_cases:
            cases = cases[: config.max_cases]
        recorded = self.plan.split if self.plan is not None and self.resume else None
        cache_dir = Path(config.cache_dir) if config.cache_dir else self.out_dir / "cache"
        # image fingerprints (read with the dataset fingerprint, cached): a renamed copy of a
        # parent's case is matched, and model.json records them for a later fine-tune
        self.case_content, training_prints = case_contents(self.dataset, cases, cache_dir)
        if not self.resume and parent_method(self.init_manifest) == LEGACY_METHOD:
            self.case_content = with_legacy_prints(self.dataset, cases, self.case_content, self.log)
        split = choose_split(
            cases, config, self.dataset, self.init_manifest, self.resume, recorded,
            self.case_content,
        )  # fmt: skip
        self.train_files, self.val_files = split.training, split.validation
        ids = [c.case_id for c in self.train_files + self.val_files]
        if self.resume:  # before preprocessing: a replaced image or label (resume_checks.py)
            for warning in check_resume_cases(
                self.resume_state, training_prints, ids, self.accept_changed_cases
            ):
                self.log(f"warning: {warning}")
        self.cases_record = cases_record(training_prints, ids)
        for note in split.notes:
            self.log(note)
        self.split_record = split.record
        if self.plan is not None:
            self.plan.split = split.record
        self.log(
            f"dataset '{self.dataset.name}': {len(cases)} cases, {len(self.train_files)} for "
            f"training and {len(self.val_files)} for validation (split by patient)"
        )
        for note in self.dataset.notes:  # input checks (training/dataset_check.py)
            self.log(f"warning: {note}")
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
        channels_last(self.network)
        self.model = distributed.wrap_model(DeepSupervision(self.network), self.context)
        self.optimizer = AdamW(
            self.network.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        self._set_precision()
        from ..engine.loss import HybridLoss

        self.loss_fn = HybridLoss()

    def _set_precision(self) -> None:
        self.amp_dtype = autocast_dtype(self.config.precision, self.device)
        if self.amp_dtype is None and self.config.precision != "fp32":
            self.log(
                f"warning: precision {self.config.precision} does not apply on "
                f"{self.device.type} (bf16 is for CPUs, amp for CUDA); training in float32"
            )
            self.config.precision = "fp32"
            if self.plan is not None:
                self.plan.precision = "fp32"
        self.scaler = None
        if self.amp_dtype == torch.float16:  # torch.amp.GradScaler appeared in torch 2.3
            amp = getattr(torch, "amp", None)
            scaler_type = getattr(amp, "GradScaler", None)
            self.scaler = scaler_type("cuda") if scaler_type else torch.cuda.amp.GradScaler()

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
