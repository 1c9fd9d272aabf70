"""The plausibility checks of a model's result, run on each training case's labels.

A label drawn on the wrong organ, a mask mirrored left-right, a header with a 10x voxel volume
or a CT flipped front-back trains a model that learns the mistake, and nothing said so: a
fine-tune of the liver model on a "liver" label over the heart of a chest CT (502 ml) ran in
silence (fresh-user tester). At inference the engine checks its results against rules the
model declares; :class:`LabelChecks` runs the same engine functions (no copies of the rules) on
each training case, for the model this run writes:

- ``inference.anatomy`` (``engine/anatomy_check.py``, the --init model's): the label named like
  the anatomy (a liver: not between the lungs, not left of the body's midline, not below the
  image's top with no lung above), on the case's first CT channel;
- ``postprocess.plausible_ml`` (``engine/volume_plausibility.py``), per label: the dataset
  description's ranges, else the --init model's for its labels of the same name;
- the front-back orientation of every CT channel image (``engine/orientation_check.py``).

Each finding is a warning naming the case and the label; ``strict`` (``unetpp train
--strict-labels``) makes them problems of the dataset error instead (nothing trained). All work
on the engine's coarse grid (4 mm) or by counting voxels: measured cost in docs/TRAINING.md.
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Optional

import numpy as np

from ..engine import anatomy_check, orientation_check, volume_plausibility
from ..engine.volume import Volume
from ..errors import UNetPlusPlusError
from .dataset_types import DatasetDescription, normalized_name

#: What the warnings end with: the label, not a result, is to be checked.
ADVICE = (
    "Check the case's label and image before training on it (unetpp train --strict-labels "
    "refuses such a case)."
)


class LabelChecks:
    """The result checks the model of this run declares, on training labels.

    ``dataset``: channels and labels (values 1..K) of the run; ``init``: the ``--init``
    ModelManifest or None (its ``inference.anatomy`` and ``postprocess.plausible_ml``)."""

    def __init__(self, dataset: DatasetDescription, init=None) -> None:
        names = [label.name for label in dataset.labels]
        by_name = {normalized_name(n): (n, v) for v, n in enumerate(names, start=1)}
        ranges: dict[str, tuple[float, float]] = {}
        parent = (getattr(init, "postprocess", None) or {}).get(volume_plausibility.KEY) or {}
        for name, bounds in parent.items():
            if normalized_name(name) in by_name:
                ranges[by_name[normalized_name(name)][0]] = tuple(bounds)
        own = (dataset.postprocess or {}).get(volume_plausibility.KEY)
        if own:  # the dataset's ranges (dataset_json checked them when it was read)
            try:
                ranges.update(volume_plausibility.parse_ranges(own, names))
            except ValueError as error:
                raise UNetPlusPlusError(
                    f"Dataset description {dataset.origin or dataset.name}: "
                    f"'postprocess.plausible_ml' {error}."
                ) from error
        anatomy = (getattr(init, "inference", None) or {}).get("anatomy")
        target = by_name.get(normalized_name(anatomy)) if anatomy else None
        labels = [SimpleNamespace(name=n, value=v) for n, v in by_name.values()]
        self.anatomy = anatomy if target else None
        self.ranges = ranges
        channels = list(dataset.channels)
        self.ct = orientation_check.ct_channel(SimpleNamespace(channels=channels))
        self._volumes = SimpleNamespace(labels=labels, postprocess={"plausible_ml": ranges})
        self._anatomy = SimpleNamespace(
            channels=channels,
            labels=[SimpleNamespace(name=target[0], value=target[1])] if target else [],
            inference={"anatomy": anatomy},
        )
        self._orientation = SimpleNamespace(channels=channels)

    @property
    def active(self) -> bool:
        """Whether any check applies (a CT channel, a plausible range or an anatomy)."""
        return bool(self.ranges or self.anatomy or self.ct is not None)

    def check_case(self, image: Volume, labels: np.ndarray) -> list[str]:
        """Warnings (without the case name) for one case: ``image`` (C, z, y, x; CT in HU)
        and its model-class ``labels`` (z, y, x, values 1..K) on the image's grid."""
        found: list[str] = []
        if self.ct is not None:
            said = orientation_check.check_orientation(self._orientation, image)
            found += [_image_said(w) for w in said]
        if self.ranges:
            said = volume_plausibility.check_volumes(self._volumes, labels, image.spacing)
            found += [_label_said(w) for w in said]
        if self.anatomy and self.ct is not None:
            said, _ = anatomy_check.check_model_result(self._anatomy, image, labels, image.grid)
            found += [_label_said(w) for w in said]
        return found


def _label_said(message: str) -> str:
    """The engine's result warning, said of a training label."""
    message = re.sub(r"^The '([^']*)' segment", r"its label '\1'", message)
    for tail in ("Check the result before using it.", "Check the header and the result before "
                 "using this volume."):  # fmt: skip
        message = message.replace(tail, ADVICE)
    return message


def _image_said(message: str) -> str:
    """The engine's input warning, said of a training image."""
    message = message.replace("The model would segment a mirrored body", "A model trained on "
                              "it learns a mirrored body")  # fmt: skip
    message = re.sub(r"^Input '", "its image '", message)
    return message.replace(" and check the result.", ". " + ADVICE)


def label_checks(dataset: DatasetDescription, init=None) -> Optional[LabelChecks]:
    """:class:`LabelChecks` for the run, or None when no check applies."""
    checks = LabelChecks(dataset, init)
    return checks if checks.active else None
