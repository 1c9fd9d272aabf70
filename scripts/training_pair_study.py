"""The training-data sequence-order check (training/dataset_mr_checks.py) on a T1 <-> T1ce swap.

The 18 shared BraTS 2018 cases (``brats2018.json``'s), each one in turn given with T1 and T1ce
swapped among the 17 others in their right order: what ``CaseModelChecks.finish`` (each case
against the reference of the other cases, leave one out) says of the swapped case, with the
contrast pair in the reference (this code) and without it (the fingerprint alone, as before
session 15); and of the right cases (false alarms). The swapped case's fingerprint is its own
with rows and columns moved (the same numbers a fingerprint of the swapped samples gives,
``Testing/test_channel_order.py``). Usage::

    PYTHONPATH=UNetPlusPlus python scripts/training_pair_study.py ../shared/data
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path
from types import SimpleNamespace

from UNetPlusPlusLib.engine import channel_order as co
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.sanity import channel_samples
from UNetPlusPlusLib.training.dataset_mr_checks import CaseModelChecks

NAMES = ("FLAIR", "T1", "T1ce", "T2")
SWAP = (0, 2, 1, 3)


def main(shared: Path) -> None:
    prints = []
    for folder in sorted((shared / "brain-tumor" / "brats2018").glob("Brats18_*")):
        files = [folder / f"{folder.name}_{s}.nii.gz" for s in ("flair", "t1", "t1ce", "t2")]
        found = co.fingerprint(channel_samples(list(read_volume(files, NAMES).array)))
        prints.append((folder.name, found))
    dataset = SimpleNamespace(channels=[SimpleNamespace(name=n, modality="MR") for n in NAMES])
    tally = {"with the pair": collections.Counter(), "fingerprint alone": collections.Counter()}
    for index, (case, found) in enumerate(prints):
        for label in tally:
            checks = CaseModelChecks(dataset)
            checks.pair = checks.pair if label == "with the pair" else None
            checks.prints = list(prints)
            checks.prints[index] = (case, found.reordered(SWAP))
            problems, warnings = checks.finish()
            named = f"Case '{case}'"
            if any(p.startswith(named) for p in problems):
                tally[label]["swapped refused"] += 1
            elif any(w.startswith(named) for w in warnings):
                tally[label]["swapped warned"] += 1
            else:
                tally[label]["swapped silent"] += 1
            tally[label]["right cases refused"] += sum(not p.startswith(named) for p in problems)
            tally[label]["right cases warned"] += sum(not w.startswith(named) for w in warnings)
        print(case, flush=True)
    for label, counter in tally.items():
        print(f"{label}: " + ", ".join(f"{k} {counter[k]}" for k in sorted(counter)))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("../shared/data"))
