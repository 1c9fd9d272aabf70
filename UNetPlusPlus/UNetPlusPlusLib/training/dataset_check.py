"""Validate a whole training dataset before preprocessing; report every problem at once.

:func:`check_dataset` reads every case once (channels and label file) and collects, instead of
stopping at the first:

- cases with missing channel or label files (from :func:`.dataset.find_cases`);
- cases that cannot be read, whose label grid does not match the image, whose label file lacks
  a requested segment, or whose label is empty (from :func:`.cases.read_case`);
- channels that are constant or empty, or identical to another channel
  (:func:`..engine.sanity.check_intensities`);
- a case whose image is not of the dataset's modality (inference's refusals: a label map, a
  CT without air, an MR like a CT), when other cases are (:func:`_modality_findings`: a label
  map exported as one case's image would train a worse model or corrupt the validation Dice);
  warnings where every case is so (synthetic or processed data);
- what the trained model would refuse at inference (:mod:`.dataset_mr_checks`): an MR
  background that is not exactly 0, two channels that are the same image up to scale, a
  wrong sequence order (skipped with ``channel_check=False``);
- model labels that occur in no case (named with the label value or segment they map to, and the
  values the label files do hold); a case refused after its label was read still counts, and a
  case that could not be read is not counted as lacking the label (nothing said when no case
  could be read);
- label names that collide once case, '_' and spaces are ignored ("Liver" and "liver");
- labels and images that the model's own result checks would warn about
  (:mod:`.dataset_label_checks`: a liver label where the heart is or left of the midline, a
  volume outside ``postprocess.plausible_ml``, a CT flipped front-back): warnings naming the
  case and the label, or problems with ``strict_labels`` (``--strict-labels``).

Any problem raises one :class:`UNetPlusPlusError` listing them all, before anything is written.
Borderline findings (a class that loses most of its voxels to an overlapping segment, a CT
channel without air in every case) come back as warnings for the training log.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..engine.sanity import check_intensities
from ..errors import UNetPlusPlusError
from .cases import read_case
from .dataset import find_cases
from .dataset_label_checks import label_checks
from .dataset_mr_checks import CaseModelChecks
from .dataset_types import SEGMENTATION_SUFFIX, CaseFiles, DatasetDescription, normalized_name
from .label_learning import MAX_CLASSES, mixed_binary_problem, partial_label_warnings
from .label_selectors import selector_value

#: At most this many label files are re-read to list the values they hold.
_VALUE_SAMPLE_CASES = 8
#: Up to this many classes (background included) are counted one comparison each.
_COUNTED_CLASSES = 8


def check_dataset(
    dataset: DatasetDescription,
    max_cases: Optional[int] = None,
    init=None,
    channel_check: bool = True,
    strict_labels: bool = False,
) -> list[str]:
    """Check every case (the first ``max_cases``); returns warnings, raises all problems.

    ``init``: the ``--init`` ModelManifest (its inference options and channel fingerprint
    apply), or None; ``channel_check=False`` skips the sequence-order check with a warning
    (``--no-channel-check``); ``strict_labels=True`` turns the label plausibility warnings
    into problems (``--strict-labels``). Also adds the dataset's own notes (merged segment
    names) to the returned warnings. Raises one UNetPlusPlusError listing every problem.
    """
    if len(dataset.labels) > MAX_CLASSES:  # each case's classes would overflow their 8 bits
        raise UNetPlusPlusError(
            f"Dataset '{dataset.name}' has {len(dataset.labels)} labels; a model has at most "
            f"{MAX_CLASSES} (stored as 8-bit classes): pick the labels to learn with --labels."
        )
    problems: list[str] = list(_name_collisions(dataset))
    warnings: list[str] = list(dataset.notes)
    cases = find_cases(dataset, problems)
    if max_cases:
        cases = cases[:max_cases]
    counts = np.zeros(len(dataset.labels) + 1, dtype=np.int64)
    modalities = [channel.modality for channel in dataset.channels]
    names = [channel.name for channel in dataset.channels]
    model_checks = CaseModelChecks(dataset, init, channel_check)
    plausibility = label_checks(dataset, init)
    unread = 0  # cases whose label could not be read: a label may be there
    held: dict[str, set] = {}  # learnt labels: case id -> classes it holds
    # cases whose image inference would refuse as not the dataset's modality (a label map, an
    # MR in a CT dataset): case id -> (files, why); and the count of cases that fit it
    modality_outliers: dict[str, tuple[CaseFiles, str]] = {}
    modality_fits = 0
    for case in cases:
        try:
            data = read_case(case, dataset)
        except UNetPlusPlusError as error:
            unread += 1
            problems.append(_case_problem(case.case_id, error))
            continue
        if counts.size < len(dataset.labels) + 1:  # values learnt from this case
            counts = np.pad(counts, (0, len(dataset.labels) + 1 - counts.size))
        case_counts = _label_counts(data.labels, counts.size)
        counts += case_counts
        if dataset.learn_label_values and case_counts[1:].any():
            held[case.case_id] = set(np.flatnonzero(case_counts[1:]) + 1)
        try:
            arrays = list(data.image.array)
            found, unlike = _intensity_findings(arrays, names, modalities)
            found += model_checks.check_case(case.case_id, arrays, data.image.spacing)
        except UNetPlusPlusError as error:
            problems.append(_case_problem(case.case_id, error))
            continue
        if unlike:
            modality_outliers[case.case_id] = (case, unlike)
            found = [w for w in found if w != unlike]
        else:
            modality_fits += 1
        warnings += [f"Case '{case.case_id}': {w}" for w in found] + data.warnings
        if plausibility is not None:
            said = [
                f"Case '{case.case_id}': {w}"
                for w in plausibility.check_case(data.image, data.labels)
            ]
            (problems if strict_labels else warnings).extend(said)
    said = _modality_findings(modality_outliers, modality_fits, modalities)
    (problems if modality_fits else warnings).extend(said)
    if dataset.learn_label_values:  # the labels are now those of every case checked
        dataset.learn_label_values = False
        mixed = mixed_binary_problem(dataset, held)
        if mixed is not None:
            problems.append(mixed)
        else:
            warnings += partial_label_warnings(dataset, held)
    order_problems, order_warnings = model_checks.finish()
    problems += order_problems
    warnings += order_warnings
    if len(cases) > unread:  # a label is absent only from the cases that were read
        absent = _absent_labels(dataset, cases, counts, unread)
        lost = [w for w in warnings if any(f"class '{n}' keeps" in w for n in absent)]
        problems[:0] = list(absent.values()) + lost  # a class emptied by overlap: say why
    if problems:
        listed = "; ".join(f"({i}) {p.rstrip('.')}" for i, p in enumerate(problems, start=1))
        raise UNetPlusPlusError(
            f"Dataset '{dataset.name}' has {len(problems)} problem(s); nothing was trained or "
            f"written. {listed}."
        )
    return warnings


def _intensity_findings(
    arrays: Sequence[np.ndarray], names: Sequence[str], modalities: Sequence[str]
) -> tuple[list[str], str]:
    """(warnings, why the image is not of its modality or "") of one case's (z, y, x)
    channels: inference's intensity checks (``check_intensities``), whose modality refusals
    (a label map, a CT without air, an MR like a CT) come back as the second item. Raises
    UNetPlusPlusError for what training refuses too (a constant or duplicated channel)."""
    try:
        return check_intensities(arrays, names, modalities, True), ""
    except UNetPlusPlusError as error:
        return check_intensities(arrays, names, modalities, False), str(error)


def _modality_findings(
    outliers: dict[str, tuple[CaseFiles, str]], fits: int, modalities: Sequence[str]
) -> list[str]:
    """One line per case whose image is not of the dataset's modality (``outliers``: case id
    -> (files, why)). With ``fits`` > 0 other cases that are, each line is a problem naming
    the files to leave out: such a case (a label map or an MR exported as the image of a CT
    folder) trains a worse model, or lands in the validation split and corrupts its Dice.
    With none, the whole dataset is alike (synthetic or processed data): warnings."""
    if not outliers:
        return []
    kinds = "/".join(dict.fromkeys(m.strip().upper() for m in modalities))
    said = []
    for case_id, (case, why) in outliers.items():
        if not fits:
            said.append(f"Case '{case_id}': {why}")
            continue
        files = ", ".join(p.name for p in (*case.images, case.label))
        said.append(
            f"Case '{case_id}': {why.rstrip('.')}; the other {fits} case(s) checked are "
            f"{kinds} images, so this one would train a worse model or corrupt the validation "
            f"Dice: fix its image, or move its files ({files}) out of the dataset"
        )
    return said


def _label_counts(labels: np.ndarray, size: int) -> np.ndarray:
    """Voxels of each class 0..size-1 in the (z, y, x) uint8 ``labels``: ``np.bincount``'s
    first ``size`` counts, without its int64 copy of the volume for a few classes."""
    if size > _COUNTED_CLASSES:
        return np.bincount(labels.ravel(), minlength=size)[:size]
    return np.array([np.count_nonzero(labels == v) for v in range(size)], dtype=np.int64)


def _case_problem(case_id: str, error: UNetPlusPlusError) -> str:
    """The error's message, starting with "Case '<id>'" once."""
    message, prefix = str(error), f"Case '{case_id}'"
    return message if message.startswith(prefix) else f"{prefix}: {message}"


def _name_collisions(dataset: DatasetDescription) -> list[str]:
    seen: dict[str, str] = {}
    problems = []
    for label in dataset.labels:
        key = normalized_name(label.name)
        if key in seen:
            problems.append(
                f"labels {seen[key]!r} and {label.name!r} are the same name once case, '_' and "
                "spaces are ignored; merge them or rename one"
            )
        seen.setdefault(key, label.name)
    return problems


def _absent_labels(
    dataset: DatasetDescription, cases: Sequence[CaseFiles], counts: np.ndarray, unread: int = 0
) -> dict[str, str]:
    """Label name -> problem, for the model labels with no voxel in any case that was read
    (``counts``: voxels per class over those cases; ``unread``: cases that could not be read,
    reported on their own, which may hold the label)."""
    absent = [label for v, label in enumerate(dataset.labels, start=1) if counts[v] == 0]
    if not absent:
        return {}
    held = _values_held(cases)
    where = "no case"
    if unread:
        read = len(cases) - unread
        where = f"none of the {read} case(s) whose label could be read"
    problems = {}
    for label in absent:
        mapped = sorted({_describe(s) for c in cases for s in c.source.label_map[label.name]})
        problems[label.name] = (
            f"label '{label.name}' ({', '.join(mapped)}) occurs in {where}{held}; fix the "
            "label mapping or leave the label out"
        )
    return problems


def _describe(selector) -> str:
    value = selector_value(selector)  # '--labels 7' is the value 7 (label_selectors.py)
    return f"value {value}" if value is not None else f"segment {selector!r}"


def _values_held(cases: Sequence[CaseFiles]) -> str:
    """', whose label files hold the values 0, 63, 126' for plain label maps ('' otherwise)."""
    from ..engine.image_read import read_labelmap

    values: set[int] = set()
    for case in cases[:_VALUE_SAMPLE_CASES]:
        if case.label.name.lower().endswith(SEGMENTATION_SUFFIX):
            return ""
        try:
            values.update(int(v) for v in np.unique(read_labelmap(case.label).array))
        except UNetPlusPlusError:
            continue
    if not values:
        return ""
    shown = ", ".join(str(v) for v in sorted(values)[:20])
    return f" (the label files hold the values {shown})"
