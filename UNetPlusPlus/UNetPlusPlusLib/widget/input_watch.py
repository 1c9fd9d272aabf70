"""The panel watches its (first) input volume's grid: a volume cropped or resampled in place
while the module is open releases an output segmentation made for the old grid at once.

A mixin of :class:`~UNetPlusPlusLib.widget.panel_widget.UNetPlusPlusPanel` (with
``addObserver``/``removeObserver`` of slicer.util.VTKObservationMixin, and
``releaseOtherVolumesOutput`` of run_control.py). The panel checks the output's binding
(adapter/segmentation_binding.py) when the input volume or the task changes; a grid change of
the same volume node is none of those, so before it was caught only when a result was
written (a new node, with a warning), after the output selector had kept showing the old node.

The events, from Slicer's MRML (Libs/MRML/Core): ``vtkMRMLVolumeNode::ImageDataModifiedEvent``
(new image data, or the image's extent or voxels changed), ``vtkCommand::ModifiedEvent``
(``SetIJKToRASMatrix``, ``SetOrigin``, ``SetSpacing`` and ``SetAndObserveImageData`` call
``Modified()``) and ``vtkMRMLTransformableNode::TransformModifiedEvent`` (the parent transform
moved the world grid). They also fire for voxel edits, renames and display changes: only a
change of the grid (IJK-to-world matrix, voxel counts) checks the output again.
"""

from typing import Optional

import slicer
import vtk


def grid_key(volume) -> Optional[tuple]:
    """The volume's world grid as a comparable key, or None (no volume, or no image data)."""
    from UNetPlusPlusLib.adapter.segmentation_binding import volume_grid

    if volume is None or volume.GetImageData() is None:
        return None
    matrix, counts = volume_grid(volume)
    return matrix.round(6).tobytes(), counts


class InputWatch:
    """Observes the first input volume; see the module docstring."""

    _watchedVolume = None
    _watchedScene = None
    _watchedGrid: Optional[tuple] = None

    @staticmethod
    def _volumeEvents() -> tuple:
        return (
            vtk.vtkCommand.ModifiedEvent,
            slicer.vtkMRMLVolumeNode.ImageDataModifiedEvent,
            slicer.vtkMRMLTransformableNode.TransformModifiedEvent,
        )

    def watchInputVolume(self, volume) -> None:
        """Observe ``volume`` (None: nothing) instead of the volume watched before; the old
        one's observers are removed, and the watch ends when the volume is removed from its
        scene (also while the module is not shown and the parameter node is not observed), so
        a deleted volume is not kept alive."""
        if volume is self._watchedVolume:
            return
        old, removed = self._watchedVolume, slicer.vtkMRMLScene.NodeRemovedEvent
        if old is not None:
            for event in self._volumeEvents():
                self.removeObserver(old, event, self.onInputVolumeModified)
            if self._watchedScene is not None:
                self.removeObserver(self._watchedScene, removed, self.onWatchedSceneNodeRemoved)
        self._watchedVolume = volume
        self._watchedGrid = grid_key(volume)
        self._watchedScene = volume.GetScene() if volume is not None else None
        if volume is not None:
            for event in self._volumeEvents():
                self.addObserver(volume, event, self.onInputVolumeModified)
        if self._watchedScene is not None:  # deleted while the module is not shown, too
            self.addObserver(self._watchedScene, removed, self.onWatchedSceneNodeRemoved)

    @vtk.calldata_type(vtk.VTK_OBJECT)
    def onWatchedSceneNodeRemoved(self, caller, event, node) -> None:
        """The watched volume left the scene: stop watching it (its voxels are freed)."""
        if node is not None and node is self._watchedVolume:
            self.watchInputVolume(None)

    def onInputVolumeModified(self, caller, event) -> None:
        """The watched volume changed: when its grid did, check the output's binding again
        (run_control.releaseOtherVolumesOutput: "Create new segmentation" and one message
        when the output was made for the old grid)."""
        grid = grid_key(caller)
        if caller is not self._watchedVolume or grid == self._watchedGrid:
            return
        self._watchedGrid = grid
        if grid is None:  # the image data was removed: nothing to compare with
            return
        self._outputCheckedFor = None  # the same volume and task: check again all the same
        self.releaseOtherVolumesOutput()
