"""The Slicer GUI side of the module: parameter node, panel, module Logic shell and self-test.

These files import Slicer, Qt, ctk and vtk (they run inside 3D Slicer only); nothing else in
``UNetPlusPlusLib`` imports them. The panel is thin: it binds the ``.ui`` to the parameter node,
starts and cancels background jobs and shows their progress. MRML <-> engine conversion lives in
``UNetPlusPlusLib.adapter`` (no Qt), image math in the engine.
"""
