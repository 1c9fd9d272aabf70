"""Image headers and intensities of a dataset's cases: the modality guess and the median spacing."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

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
