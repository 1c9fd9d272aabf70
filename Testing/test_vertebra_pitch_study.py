"""scripts/vertebra_pitch_margins.py (docs/INPUT_CHECKS_PITCH.md): the estimators of the
not-shipped vertebral ruler find the pitch of an ideal spine, scaled with the header, so the
negative result on the shared CTs is about real anatomy, not a broken estimator."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "vertebra_pitch_margins.py"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("vertebra_pitch_margins", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("method", ["measure_pitch", "slice_profile_pitch", "canal_pitch"])
@pytest.mark.parametrize("scale", [1.0, 0.5, 2.0])
def test_ideal_spine_pitch_follows_the_header(study, method, scale):
    found = getattr(study, method)(study.phantom(30.0), [3.0, 3.0, 3.0 * scale], np.eye(3))
    assert found.clear, found
    assert found.pitch_mm == pytest.approx(30.0 * scale, rel=0.05)
    warned = study.pitch_warning(found) is not None
    assert warned == (scale == 2.0)  # 15 mm stays above the 14 mm limit: the ceiling


def test_warning_names_pitch_spacing_and_factor(study):
    found = study.measure_pitch(study.phantom(30.0), [3.0, 3.0, 6.0], np.eye(3))
    text = study.pitch_warning(found, "ct.nii.gz")
    assert "repeat every 59 mm according to the header, where 20-45 mm is expected" in text
    assert "slice spacing (6 mm) is probably wrong by about a factor 2.0" in text


def test_no_spine_and_too_few_slices_give_no_evidence(study):
    torso = study.phantom(30.0)
    no_spine = np.where(torso >= 80.0, 40.0, torso).astype(np.float32)  # soft tissue only
    for method in (study.measure_pitch, study.slice_profile_pitch, study.canal_pitch):
        assert not method(no_spine, [3.0, 3.0, 3.0], np.eye(3)).clear
        assert method(torso[:8], [3.0, 3.0, 3.0], np.eye(3)).pitch_mm is None  # 24 mm


def test_short_series_artefact_is_reproduced(study):
    """Why nothing ships (docs/INPUT_CHECKS_PITCH.md): 12 slices of an ideal spine (36 mm,
    about one vertebra) give a 'clear' 9 mm period at the short end of the search."""
    found = study.measure_pitch(study.phantom(30.0)[:12], [3.0, 3.0, 3.0], np.eye(3))
    assert found.clear and found.pitch_mm == pytest.approx(9.0)
    assert study.pitch_warning(found) is not None
