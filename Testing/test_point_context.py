"""What changed since a nodule point was placed (widget/point_queue.RunContext.change), as the
panel's status and log say it when the point is not run: a volume removed from the scene or no
task chosen reads "none", not "''" ("the input volume is now '' (was 'chest')")."""

from __future__ import annotations

import pytest
from UNetPlusPlusLib.widget.point_queue import RunContext

PLACED = RunContext("lung-nodule-ct", ("vtkMRMLScalarVolumeNode1",), ("chest",))


@pytest.mark.parametrize(
    "now, said",
    [
        (RunContext("liver-ct", PLACED.volumes, PLACED.names),
         "the task is now 'liver-ct' (was 'lung-nodule-ct')"),
        (RunContext("", (), ()), "the task is now none (was 'lung-nodule-ct')"),
        (RunContext(PLACED.task, ("",), ("",)), "the input volume is now none (was 'chest')"),
        (RunContext(PLACED.task, ("vtkMRMLScalarVolumeNode2",), ("chest 2",)),
         "the input volume is now 'chest 2' (was 'chest')"),
        (RunContext(PLACED.task, PLACED.volumes, ("renamed",)), ""),  # a name is not compared
    ],
)  # fmt: skip
def test_the_change_names_what_is_chosen_now(now, said):
    assert PLACED.change(now) == said
