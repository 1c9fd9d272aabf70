"""The Slicer adapter: MRML nodes <-> engine types, segmentation node writer, job runner.

It needs MRML (Slicer or the PyPI package ``slicer-core``) but never Qt, so it runs and is
tested outside the Slicer application. RAS<->LPS conversion happens here and only here, in
:func:`UNetPlusPlusLib.adapter.geometry.ras_to_lps` / :func:`~.geometry.lps_to_ras`.

Importing this package is cheap; import the submodules you need.
"""
