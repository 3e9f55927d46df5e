"""Core layer: numpy, scipy, tifffile and scikit-image only (no torch, no napari)."""
