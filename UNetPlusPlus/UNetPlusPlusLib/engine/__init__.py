"""The UNet++ engine: plain torch, numpy and SimpleITK; no Slicer, no Qt."""
