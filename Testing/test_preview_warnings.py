"""The PNG preview carries the run's warnings (preview.py): an amber banner above the slices,
drawn into the image a clinician looks at, and the ``unetpp_warnings`` text chunk; a run
without warnings has neither (the preview carried none of the printed warnings: review cli20)."""

from __future__ import annotations

import io
import json
import shutil
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from helpers import make_sphere_image
from PIL import Image
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.preview import PANEL_SIZE, WARNING_FILL, WARNINGS_KEY


def _model(sphere_model: Path, folder: Path) -> Path:
    """The sphere model with a plausible liver volume of 0-15 ml (its 12 mm ball: 7.2 ml)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("model.json", "weights.safetensors"):
        shutil.copy(sphere_model.parent / name, folder / name)
    data = json.loads((folder / "model.json").read_text())
    data["postprocess"]["plausible_ml"] = {"liver": [0, 15]}
    (folder / "model.json").write_text(json.dumps(data))
    return folder / "model.json"


def _run(model: Path, folder: Path, slice_mm: float) -> tuple[dict, Image.Image]:
    """Segment the ball saved with ``slice_mm`` as its z step (6 mm: 3x the volume, warned)."""
    image = make_sphere_image((32, 32, 32), (2.0, 2.0, 2.0), radius_mm=12.0)
    image.SetSpacing((2.0, 2.0, slice_mm))
    path = folder / f"ball_{slice_mm:g}.nrrd"
    sitk.WriteImage(image, str(path))
    png = folder / f"ball_{slice_mm:g}.png"
    argv = ["segment", str(path), "--model", str(model), "--depth", "1", "--device", "cpu"]
    stream = io.StringIO()
    with redirect_stdout(stream):
        code = main([*argv, "-o", str(folder / "out.nii.gz"), "--preview", str(png), "--overwrite",
                     "--progress-json"])  # fmt: skip
    assert code == 0
    result = json.loads(stream.getvalue().splitlines()[-1])["result"]
    return result, Image.open(png)


def _amber_rows(image: Image.Image) -> int:
    """How many rows from the top are the banner's: amber in the left margin (x = 2)."""
    column = np.asarray(image.convert("RGB")).astype(int)[:, 2]
    amber = np.all(np.abs(column - np.asarray(WARNING_FILL)) <= 8, axis=-1)
    return int(np.argmin(amber)) if not amber.all() else len(amber)


def test_a_warned_run_draws_its_warnings_into_the_preview(sphere_model, tmp_path):
    model = _model(sphere_model, tmp_path / "model")
    clean, clean_png = _run(model, tmp_path, 2.0)
    assert clean["warnings"] == []
    assert WARNINGS_KEY not in clean_png.text and _amber_rows(clean_png) == 0

    warned, warned_png = _run(model, tmp_path, 6.0)
    assert any("plausible range" in w for w in warned["warnings"]), warned["warnings"]
    assert warned_png.text[WARNINGS_KEY].splitlines() == [
        " ".join(w.split()) for w in warned["warnings"]
    ]
    banner = _amber_rows(warned_png)
    assert banner >= 14 * 2  # the heading and at least one warning line
    # the slices and the legend follow the banner, as large as without it
    assert warned_png.size == (clean_png.size[0], clean_png.size[1] + banner)
    assert warned_png.size[1] > PANEL_SIZE + banner
