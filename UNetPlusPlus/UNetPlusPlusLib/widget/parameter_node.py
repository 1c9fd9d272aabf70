"""The panel's state (a parameterNodeWrapper), saved with the scene."""

from pathlib import Path
from typing import Annotated

from slicer import (
    vtkMRMLMarkupsFiducialNode,
    vtkMRMLMarkupsROINode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
)
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper

from UNetPlusPlusLib.adapter import panel
from UNetPlusPlusLib.adapter.training_panel import BUDGET_CHOICES

#: How many input-volume selectors the panel has (the brain tumour model needs four).
MAX_CHANNELS = 4


@parameterNodeWrapper
class UNetPlusPlusParameterNode:
    """The panel's state, saved with the scene.

    task - name of the model package (``model.json`` "name"); the task selector is filled from
        the installed manifests, so it is synchronised by the Widget rather than bound.
    depth - "auto", "1".."4" or "ensemble".
    tta - test-time augmentation: average mirrored passes (slower; the card gives the gain).
    channelCheck - refuse multi-channel MR inputs in the wrong sequence order
        (engine/channel_order.py); unchecked, ``--no-channel-check``.
    device - "auto", "cpu" or "cuda:N" (synchronised by the Widget: the GPUs vary by machine).
    inputVolume0..3 - one volume per model channel, in the manifest's channel order.
    roi - optional box that restricts inference.
    noduleSeeds - point list for prompted (lung nodule) models; each point is one nodule.
    interactive - segment each newly placed point at once.
    outputSegmentation - where results go; None creates a new segmentation.
    replaceExisting - replace segments of the same name in outputSegmentation (else a new node).
    exportDirectory, caseName - where "Export training case" writes.
    trainingDirectory - the "Train / fine-tune" cases folder ("Add current case" writes there and
        numbers the cases; by default the export folder). A parameter is bound to one widget
        only (parameterNodeWrapper keeps one widget per name), hence its own field.
    trainFromScratch - train new weights instead of fine-tuning the selected model.
    trainingChannelCheck - refuse training cases of multi-channel MR in the wrong sequence order
        (unchecked: ``unetpp train --no-channel-check``, a warning instead).
    trainingStrictLabels - refuse training cases whose labels fail the model's result checks
        (``unetpp train --strict-labels``; unchecked: warnings before the plan).
    trainingBudget - the training's time budget (``unetpp train --time-budget``).
    """

    task: str = ""
    depth: Annotated[str, Choice(list(panel.DEPTH_CHOICES))] = "auto"
    device: str = "auto"
    tta: bool = False
    channelCheck: bool = True
    inputVolume0: vtkMRMLScalarVolumeNode
    inputVolume1: vtkMRMLScalarVolumeNode
    inputVolume2: vtkMRMLScalarVolumeNode
    inputVolume3: vtkMRMLScalarVolumeNode
    roi: vtkMRMLMarkupsROINode
    noduleSeeds: vtkMRMLMarkupsFiducialNode
    interactive: bool = True
    outputSegmentation: vtkMRMLSegmentationNode
    replaceExisting: bool = False
    exportDirectory: Path = Path.home() / "UNetPlusPlus-training"
    caseName: str = "case001"
    trainingDirectory: Path = Path.home() / "UNetPlusPlus-training"
    trainFromScratch: bool = False
    trainingChannelCheck: bool = True
    trainingStrictLabels: bool = False
    trainingBudget: Annotated[str, Choice(list(BUDGET_CHOICES))] = "10m"
