"""The training / validation split of a fine-tune that respects its parent model's split.

A model fine-tuned with ``--init`` must never train on the cases its parent was validated on
(model.json ``validation.cases`` and ``validation.held_out_cases``): they would stop being
held out for the parent's figures and for the new model's. Those cases, matched by case id, by
patient (the dataset's ``patient_regex`` applied to the parent's ids) and by image content
(``training.case_fingerprints``, case_content.py: a renamed or re-saved copy, a mirror image,
a slab or a crop within the slices), form or join the new validation set. Cases the parent
trained on (``training.cases``, listed by models trained since this module) are not drawn for
validation; when the parent does not list them, the record says so and the card repeats it; a
parent without fingerprints is matched by name only, said once. The split is recorded
(``record``) in plan.json, so ``--resume`` keeps it exactly (:func:`restore_split`), and in
model.json and the card.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

from ..errors import UNetPlusPlusError
from .case_content import (
    LEGACY_METHOD,
    SAME_IMAGE,
    SHARED_SLICES,
    CasePrint,
    ContentIndex,
    join_copies,
    recorded_indexes,
)
from .dataset_types import CaseFiles, patient_id
from .split import explicit_patients, seeded_patients, split_cases, subset_patients


@dataclass
class ParentCases:
    """What a parent model's manifest says about its own split (case ids)."""

    name: str
    sha256: str
    held_out: list[str]
    trained: Optional[list[str]]  # None: the manifest does not list its training cases
    # the parent's recorded image prints, per side (case_content.py); None: none recorded
    held_out_content: Optional[ContentIndex] = None
    trained_content: Optional[ContentIndex] = None


@dataclass
class CaseSplit:
    """A run's split: the cases of each side, log lines, and ``record`` (plan.json's ``split``:
    case ids of ``training``, ``validation``, ``excluded`` and, for a fine-tune, ``parent``)."""

    training: list[CaseFiles]
    validation: list[CaseFiles]
    notes: list[str] = field(default_factory=list)
    record: dict = field(default_factory=dict)


def parent_cases(manifest) -> Optional[ParentCases]:
    """The split a parent ``manifest`` (ModelManifest) records, or None without a manifest."""
    if manifest is None:
        return None
    validation, training = manifest.validation or {}, manifest.training or {}
    held: list[str] = []
    for key in ("cases", "held_out_cases"):
        held += [str(c) for c in validation.get(key) or [] if str(c) not in held]
    trained = training.get("cases")
    prints = recorded_indexes(training)
    return ParentCases(
        name=str(manifest.name),
        sha256=str(manifest.sha256),
        held_out=held,
        trained=[str(c) for c in trained] if isinstance(trained, list) else None,
        held_out_content=None if prints is None else prints["validation"],
        trained_content=None if prints is None else prints["training"],
    )


def _content_matches(
    cases: Sequence[CaseFiles], content: Mapping[str, CasePrint], index: Optional[ContentIndex]
) -> list[tuple[CaseFiles, str, str, str]]:
    """(case, the parent's case id, how, what matched in words) for each case whose print
    (``content``: case id -> CasePrint) ``index`` matches: the same image (or its mirror
    image), shared axial slices, or shared in-plane patches (ContentIndex.match)."""
    if index is None:
        return []
    found = ((c, index.match(content.get(c.case_id))) for c in cases)
    return [(c, *hit) for c, hit in found if hit is not None]


def _patients(ids: Sequence[str], cases: Sequence[CaseFiles], regex: Optional[str]) -> set[str]:
    """The patients of ``ids`` in this dataset: by the dataset's patient regex and by case id."""
    wanted = set(ids)
    found = {patient_id(i, regex) for i in ids}
    return found | {c.patient_id for c in cases if c.case_id in wanted}


def split_with_parent(
    cases: Sequence[CaseFiles],
    fraction: float,
    seed: int,
    explicit: Sequence[str] = (),
    parent: Optional[ParentCases] = None,
    patient_regex: Optional[str] = None,
    content: Optional[Mapping[str, CasePrint]] = None,
) -> CaseSplit:
    """Training and validation cases by patient; with a ``parent``, its held-out patients are
    never trained on and join the validation set, and its training patients are drawn for
    validation only when no other patient is left (said in ``notes`` and ``record``). A case
    whose image print (``content``: case id -> CasePrint) equals one of the parent's held-out
    or training cases, or shares axial slices with it, counts as that case, whatever its name.
    ``explicit`` (``--val-cases``: ids or regexes) or ``fraction`` of the patients (seeded)
    gives the rest of the validation set, as in :func:`split.split_cases`. Raises
    UNetPlusPlusError when no case is left for training, or when ``explicit`` names a case the
    parent trained on."""
    if parent is None:
        training, validation = split_cases(cases, fraction, seed, explicit)
        return _finish(training, validation, [], [], {})
    content = content or {}
    same_held = _content_matches(cases, content, parent.held_out_content)
    same_trained = _content_matches(cases, content, parent.trained_content)
    held = _patients(parent.held_out, cases, patient_regex) | {m[0].patient_id for m in same_held}
    trained = _patients(parent.trained or [], cases, patient_regex)
    trained |= {m[0].patient_id for m in same_trained}
    both = held & trained  # a patient the parent trained and validated on (another grouping)
    excluded = [c for c in cases if c.patient_id in both]
    usable = [c for c in cases if c.patient_id not in both]
    kept_out = [c for c in usable if c.patient_id in held]
    validation_patients = {c.patient_id for c in kept_out}
    notes = _content_notes(parent, same_held, same_trained, bool(content))
    on_parent_training = False
    if explicit:
        chosen = explicit_patients(usable, explicit)
        refused = sorted(c.case_id for c in usable if c.patient_id in chosen & trained)
        if refused:
            raise UNetPlusPlusError(
                f"--val-cases names {', '.join(refused[:5])}"
                + (f" and {len(refused) - 5} more" if len(refused) > 5 else "")
                + f", which the --init model {parent.name} was trained on"
                + "".join(
                    f" (case {c.case_id} {_how(how, detail)} its training case {old})"
                    for c, old, how, detail in same_trained
                    if c.case_id in refused[:5] and c.case_id != old
                )
                + "; validating on them would overstate the new model. Name other cases."
            )
        validation_patients |= chosen
    else:
        patients = sorted({c.patient_id for c in usable})
        target = 0 if len(patients) < 2 else max(1, round(fraction * len(patients)))
        room = len(patients) - 1 - len(validation_patients)  # leave one patient to train on
        wanted = max(0, min(target - len(validation_patients), room))
        free = [p for p in patients if p not in validation_patients and p not in trained]
        drawn = seeded_patients(free, min(wanted, len(free)), seed)
        if not drawn and not validation_patients and wanted:  # the parent trained on them all
            free = [p for p in patients if p not in validation_patients]
            drawn = seeded_patients(free, wanted, seed)
            on_parent_training = True
            notes.append(
                f"warning: the --init model {parent.name} was trained on every patient of this "
                "dataset; the validation cases are held out from this run only, so its figures "
                "overstate the model"
            )
        validation_patients |= drawn
    validation = [c for c in usable if c.patient_id in validation_patients]
    training = [c for c in usable if c.patient_id not in validation_patients]
    if not training:
        raise UNetPlusPlusError(
            f"No case is left for training: the --init model {parent.name} was validated on "
            "every patient of this dataset (model.json validation.cases), and a fine-tune must "
            "not train on them. Add cases of other patients."
        )
    if kept_out:
        notes.append(
            f"kept {len(kept_out)} held-out case(s) of the --init model {parent.name} out of "
            f"training (validation instead): {_shown([c.case_id for c in kept_out])}"
        )
    if excluded:
        notes.append(
            f"left out {len(excluded)} case(s) of patients that {parent.name} both trained and "
            f"validated on: {_shown([c.case_id for c in excluded])}"
        )
    if parent.trained is None:
        notes.append(
            f"note: the --init model {parent.name} does not list its training cases, so the "
            "validation cases may include cases it was trained on"
        )
    record = {
        "name": parent.name,
        "sha256": parent.sha256,
        "held_out_kept_out": [c.case_id for c in kept_out],
        "training_cases_known": parent.trained is not None,
        "validation_on_parent_training": on_parent_training,
        "content_matched": parent.held_out_content is not None and bool(content),
        "content_method": None
        if parent.held_out_content is None
        else parent.held_out_content.method,
        "held_out_by_content": _renamed(same_held),
        "training_by_content": _renamed(same_trained),
    }
    return _finish(training, validation, excluded, notes, record)


def _content_notes(parent: ParentCases, same_held, same_trained, have_content: bool) -> list:
    """One notice per renamed copy of a parent's case, or one that content matching was not
    possible (an older parent without fingerprints, or no fingerprints of this dataset)."""
    if parent.held_out_content is None or not have_content:
        why = (
            f"the --init model {parent.name} records no image fingerprints of its cases (made "
            "by an older version)"
            if parent.held_out_content is None
            else "this dataset's image fingerprints are not known"
        )
        return [
            f"note: {why}: its cases are matched by case name and patient only, so a renamed "
            "copy of one of them is not recognised"
        ]
    notes = []
    if parent.held_out_content.method == LEGACY_METHOD:
        notes.append(
            f"note: the --init model {parent.name} records image fingerprints of an older method: "
            "a renamed copy or a slab of its cases is recognised, a mirror image or a crop "
            "within the slices is not"
        )
    notes += [
        f"case {c.case_id} {_how(how, detail)} the --init model {parent.name}'s held-out case "
        f"{old}: kept out of training (validation instead), as that case would be"
        for c, old, how, detail in same_held
        if c.case_id != old
    ]
    notes += [
        f"case {c.case_id} {_how(how, detail)} the --init model {parent.name}'s training case "
        f"{old}: not drawn for validation, as that case would not be"
        for c, old, how, detail in same_trained
        if c.case_id != old
    ]
    return notes


def _renamed(matches) -> list[list[str]]:
    """[case id, the parent's case id, how] of content matches under another name (a match
    of a case's own name is a name match, said as before)."""
    return [[c.case_id, old, how] for c, old, how, _ in matches if c.case_id != old]


def _how(how: str, detail: str) -> str:
    """What matched, in words (``detail``: ContentIndex.match's)."""
    if how == SAME_IMAGE:
        return "has the image content (the same voxels, or their mirror image) of"
    if how == SHARED_SLICES:
        return f"shares {detail} (one is a slab of the other, or its mirror image) with"
    return f"shares {detail} (one is a crop within the slices of the other) with"


def _finish(training, validation, excluded, notes, parent: dict) -> CaseSplit:
    record = {
        "training": [c.case_id for c in training],
        "validation": [c.case_id for c in validation],
        "excluded": [c.case_id for c in excluded],
    }
    if parent:
        record["parent"] = parent
    return CaseSplit(list(training), list(validation), notes, record)


def _shown(ids: Sequence[str], most: int = 8) -> str:
    more = f" and {len(ids) - most} more" if len(ids) > most else ""
    return ", ".join(ids[:most]) + more


def restore_split(cases: Sequence[CaseFiles], record: dict) -> CaseSplit:
    """The split recorded in plan.json (``--resume``), in the cases' order. Raises
    UNetPlusPlusError when a recorded case is no longer in the dataset."""
    by_id = {c.case_id: c for c in cases}
    missing = [i for i in [*record["training"], *record["validation"]] if i not in by_id]
    if missing:
        raise UNetPlusPlusError(
            f"--resume: case(s) {_shown(missing)} of this run's split (plan.json) are no longer "
            "in the dataset; restore them, or start a new run with --overwrite."
        )
    training = [by_id[i] for i in record["training"]]
    validation = [by_id[i] for i in record["validation"]]
    known = {*record["training"], *record["validation"], *record.get("excluded", [])}
    notes = []
    new = [c.case_id for c in cases if c.case_id not in known]
    if new:
        notes.append(f"--resume keeps the split of plan.json; not using new case(s) {_shown(new)}")
    return CaseSplit(training, validation, notes, dict(record))


def choose_split(
    cases: Sequence[CaseFiles],
    config: Any,
    dataset: Any,
    init_manifest: Any = None,
    resume: bool = False,
    recorded: Optional[dict] = None,
    content: Optional[Mapping[str, CasePrint]] = None,
) -> CaseSplit:
    """A run's split: ``recorded`` (plan.json's ``split``, on ``--resume``) exactly; else
    :func:`split_with_parent` by ``config`` (TrainConfig: val_fraction, seed, train_fraction)
    and ``dataset`` (DatasetDescription: validation_cases, patient_regex) and the cases' image
    prints ``content`` (case id -> CasePrint), then the ``--train-fraction`` share of
    the training patients. Cases of other patients whose prints match are split as one
    patient (:func:`case_content.join_copies`, said in the notes). A resumed run whose
    plan.json records no split (started by an older version) keeps the plain split by patient
    it started with, and says that it does not account for the --init model's held-out cases."""
    if recorded:
        return restore_split(cases, recorded)
    copies: list[str] = []
    if not resume:  # a copy is never on the other side (an older run keeps its split)
        cases, copies = join_copies(cases, content or {})
    parent = parent_cases(init_manifest)
    old_run_note = []
    if resume and parent is not None:
        parent = None
        old_run_note.append(
            "warning: this run's plan.json records no split (an older version started it): "
            "resuming with its split by patient, which does not keep the --init model's "
            "held-out cases out of training"
        )
    split = split_with_parent(
        cases, config.val_fraction, config.seed, dataset.validation_cases, parent,
        dataset.patient_regex, content,
    )  # fmt: skip
    split.notes[:0] = old_run_note + copies
    if config.train_fraction < 1.0:
        patients = len({c.patient_id for c in split.training})
        split.training = subset_patients(split.training, config.train_fraction, config.seed)
        split.record["training"] = [c.case_id for c in split.training]
        kept = len({c.patient_id for c in split.training})
        split.notes.append(
            f"--train-fraction {config.train_fraction:g}: training on the "
            f"{len(split.training)} cases of {kept} of the {patients} training patients"
        )
    return split
