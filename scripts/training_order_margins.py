"""How many other cases the leave-one-out sequence-order check of training needs.

``training/dataset_mr_checks.py`` checks each case of a multi-channel MR dataset against the
channel fingerprint of the other cases when no ``--init`` model gives one. On the 18 shared
BraTS 2018 cases (all correctly ordered), this scores every case against the other 17, then
random pools of N cases (each case against the rest of its pool) for the false alarms, then
pools with one case in a wrong order (8 of the 23 wrong orders, on 4 cases of each pool) for
how often it is caught and how often the correct cases of the pool (whose reference now holds
the swapped case) are refused or warned. The decision is ``channel_order``'s (refused: gap above
``REFUSE_GAP`` with the best order at distance at most ``MAX_FIT``; warned: gap above
``WARN_GAP``). Usage::

    PYTHONPATH=UNetPlusPlus python scripts/training_order_margins.py ../shared/data
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
from UNetPlusPlusLib.engine import channel_order as co
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.sanity import channel_samples

NAMES = ("FLAIR", "T1", "T1ce", "T2")
SUFFIXES = ("flair", "t1", "t1ce", "t2")


def fingerprints(shared: Path) -> dict:
    """Case name -> the fingerprint of its strided samples (what the training check sees)."""
    found = {}
    for folder in sorted((shared / "brain-tumor" / "brats2018").glob("Brats18_*")):
        paths = [folder / f"{folder.name}_{s}.nii.gz" for s in SUFFIXES]
        found[folder.name] = co.fingerprint(channel_samples(list(read_volume(paths, NAMES).array)))
    return found


def verdict(found: co.Fingerprint, others: list) -> str:
    """'refused', 'warned' or '' for ``found`` against the reference of ``others``."""
    result = co.compare(found, co.build_reference(others))
    fits = float(result.distances.min()) <= co.MAX_FIT
    if result.gap > co.REFUSE_GAP and fits:
        return "refused"
    return "warned" if result.gap > co.WARN_GAP and fits else ""


def reordered(found: co.Fingerprint, order) -> co.Fingerprint:
    index = list(order)
    return co.Fingerprint(found.spearman[np.ix_(index, index)], found.skewness[index], 0)


def main(shared: Path) -> None:
    prints = fingerprints(shared)
    ids = list(prints)
    gaps = []
    for case in ids:
        reference = co.build_reference([prints[o] for o in ids if o != case])
        gaps.append(co.compare(prints[case], reference).gap)
    print(f"{len(ids)} cases, each against the other {len(ids) - 1}: largest gap {max(gaps):.2f}")
    for size in (4, 9, 11, 12):
        rng = np.random.default_rng(size)
        said = {"refused": 0, "warned": 0, "": 0}
        for _ in range(200):
            pool = list(rng.choice(ids, size, replace=False))
            for case in pool:
                said[verdict(prints[case], [prints[o] for o in pool if o != case])] += 1
        print(
            f"pools of {size} ({size - 1} others), correct order: {sum(said.values())} checks, "
            f"{said['refused']} refused, {said['warned']} warned"
        )
    wrong = list(itertools.permutations(range(4)))[1::3]
    for size in (12, len(ids)):
        rng = np.random.default_rng(100 + size)
        caught = swapped = refused = warned = checked = 0
        for _ in range(20 if size < len(ids) else 1):
            pool = list(rng.choice(ids, size, replace=False)) if size < len(ids) else ids
            for bad in pool[:4]:
                for order in wrong:
                    given = dict(prints)
                    given[bad] = reordered(prints[bad], order)
                    for case in pool:
                        said = verdict(given[case], [given[o] for o in pool if o != case])
                        if case == bad:
                            swapped += 1
                            caught += said == "refused"
                        else:
                            checked += 1
                            refused += said == "refused"
                            warned += said == "warned"
        print(
            f"pools of {size} with one case in a wrong order: refused {caught} of {swapped}; "
            f"the correct cases: {refused} refused, {warned} warned of {checked}"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data"))
