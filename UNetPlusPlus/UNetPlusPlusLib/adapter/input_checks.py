"""The Logic's input checks that need MRML (no Qt): the NIfTI file a volume was loaded from,
and a clicked point named as the user sees it in Slicer.

- **sform and qform that disagree** (``engine/nifti_transforms.py``). The engine warns when it
  reads such a NIfTI file itself; a background job gets the node's voxels instead, so a volume
  Slicer loaded from that file was never warned about. :func:`nifti_file_warnings` reads the
  header (348 bytes) of the ``.nii``/``.nii.gz`` file the node's storage node names, or the
  ``.hdr`` of a .hdr/.img pair (loaded from either half), and gives the engine's warning.
  Other formats (ANALYZE 7.5 too: ITK reads neither transform), nodes never loaded from or
  saved to a file, and a file since gone or unreadable: no warning, and never a failure.
- **A click off the image or in the air outside the body** (``engine/click_check.py``).
  :func:`check_click` refuses it before the in-process run, naming the point by its label in
  its point list (:func:`point_name`) and its RAS coordinates (mm), as Slicer shows them; the
  engine's own message said only "The clicked point" (and named an LPS box for a click off
  the image). :func:`check_point` refuses a click off the image before a background run
  starts (the engine's process refused it only after its start, seconds later; the air
  outside the body needs the voxels as floats, and stays the engine process's check).
- **An image that is a speck at the model's scale** (``engine/scale_check.py``: a header spacing
  in a wrong unit, e.g. 0.05 mm voxels, "liver 0.004 ml"). :func:`check_scale` refuses it
  with the engine's words, naming the volume, before a background run is started (the
  engine's process refused it only after its start, seconds later).
- **An ROI off the image** (``cli_points.check_roi_on_image``). :func:`check_roi` refuses an
  ROI that holds no voxel centre of the image, naming the ROI node and its box in RAS (mm), as
  Slicer shows them; the in-process engine named the box in LPS ("(LPS) lies outside the
  volume"), the background run as "The region of interest" without the node's name.

Slicer API used (checked in Slicer's source, Libs/MRML/Core): ``vtkMRMLStorableNode::
GetStorageNode``, ``vtkMRMLStorageNode::GetFullNameFromFileName`` (the file name made absolute
against the scene's root folder; "" without one), ``vtkMRMLMarkupsNode::
GetNumberOfControlPoints`` and ``GetNthControlPointLabel``, ``vtkMRMLNode::GetName``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from ..cli_points import CLICKED_POINT  # how a point without a name is called
from ..errors import UNetPlusPlusError


def loaded_file(node) -> Optional[Path]:
    """The file a volume node was loaded from or last saved to (its storage node's file name,
    absolute), or None (no storage node, no file name)."""
    get_storage = getattr(node, "GetStorageNode", None)
    storage = get_storage() if get_storage is not None else None
    if storage is None:
        return None
    name = storage.GetFullNameFromFileName()
    return Path(name) if name else None


def nifti_file_warnings(volume_nodes: Sequence) -> list[str]:
    """One warning per node loaded from a ``.nii``/``.nii.gz`` file, or a ``.hdr``/``.img``
    pair, whose NIfTI-1 header's sform and qform disagree (the engine's words, naming the node
    and the file it was loaded from); [] for other nodes and files that cannot be read. Reads
    348 bytes of each such header; never raises for a file."""
    from ..engine.nifti_check import header_transform_warning, nifti_header_file

    warnings = []
    for node in volume_nodes:
        path = loaded_file(node)
        header = None if path is None else nifti_header_file(path)
        if header is None:
            continue
        warning = header_transform_warning(header, f"Volume '{node.GetName()}' (from {path})")
        if warning:
            warnings.append(warning)
    return warnings


def check_nifti_spacing(volume_nodes: Sequence) -> None:
    """Refuse a node loaded from a NIfTI file whose ``pixdim`` Slicer's reader (ITK) misread
    (0, NaN or inf read as 1 mm, a negative one flipped: engine/nifti_spacing.py) while the
    node still has that spacing; a spacing set by hand since (Volumes module) passes. Raises
    UNetPlusPlusError naming the node and the file."""
    from ..engine.nifti_check import nifti_header_file
    from ..engine.nifti_spacing import header_spacing_problem

    for node in volume_nodes:
        path = loaded_file(node)
        header = None if path is None else nifti_header_file(path)
        if header is None:
            continue
        problem, axes = header_spacing_problem(header, f"Volume '{node.GetName()}' (from {path})")
        spacing = node.GetSpacing()
        if problem and any(abs(spacing[i] - read) < 1e-6 for i, read in axes.items()):
            raise UNetPlusPlusError(
                f"{problem} Or set the real spacing in the Volumes module (Volume Information)."
            )


def point_name(markups_node, index: int) -> str:
    """How messages name control point ``index`` of a point list: its label, and its place in
    a list of several, e.g. "Point 'F-2' (2 of 3)"; "The clicked point" for an unnamed single
    point."""
    count = markups_node.GetNumberOfControlPoints()
    label = markups_node.GetNthControlPointLabel(index) if 0 <= index < count else ""
    place = f" ({index + 1} of {count})" if count > 1 else ""
    if label:
        return f"Point '{label}'{place}"
    return f"Point {index + 1} of {count}" if count > 1 else CLICKED_POINT


def point_where(point_ras: Sequence[float], name: Optional[str] = None) -> str:
    """A point as messages name it: ``name`` (default "The clicked point") and its RAS
    coordinates in mm, e.g. "Point 'F-2' (2 of 3) at (-56.0, -4.0, 30.0) mm RAS"; the
    background run's words too (``unetpp segment --point-name``, ``cli_points.point_where``)."""
    from ..cli_points import point_where as named

    return named(point_ras, name, "RAS")


def check_click(
    manifest, volume, point_lps: Sequence[float], point_ras: Sequence[float], name=None
) -> None:
    """Refuse a click that lies off the image, or (lung CT point models) in the air outside
    the body, naming it by :func:`point_where`. ``volume``: the engine ``Volume`` (LPS);
    ``point_lps``/``point_ras``: the click in mm. Raises UNetPlusPlusError; nothing else."""
    from ..engine.click_check import refuse_outside_air

    check_point(volume.grid, point_ras, name)
    refuse_outside_air(manifest, volume, point_lps, point_where(point_ras, name))


def check_point(grid, point_ras: Sequence[float], name: Optional[str] = None) -> None:
    """Refuse a click (``point_ras``: world RAS, mm, parent transforms applied, as
    ``control_point_ras`` gives it) that lies off the image on ``grid`` (engine ``Grid``, LPS)
    by more than half a voxel, naming it by :func:`point_where`: "Point 'F-2' (2 of 3) at
    (500.0, 3.0, -4.0) mm RAS lies outside the image, whose voxel centres run from ... mm RAS;
    click on the image." Needs only the grid (no float copy of the voxels): the background
    run's check before it starts. Raises PointRefusedError (a UNetPlusPlusError: this point
    only, the panel's other queued points still run)."""
    from ..cli_points import check_point_on_image
    from ..errors import PointRefusedError, UNetPlusPlusError
    from .geometry import ras_to_lps

    where = point_where(point_ras, name)
    try:
        check_point_on_image(grid, ras_to_lps(point_ras), point_ras, "RAS", 1, where=where)
    except UNetPlusPlusError as error:
        raise PointRefusedError(str(error)) from None


def check_scale(manifest, grid, node) -> None:
    """Refuse an image (``grid``: the engine ``Grid`` of ``node``'s voxels, LPS, mm) that the
    model cannot see at its scale (:func:`..engine.scale_check.check_model_scale`), naming
    ``node``: "Volume 'CT' has voxels of 0.05 x 0.05 x 0.05 mm and measures only ...".
    Raises UNetPlusPlusError."""
    from ..engine.scale_check import check_model_scale

    source = f"Volume '{node.GetName()}'"
    check_model_scale(grid.size_xyz, grid.spacing, manifest.spacing, manifest.tile_size, source)


def check_roi(roi_node, grid) -> None:
    """Refuse a markups ROI (world RAS box, parent transforms included) that holds no voxel
    centre of the image on ``grid`` (engine ``Grid``, LPS): wholly off the image, or between
    two voxel centres. The message names the node and its box at 0.1 mm RAS, e.g. "ROI 'R'
    from (495.0, 495.0, 495.0) to (505.0, 505.0, 505.0) mm RAS lies outside the image, whose
    voxel centres span x -46.0 to 0.0, ... mm RAS; place the box on the image." Raises
    UNetPlusPlusError (also for an empty ROI, :func:`.geometry.roi_corners_ras`, and for an
    inside-out one, whose region is everything but its box: the engine would segment the box)."""
    from ..cli_points import check_roi_on_image
    from ..engine.volume import Box
    from ..errors import UNetPlusPlusError
    from .geometry import ras_to_lps, roi_corners_ras

    inside_out = getattr(roi_node, "GetInsideOut", None)  # vtkMRMLMarkupsROINode (slicer-core)
    if inside_out is not None and inside_out():
        raise UNetPlusPlusError(
            f"ROI '{roi_node.GetName()}' is inside-out (its region is everything outside its "
            "box), and UNet++ segments inside a box; turn off 'Inside out' for it (Markups "
            "module) or choose another ROI."
        )
    low, high = roi_corners_ras(roi_node)
    box = Box(tuple(ras_to_lps(low)), tuple(ras_to_lps(high)))
    given = [float(f"{v:.1f}") for v in (*low, *high)]
    check_roi_on_image(grid, box, given, "RAS", name=f"ROI '{roi_node.GetName()}'")
