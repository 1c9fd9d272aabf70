"""Put an engine ``LabelVolume`` into a ``vtkMRMLSegmentationNode``.

One segment per manifest label, with the manifest's name, colour and standard terminology. The
segments share one binary labelmap (the source representation) on exactly the input volume's
voxels, and the node's reference geometry is the input volume, so Segment Editor edits them at
full resolution.

User edits are never overwritten: segments of the same name are replaced only when
``replace_existing`` is true, and even then only a segment still exactly as the engine wrote it,
or only resampled onto a finer grid since (segment_fingerprint): one the user has edited since,
or made, is kept under a new name
("liver (edited)") beside the new result. Without ``replace_existing`` the result goes into a
new node.

Nor are patients mixed: a node bound to another volume (segmentation_binding: its reference
volume, or without one its reference geometry) never receives segments; the result goes into
a new node for the segmented volume, and the caller is told (``rebound``). A node bound to
nothing (a new, empty segmentation) is bound to the segmented volume. A node whose grid the
user chose in Segment Editor ("Specify geometry"; segmentation_binding.user_grid) takes the
result resampled onto that grid, nearest neighbour and padded to hold all of it, as Slicer's
vtkSegmentationModifier resamples a segment on its first edit (``regridded``). Each write
records the volume's grid on the node (segmentation_binding.remember_volume_grid).
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

import slicer
import vtk

from ..engine.manifest import terminology_entry_string
from ..engine.volume import LabelVolume
from ..errors import UNetPlusPlusError
from .geometry import in_volume_index_space, oriented_image_from_labels
from .segment_fingerprint import is_unchanged, stamp
from .segmentation_binding import other_volume_binding, remember_volume_grid, user_grid


def binary_labelmap_name() -> str:
    return slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()


def segment_names(segmentation_node) -> list[str]:
    segmentation = segmentation_node.GetSegmentation()
    count = segmentation.GetNumberOfSegments()
    return [segmentation.GetNthSegment(i).GetName() for i in range(count)]


def next_numbered_name(segmentation_node, base: str) -> str:
    """``"<base> N"`` with N one more than the largest N already in the node (for nodules)."""
    pattern = re.compile(rf"^{re.escape(base)} (\d+)$")
    matches = (pattern.match(name) for name in segment_names(segmentation_node))
    used = [int(m.group(1)) for m in matches if m]
    return f"{base} {max(used, default=0) + 1}"


def edited_segments(segmentation_node, names) -> list[str]:
    """The names among ``names`` of which the node has a segment that a replacing rerun keeps:
    one the user edited since the engine wrote it, or made, i.e. without a matching
    fingerprint (:func:`edited_segment_ids`)."""
    if segmentation_node is None:
        return []
    names = list(names)
    segmentation = segmentation_node.GetSegmentation()
    edited = {
        segmentation.GetSegment(i).GetName() for i in edited_segment_ids(segmentation_node, names)
    }
    return [name for name in names if name in edited]


def edited_segment_ids(segmentation_node, names) -> list[str]:
    """The IDs of every segment named one of ``names`` that a replacing rerun keeps (edited or
    made by the user). Every segment of a name is checked: Slicer lets two segments share one
    (``GetSegmentIdBySegmentName`` gives one of them)."""
    segmentation = segmentation_node.GetSegmentation()
    representation = binary_labelmap_name()
    wanted = set(names)
    return [
        segmentation.GetNthSegmentID(i)
        for i in range(segmentation.GetNumberOfSegments())
        if segmentation.GetNthSegment(i).GetName() in wanted
        and not is_unchanged(segmentation.GetNthSegment(i), representation)
    ]


def kept_name(segmentation_node, name: str) -> str:
    """``"<name> (edited)"``, numbered when taken: the new name of a kept edited segment."""
    taken = set(segment_names(segmentation_node))
    candidate, number = f"{name} (edited)", 2
    while candidate in taken:
        candidate, number = f"{name} (edited {number})", number + 1
    return candidate


def _check_source_is_labelmap(segmentation_node) -> None:
    """Segments are written as binary labelmaps: a node whose source representation is
    another (closed surface) cannot take them (vtkSegmentation.AddSegment fails). An empty
    node is switched to binary labelmap; one with segments is refused before anything changes
    (tester 13: its segments were renamed '(edited)', then the run failed with RuntimeError).
    Raises :class:`UNetPlusPlusError`."""
    segmentation = segmentation_node.GetSegmentation()
    if hasattr(segmentation, "GetSourceRepresentationName"):
        source = segmentation.GetSourceRepresentationName()
    else:  # "Master" before Slicer 5.4
        source = segmentation.GetMasterRepresentationName()
    if source == binary_labelmap_name():
        return
    if segmentation.GetNumberOfSegments() == 0:
        segmentation_node.SetSourceRepresentationToBinaryLabelmap()
        return
    raise UNetPlusPlusError(
        f"Segmentation '{segmentation_node.GetName()}' stores its segments as {source.lower()} "
        "(its source representation), and UNet++ writes voxels (binary labelmap); choose "
        "'Create new segmentation' as output, or make binary labelmap its source first "
        "(Segmentations module, Representations)."
    )


def onto_reference_grid(image, segmentation_node):
    """``image`` (a labelmap ``vtkOrientedImageData``) resampled onto the lattice of the
    segmentation's reference geometry: nearest neighbour, the extent padded to hold all of the
    image's labelled voxels and then cropped to them (as Slicer's segment modifier resamples a
    segment to the editing geometry). Raises RuntimeError when Slicer cannot resample it."""
    name = slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
    reference = slicer.vtkOrientedImageData()
    text = segmentation_node.GetSegmentation().GetConversionParameter(name)
    if not slicer.vtkSegmentationConverter.DeserializeImageGeometry(text, reference, False):
        raise RuntimeError(f"unreadable reference geometry of {segmentation_node.GetID()}")
    resampled = slicer.vtkOrientedImageData()
    if image.IsEmpty():  # nothing labelled: an empty image on the segmentation's lattice
        resampled.DeepCopy(image)
        matrix = vtk.vtkMatrix4x4()
        reference.GetImageToWorldMatrix(matrix)
        resampled.SetImageToWorldMatrix(matrix)
        return resampled
    resample = slicer.vtkOrientedImageDataResample
    if not resample.ResampleOrientedImageToReferenceOrientedImage(
        image, reference, resampled, False, True
    ):
        raise RuntimeError(f"could not resample the result onto {segmentation_node.GetID()}")
    extent = [0, -1, 0, -1, 0, -1]
    resample.CalculateEffectiveExtent(resampled, extent)
    cropped = slicer.vtkOrientedImageData()
    resample.CopyImage(resampled, cropped, extent)  # with the directions
    return cropped


def new_segmentation_node(scene, reference_volume_node, name: str):
    """An empty segmentation node in ``scene`` whose reference geometry is the volume's grid."""
    node = slicer.vtkMRMLSegmentationNode()
    node.SetName(scene.GenerateUniqueName(name))
    scene.AddNode(node)
    node.CreateDefaultDisplayNodes()
    node.SetSourceRepresentationToBinaryLabelmap()
    node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume_node)
    return node


def write_segments(
    labels: LabelVolume,
    reference_volume_node,
    segmentation_node=None,
    replace_existing: bool = False,
    names: Mapping[int, str] | None = None,
    node_name: str | None = None,
    values: Sequence[int] | None = None,
    crop_to_content: bool = False,
    kept: list | None = None,
    rebound: list | None = None,
    written: list | None = None,
    regridded: list | None = None,
):
    """Write ``labels`` as segments; return the node that received them.

    - ``segmentation_node`` None: a new node named ``node_name`` is added to the volume's scene.
    - an existing node without segments of the same names: the segments are added to it.
    - an existing node with such segments: they are replaced when ``replace_existing``, except
      those :func:`edited_segments` returns, which are renamed by :func:`kept_name` and kept;
      otherwise a new node is created and the existing node is left untouched.

    ``names`` overrides segment names by label value (e.g. "nodule 2"); ``values`` restricts
    the labels written (default: every label of the manifest, even if empty in this result).
    ``crop_to_content``: store the labelmap with the smallest extent that holds its voxels (one
    nodule per click; see geometry.oriented_image_from_labels).
    ``kept``: a list that receives ``(name, new name)`` for each edited segment kept.
    ``rebound``: a list that receives ``(node name, reason)`` when ``segmentation_node`` belongs
    to another volume (:func:`.segmentation_binding.other_volume_binding`): the segments then
    go into a new node, and that node is left untouched.
    ``written``: a list that receives the segment ID of each segment written, in label order.
    ``regridded``: a list that receives ``(node name, (i, j, k) spacing in mm)`` when the node's
    grid is one the user chose (:func:`.segmentation_binding.user_grid`): the segments are
    then written resampled onto it (:func:`onto_reference_grid`).
    """
    scene = reference_volume_node.GetScene()
    if scene is None:
        raise UNetPlusPlusError(f"Volume '{reference_volume_node.GetName()}' is not in a scene.")
    specs = [spec for spec in labels.labels if values is None or spec.value in values]
    wanted = {spec.value: (names or {}).get(spec.value, spec.name) for spec in specs}
    node_name = node_name or f"{reference_volume_node.GetName()} segmentation"

    if segmentation_node is not None:
        reason = other_volume_binding(segmentation_node, reference_volume_node)
        if reason is not None:  # another patient's, or another grid's: never add to it
            if rebound is not None:
                rebound.append((segmentation_node.GetName(), reason))
            segmentation_node = None
    if segmentation_node is not None:
        if segmentation_node.GetParentTransformNode() is not None:
            raise UNetPlusPlusError(
                f"Segmentation '{segmentation_node.GetName()}' is under a transform; choose "
                "'Create new segmentation' as output or harden its transform first."
            )
        _check_source_is_labelmap(segmentation_node)
        clash = set(wanted.values()) & set(segment_names(segmentation_node))
        if clash and not replace_existing:
            segmentation_node = None  # keep the user's segments: write a new node instead
    if segmentation_node is None:
        segmentation_node = new_segmentation_node(scene, reference_volume_node, node_name)
    elif not segmentation_node.GetSegmentation().GetConversionParameter(
        slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
    ):
        segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume_node)

    regrid = user_grid(segmentation_node, reference_volume_node)
    # cropped before resampling: a finer grid costs the result's box, not the whole volume's
    shared_labelmap = oriented_image_from_labels(labels, crop_to_content=crop_to_content or regrid)
    if not regrid:  # on the volume's voxels, indexed as the volume (and Slicer) index them
        in_volume_index_space(shared_labelmap, reference_volume_node)
    else:
        shared_labelmap = onto_reference_grid(shared_labelmap, segmentation_node)
        if regridded is not None:
            spacing = tuple(float(v) for v in shared_labelmap.GetSpacing())
            regridded.append((segmentation_node.GetName(), spacing))
    representation = binary_labelmap_name()
    terminology_tag = slicer.vtkSegment.GetTerminologyEntryTagName()
    segmentation = segmentation_node.GetSegmentation()
    edited = edited_segment_ids(segmentation_node, wanted.values())
    was_modifying = segmentation_node.StartModify()
    try:
        for segment_id in edited:  # the user's version stays, under a name that says so
            segment = segmentation.GetSegment(segment_id)
            name, new_name = segment.GetName(), kept_name(segmentation_node, segment.GetName())
            segment.SetName(new_name)
            if kept is not None:
                kept.append((name, new_name))
        for spec in specs:
            name = wanted[spec.value]
            segment = slicer.vtkSegment()
            segment.SetName(name)
            segment.SetColor(*[float(c) for c in spec.color][:3])
            segment.SetLabelValue(int(spec.value))
            # SetTag, not SetTerminology: vtkSegment.SetTerminology first ships in Slicer 5.10
            # (Libs/vtkSegmentationCore/vtkSegment.h); SetTag writes the same tag in 5.8
            segment.SetTag(terminology_tag, terminology_entry_string(spec))
            segment.AddRepresentation(representation, shared_labelmap)
            segment_id, insert_before = "", ""
            existing_id = segmentation.GetSegmentIdBySegmentName(name)
            if existing_id:  # only reached when replace_existing: keep its id and position
                index = segmentation.GetSegmentIndex(existing_id)
                if index + 1 < segmentation.GetNumberOfSegments():
                    insert_before = segmentation.GetNthSegmentID(index + 1)
                segmentation.RemoveSegment(existing_id)
                segment_id = existing_id
            if not segmentation.AddSegment(segment, segment_id, insert_before):
                raise RuntimeError(f"could not add segment {name!r} to {segmentation_node.GetID()}")
            stamp(segment, representation)
            if written is not None:
                written.append(segmentation.GetSegmentIdBySegment(segment))
        remember_volume_grid(segmentation_node, reference_volume_node)
    finally:
        segmentation_node.EndModify(was_modifying)
    return segmentation_node
