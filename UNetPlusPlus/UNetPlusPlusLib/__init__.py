"""UNet++ for 3D Slicer: engine, training and Slicer adapter.

Importing this package is cheap and pulls in neither torch, Slicer nor Qt, so the Slicer module
can import it before its dependencies are installed.
"""

__version__ = "0.1.0"
