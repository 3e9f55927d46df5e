"""napari plugin of napari-sbtt: manifest (napari.yaml), widgets, sample data, reader and writer.

Importing this package is cheap: widgets are imported by napari from the manifest when they
are opened, and torch is imported only inside the training worker.
"""

from __future__ import annotations

__all__: list[str] = []
