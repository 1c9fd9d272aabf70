"""Which points of a nodule point list have their segment already (MRML only, no Qt).

The record is kept on the point list itself, so it is saved with the scene:

- the node attribute :data:`SEGMENTED_ATTRIBUTE`: a JSON object, point ID -> ``[link, segment
  ID, ...]`` (the segments its run wrote), or ``null`` (segmented, which segment not known);
- one node reference per segmentation node those runs wrote into, from the point list, of role
  ``UNetPlusPlusSegmentation<n>`` (:data:`ROLE_PREFIX`); ``link`` is that role.

A node ID in the JSON would go stale: when a scene is imported into a non-empty scene, Slicer
gives the imported nodes new IDs where they clash and updates the node references to them
(``vtkMRMLScene::Import`` -> ``UpdateNodeReferences`` -> ``vtkMRMLNode::UpdateReferenceID``),
but never the text of an attribute. A reference also goes when its node is removed from the
scene (``vtkMRMLScene::RemoveNode`` -> ``vtkMRMLNode::UpdateReferences``); each role holds one
reference, so removing one node shifts no other point's link.

A point has its segment while one of the segments its run wrote is still in that node
(:func:`segmented_ids`): one whose segment was deleted (Segment Editor), or whose segmentation
node was removed, is Segment's to run again. Records of before still read: ``link`` a node ID
(looked up in the scene; turned into a reference at the next write), or a JSON list of point
IDs (segmented, no segment known).

Slicer API used (checked in Slicer's source, Libs/MRML/Core/vtkMRMLNode.cxx and
vtkMRMLScene.cxx): ``SetNodeReferenceID`` (one reference of a role; written to the scene file
as ``references="role:id;..."`` and read back for any role, ``ParseReferencesAttribute``),
``GetNodeReferenceID`` / ``GetNodeReference`` (None once the node is removed),
``RemoveNodeReferenceIDs``, ``GetNumberOfNodeReferenceRoles`` / ``GetNthNodeReferenceRole``;
``GetAttribute`` (None when unset), ``SetAttribute``, ``RemoveAttribute``; ``GetScene``,
``vtkMRMLScene::GetNodeByID``, ``vtkSegmentation::GetSegment`` (None for an ID not in it).
"""

from __future__ import annotations

import json
from typing import Iterable, Optional, Sequence

#: Node attribute of a point list: a JSON object, point ID -> ``[link, segment ID, ...]``
#: (``link``: a reference role of :data:`ROLE_PREFIX`, or the node ID of a record of before),
#: or ``null`` (not known: a record of before, a JSON list of point IDs, reads so).
SEGMENTED_ATTRIBUTE = "UNetPlusPlus.SegmentedPointIDs"

#: Node reference roles from the point list to the segmentation nodes its runs wrote into:
#: ``UNetPlusPlusSegmentation1``, ``UNetPlusPlusSegmentation2``, ... one node each.
ROLE_PREFIX = "UNetPlusPlusSegmentation"

Records = dict[str, Optional[list[str]]]


def segmented_ids(node) -> set[str]:
    """The IDs of the points of ``node`` (a markups node) that have their segment: recorded,
    and one of the segments their run wrote still in its segmentation node; a record without
    segments (of before) counts as having it."""
    done = set()
    for point_id, written in _records(node).items():
        if written is None:
            done.add(point_id)
            continue
        output = segmentation_of(node, written[0])
        segmentation = output.GetSegmentation() if hasattr(output, "GetSegmentation") else None
        if segmentation is not None and any(
            segmentation.GetSegment(s) is not None for s in written[1:]
        ):
            done.add(point_id)
    return done


def segmentation_of(node, link: str):
    """The node that ``link`` (of a record of ``node``) names: the node of that reference role,
    or, for a record of before, the node of that ID in ``node``'s scene; None if gone."""
    if link.startswith(ROLE_PREFIX):
        return node.GetNodeReference(link)
    scene = node.GetScene()
    return scene.GetNodeByID(link) if scene is not None else None


def point_segmentation(node, point_id: str):
    """The segmentation node the run of point ``point_id`` of ``node`` wrote into, or None (not
    recorded, not known, or removed since)."""
    written = _records(node).get(str(point_id))
    return segmentation_of(node, written[0]) if written else None


def mark_segmented(node, ids: Iterable[str], output=None, segment_ids: Sequence[str] = ()) -> None:
    """Record the points ``ids`` of ``node`` as segmented into ``output`` (a segmentation node
    in ``node``'s scene), segments ``segment_ids``; without them, as segmented for good (as of
    before). Links of before whose node is still in the scene become references."""
    records = _records(node)
    for written in records.values():  # node IDs of before: references from now on
        if written and not written[0].startswith(ROLE_PREFIX):
            found = segmentation_of(node, written[0])
            written[0] = _role_for(node, found, records) if found is not None else written[0]
    written = None
    if output is not None:
        written = [_role_for(node, output, records), *map(str, segment_ids)]
    records.update({str(i): written for i in ids})
    _set_records(node, records)


def keep_segmented(node, ids: set) -> None:
    """Forget the segmented points of ``node`` that are not in ``ids`` (deleted, or unplaced:
    placing a point again is a new click; Slicer gives a deleted point's ID to the next)."""
    records = _records(node)
    if set(records) - ids:
        _set_records(node, {k: v for k, v in records.items() if k in ids})


def _role_for(node, output, records: Records) -> str:
    """The reference role of ``node`` that links to ``output``; a new one (set) if none does.
    A new role's number is above every one in use or in the record: a record whose node was
    removed never comes to name another node."""
    roles = _roles(node) | {w[0] for w in records.values() if w and w[0].startswith(ROLE_PREFIX)}
    for role in sorted(roles):
        if node.GetNodeReferenceID(role) == output.GetID():
            return role
    numbers = [int(r[len(ROLE_PREFIX) :]) for r in roles if r[len(ROLE_PREFIX) :].isdigit()]
    role = f"{ROLE_PREFIX}{max(numbers, default=0) + 1}"
    node.SetNodeReferenceID(role, output.GetID())
    return role


def _roles(node) -> set[str]:
    """The reference roles of ``node`` of :data:`ROLE_PREFIX` that hold a reference."""
    roles = (node.GetNthNodeReferenceRole(i) for i in range(node.GetNumberOfNodeReferenceRoles()))
    return {r for r in roles if r.startswith(ROLE_PREFIX) and node.GetNodeReferenceID(r)}


def _records(node) -> Records:
    """The record of ``node``: point ID -> [link, segment IDs...] or None (not known). A list
    (the record of before) is its IDs, none known; anything else (edited by hand) is read as
    no record."""
    try:
        value = json.loads(node.GetAttribute(SEGMENTED_ATTRIBUTE) or "{}")
    except ValueError:
        return {}
    if isinstance(value, list):
        return {str(i): None for i in value}
    if not isinstance(value, dict):
        return {}
    records: Records = {}
    for key, written in value.items():
        known = isinstance(written, list) and len(written) > 1
        records[str(key)] = [str(w) for w in written] if known else None
    return records


def _set_records(node, records: Records) -> None:
    """Write the record; drop the references no record links to any more."""
    if records:
        node.SetAttribute(SEGMENTED_ATTRIBUTE, json.dumps(records, sort_keys=True))
    else:
        node.RemoveAttribute(SEGMENTED_ATTRIBUTE)
    linked = {w[0] for w in records.values() if w}
    for role in _roles(node) - linked:
        node.RemoveNodeReferenceIDs(role)
