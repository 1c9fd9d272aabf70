"""The input volume nodes of a run, one per model channel: matched to the manifest's channels,
read for the engine, checked, and those checks cached on the nodes' voxels and geometry.

:class:`.logic.SegmentationLogic` uses these before every run: :func:`channel_nodes` refuses a
wrong count, an empty channel, one volume in two channels and a labelmap node
(``panel.channel_input_problem``); :func:`check_channel_inputs` runs the input sanity checks;
:class:`CheckedInputs` runs them again only when the inputs or the model changed (issue 14).
Every refusal is a :class:`UNetPlusPlusError`; nothing here changes the scene.
"""

from __future__ import annotations

from typing import Sequence

from ..engine.manifest import ModelManifest
from ..engine.volume import Volume
from ..errors import UNetPlusPlusError
from .geometry import NativeImages, native_images_from_nodes, volume_from_nodes, world_ijk_to_ras
from .input_checks import check_nifti_spacing, check_scale, loaded_file, nifti_file_warnings
from .panel import channel_input_problem
from .voxel_version import voxels_version


def channel_nodes(volume_nodes: Sequence, manifest: ModelManifest) -> tuple[list, list[str]]:
    """The nodes and the manifest's channel names, in the manifest's order; refuses a wrong
    number of volumes, an empty channel, one volume in two channels or a labelmap node."""
    channels = [channel.name for channel in manifest.channels]
    nodes = list(volume_nodes)
    if len(nodes) != len(channels):
        raise UNetPlusPlusError(
            f"Model '{manifest.name}' needs {len(channels)} input volume(s) "
            f"({', '.join(channels)}); {len(nodes)} given."
        )
    problem = channel_input_problem(channels, nodes)
    if problem:
        raise UNetPlusPlusError(problem)
    return nodes, channels


def input_volume(volume_nodes: Sequence, manifest: ModelManifest) -> Volume:
    """The engine's float32 ``Volume`` (C, z, y, x; LPS) of the nodes, one channel each."""
    nodes, channels = channel_nodes(volume_nodes, manifest)
    return volume_from_nodes(nodes, channel_names=channels, labels=channels)


def input_images(volume_nodes: Sequence, manifest: ModelManifest) -> NativeImages:
    """The nodes' voxels in their own types (z, y, x each) on their shared grid."""
    nodes, channels = channel_nodes(volume_nodes, manifest)
    return native_images_from_nodes(nodes, labels=channels)


def input_key(volume_nodes: Sequence) -> tuple:
    """Identifies the voxels and geometry of the input nodes: their ids, a digest of their
    voxels (:func:`.voxel_version.voxels_version`: taken again only when the image data's
    modification time moved, and the same after a ``Modified()`` that changed no voxel) and
    their world matrices."""
    return tuple(
        (
            node.GetID(),
            world_ijk_to_ras(node).round(9).tobytes(),  # first: no image data is refused
            voxels_version(node),
        )
        for node in volume_nodes
    )


def check_channel_inputs(
    volume_nodes: Sequence, manifest: ModelManifest, channel_check: bool = True
) -> list[str]:
    """Input sanity on the nodes' voxels in their own types (no float32 copy of the volume
    on the GUI thread, issue 10), after the header of the NIfTI file a node was loaded
    from (its sform and qform, which the engine never sees: it gets the voxels). Returns the
    warnings; raises UNetPlusPlusError. ``channel_check`` False skips the sequence-order check
    of multi-channel MR models."""
    from ..engine.sanity import check_channels, check_sequence_order

    nodes, channels = channel_nodes(volume_nodes, manifest)
    images = input_images(volume_nodes, manifest)
    modalities = [channel.modality for channel in manifest.channels]
    check_nifti_spacing(nodes)  # ITK read 1 mm for a pixdim of 0 (tester 20)
    warnings = nifti_file_warnings(nodes)
    warnings += check_channels(images.arrays, images.grid, channels, modalities)
    check_scale(manifest, images.grid, nodes[0])  # a speck: the engine would refuse it
    return warnings + check_sequence_order(
        manifest, images.arrays, channel_check, images.grid.spacing
    )


class CheckedInputs:
    """The last inputs checked and their warnings: :meth:`warnings` checks again only when
    the nodes' voxels, geometry or transforms, the files they were loaded from, the model or
    ``channel_check`` changed: a second click on one CT skips the pass over the whole volume
    (issue 14)."""

    def __init__(self) -> None:
        self._last: tuple = (None, [])  # (inputs and model key, their sanity warnings)

    def warnings(
        self, volume_nodes: Sequence, manifest: ModelManifest, channel_check: bool = True
    ) -> list[str]:
        """The input sanity warnings (a copy); raises UNetPlusPlusError as
        :func:`check_channel_inputs` does, and then forgets the last inputs."""
        nodes, _ = channel_nodes(volume_nodes, manifest)
        transforms = tuple(
            (t.GetID(), t.GetMTime()) if t is not None else None
            for t in (node.GetParentTransformNode() for node in nodes)
        )
        key = (input_key(nodes), transforms, str(manifest.path), manifest.sha256)
        key += (channel_check, tuple(str(loaded_file(node)) for node in nodes))
        if self._last[0] != key:
            self._last = (None, [])
            self._last = (key, check_channel_inputs(volume_nodes, manifest, channel_check))
        return list(self._last[1])
