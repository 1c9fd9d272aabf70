"""Image headers and intensities of a dataset's cases: the modality guess and the median spacing."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from ..errors import UNetPlusPlusError
from .dataset_types import CaseFiles


def guess_modality(path: Path) -> str:
    """CT when the image holds Hounsfield-like air (below -500), else MR."""
    import numpy as np
    import SimpleITK as sitk

    from ..engine.image_read import read_image

    image = read_image(path)
    array = sitk.GetArrayViewFromImage(image)
    return "CT" if float(np.percentile(array[:: max(1, array.shape[0] // 8)], 1)) < -500 else "MR"


def spread_sample(items: Sequence, count: int = 5) -> list:
    """At most ``count`` of ``items``, evenly spread from the first to the last."""
    if len(items) <= count:
        return list(items)
    return [items[round(i * (len(items) - 1) / (count - 1))] for i in range(count)]


def guess_dataset_modality(images: Sequence[tuple[str, Path]]) -> str:
    """'CT' or 'MR' by a majority of :func:`guess_modality` over ``images`` ((case id, image
    file), a spread sample of the cases), so that one odd case (a label map or an MR saved as a
    case's image) does not decide for the others: those are then refused by the dataset check
    with their own reason. Unreadable files are left to that check too.

    Raises UNetPlusPlusError when the readable cases split evenly between CT and MR, or when
    none is readable (the first one's reading error)."""
    votes: dict[str, list[str]] = {"CT": [], "MR": []}
    first_error: Optional[UNetPlusPlusError] = None
    for case_id, path in images:
        try:
            votes[guess_modality(path)].append(case_id)
        except UNetPlusPlusError as error:
            first_error = first_error or error
    ct, mr = votes["CT"], votes["MR"]
    if not ct and not mr:
        if first_error is not None:
            raise first_error
        raise UNetPlusPlusError("No case image to guess the modality from.")
    if len(ct) == len(mr):
        raise UNetPlusPlusError(
            f"Cannot tell the modality of the cases: {', '.join(ct)} look(s) like CT (air below "
            f"-500 HU), {', '.join(mr)} like MR. Give --modality CT or --modality MR; the cases "
            "of the other kind are then refused, each with its reason."
        )
    return "CT" if len(ct) > len(mr) else "MR"


def median_spacing(cases: Sequence[CaseFiles]) -> tuple[float, float, float]:
    """Median voxel spacing (x, y, z) of the cases' first channels, from their headers."""
    import numpy as np
    import SimpleITK as sitk

    spacings = []
    for case in cases:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(case.images[0]))
        try:
            reader.ReadImageInformation()
        except RuntimeError as error:
            raise UNetPlusPlusError(
                f"Case '{case.case_id}': cannot read {case.images[0]} (truncated, corrupt or "
                "not a supported image)."
            ) from error
        spacings.append([abs(v) for v in reader.GetSpacing()[:3]])  # as ITK reads it
    return tuple(float(v) for v in np.median(np.asarray(spacings), axis=0))  # type: ignore[return-value]
