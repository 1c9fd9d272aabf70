"""Case discovery for the pattern layout of ``dataset.json``.

Patterns are paths relative to DATA_DIR in which ``{case}`` stands for the case id (its first
occurrence captures it, later ones must repeat it), ``*`` for any run of characters within one
folder and ``**/`` for any number of folders.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from ..errors import UNetPlusPlusError
from .dataset_types import (
    CaseFiles,
    DatasetDescription,
    SourceDescription,
    collect_case,
    patient_id,
)


def _pattern_regex(template: str) -> re.Pattern:
    parts = re.split(r"(\{case\}|\*\*/|\*|\?)", template)
    out, seen_case = [], False
    for part in parts:
        if part == "{case}":
            out.append("(?P=case)" if seen_case else "(?P<case>[^/]+?)")
            seen_case = True
        elif part == "**/":
            out.append("(?:[^/]+/)*")
        elif part == "*":
            out.append("[^/]*")
        elif part == "?":
            out.append("[^/]")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out))


def _glob(root: Path, template: str) -> list[Path]:
    pattern = template.replace("{case}", "*")
    if not any(ch in pattern for ch in "*?["):
        path = root / pattern
        return [path] if path.exists() else []
    return sorted(root.glob(pattern))


def _resolve_one(root: Path, template: str, case_id: str, what: str) -> Optional[Path]:
    concrete = template.replace("{case}", case_id)
    matches = _glob(root, concrete)
    if len(matches) > 1:
        shown = ", ".join(str(m.relative_to(root)) for m in matches[:3])
        raise UNetPlusPlusError(
            f"Case '{case_id}': the {what} pattern '{concrete}' matches {len(matches)} files "
            f"({shown}, ...); make it match one."
        )
    return matches[0] if matches else None


def find_pattern_cases(
    dataset: DatasetDescription, source: SourceDescription, problems: Optional[list[str]] = None
) -> list:
    root = dataset.root
    first = source.images[0]
    regex = _pattern_regex(first)
    found: dict[str, Path] = {}
    for path in _glob(root, first):
        relative = path.relative_to(root).as_posix()
        match = regex.fullmatch(relative)
        if match is None:
            continue
        case_id = match.groupdict().get("case") or source.name
        found.setdefault(case_id, path)
    cases = [
        collect_case(problems, _pattern_case, dataset, source, i, p)
        for i, p in sorted(found.items())
    ]
    return [case for case in cases if case is not None]


def _pattern_case(
    dataset: DatasetDescription, source: SourceDescription, case_id: str, first_path: Path
) -> CaseFiles:
    root = dataset.root
    images = [first_path]
    for channel, template in zip(dataset.channels[1:], source.images[1:]):
        path = _resolve_one(root, template, case_id, f"'{channel.name}' channel")
        if path is None:
            raise UNetPlusPlusError(
                f"Case '{case_id}' has {len(images)} of the {len(dataset.channels)} channels "
                f"({', '.join(c.name for c in dataset.channels)}): no file matches "
                f"'{template.replace('{case}', case_id)}' for channel '{channel.name}'."
            )
        images.append(path)
    label = _resolve_one(root, source.label, case_id, "label")
    if label is None:
        raise UNetPlusPlusError(
            f"Case '{case_id}' has no label file: nothing matches "
            f"'{source.label.replace('{case}', case_id)}' in {root}."
        )
    table = None
    if source.color_table:
        table = _resolve_one(root, source.color_table, case_id, "colour table")
        if table is None:
            raise UNetPlusPlusError(
                f"Case '{case_id}': colour table "
                f"'{source.color_table.replace('{case}', case_id)}' not found in {root}."
            )
    return CaseFiles(
        case_id=case_id,
        patient_id=patient_id(case_id, dataset.patient_regex),
        images=images,
        label=label,
        source=source,
        color_table=table,
    )
