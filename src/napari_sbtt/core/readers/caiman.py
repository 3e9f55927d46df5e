"""CaImAn results (HDF5 written by ``cnm.save('results.hdf5')``): labels and traces.

Layout used (CaImAn saves its ``CNMF`` object's ``__dict__`` recursively):

- ``estimates/A``: spatial footprints, a scipy CSC sparse matrix (n_pixels x
  n_components) stored as a group with datasets ``data``, ``indices``,
  ``indptr`` and ``shape``; pixel index ``p`` of an image of ``dims`` (Y, X)
  is in Fortran order, ``p = y + x * Y`` (``A[:, k].reshape(dims, order='F')``);
- ``estimates/C``: (n_components, T) denoised temporal traces; ``estimates/S``
  deconvolved activity, ``estimates/YrA`` residuals (same shape); all three are
  returned transposed, (T, N), like every trace array in napari-sbtt;
- ``estimates/idx_components``: indices of the accepted components after
  ``evaluate_components`` (a ``'NoneType'`` string when not evaluated);
- ``params/data/dims`` (Y, X) and ``params/data/fr`` (frame rate, Hz).
  Values CaImAn had as None are stored as the string ``'NoneType'``.

Labels: each component keeps the pixels where its footprint is at least
``threshold`` x its own maximum; a pixel kept by several components goes to
the one with the larger ``A`` value there (CaImAn normalises each column of
``A`` to unit norm, so the values are comparable); ties go to the lower index.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._common import (
    ReaderError,
    as_path,
    check_image_shape,
    labels_from_weighted_pixels,
    open_hdf5,
    read_h5_dataset,
    require_h5py,
)

__all__ = ["CaimanData", "read_caiman"]


@dataclass
class CaimanData:
    """ROIs and traces read from a CaImAn HDF5 file.

    Attributes
    ----------
    path
        The file read.
    labels
        int32 (Y, X): 0 = background, ``k + 1`` = the k-th component kept.
    C
        float32 (T, N) denoised traces, time first like the rest of napari-sbtt
        (CaImAn stores (components, frames)).
    S, YrA
        float32 (T, N) deconvolved activity and residuals, or None when absent.
    dims
        (Y, X) of the field of view.
    fr
        Frame rate in Hz from ``params/data/fr``, or None.
    component_index
        int (N,): column of ``estimates/A`` / row of ``estimates/C`` of each kept component.
    threshold
        Fraction of each footprint's maximum used to cut it into a mask.
    """

    path: Path
    labels: np.ndarray
    C: np.ndarray
    S: np.ndarray | None
    YrA: np.ndarray | None
    dims: tuple[int, int]
    fr: float | None
    component_index: np.ndarray
    threshold: float

    @property
    def n_rois(self) -> int:
        """N, the number of components kept."""
        return int(self.component_index.size)


def _is_none(ds: Any) -> bool:
    """CaImAn stores Python None as the string 'NoneType' (or an empty/scalar placeholder)."""
    try:
        if ds.shape == ():
            v = ds[()]
            return isinstance(v, (bytes, str))
        return ds.size == 0
    except Exception:  # noqa: BLE001
        return True


def _read_sparse_columns(f: Any, path: Path) -> tuple[list[np.ndarray], list[np.ndarray], int, int]:
    """(rows per column, values per column, n_pixels, n_components) of estimates/A."""
    h5py = require_h5py(path)
    if "estimates" not in f or "A" not in f["estimates"]:
        raise ReaderError(
            f"{path}: no 'estimates/A' (spatial footprints); this is not a CaImAn results file, or "
            "it was saved before fitting - save it with cnm.save('results.hdf5') after cnm.fit"
        )
    A = f["estimates/A"]
    if isinstance(A, h5py.Dataset):
        if _is_none(A) or A.ndim != 2:
            raise ReaderError(f"{path}: 'estimates/A' is empty; the CNMF model was not fitted before saving")
        dense = read_h5_dataset(A, path, float)
        rows = [np.flatnonzero(dense[:, j]) for j in range(dense.shape[1])]
        vals = [dense[r, j] for j, r in enumerate(rows)]
        return rows, vals, dense.shape[0], dense.shape[1]
    for key in ("data", "indices", "indptr", "shape"):
        if key not in A:
            raise ReaderError(
                f"{path}: 'estimates/A' lacks '{key}'; CaImAn stores A as a sparse matrix "
                "(data, indices, indptr, shape) - re-save the results with cnm.save"
            )
    data = read_h5_dataset(A["data"], path, float).ravel()
    indices = read_h5_dataset(A["indices"], path, np.int64).ravel()
    indptr = read_h5_dataset(A["indptr"], path, np.int64).ravel()
    shape = tuple(int(s) for s in read_h5_dataset(A["shape"], path).ravel())
    if len(shape) != 2:
        raise ReaderError(f"{path}: 'estimates/A/shape' is {shape}, expected (n_pixels, n_components)")
    n_pix, n_comp = shape
    if indptr.size != n_comp + 1 or indptr[-1] != data.size or data.size != indices.size:
        raise ReaderError(
            f"{path}: 'estimates/A' is not a consistent CSC matrix (indptr has {indptr.size} entries for "
            f"{n_comp} components, {data.size} values, {indices.size} indices); the file is damaged - re-save it"
        )
    rows = [indices[indptr[j] : indptr[j + 1]] for j in range(n_comp)]
    vals = [data[indptr[j] : indptr[j + 1]] for j in range(n_comp)]
    return rows, vals, n_pix, n_comp


def _dims(f: Any, path: Path) -> tuple[int, int]:
    for key in ("params/data/dims", "dims", "estimates/dims"):
        if key in f and not _is_none(f[key]):
            d = tuple(int(v) for v in read_h5_dataset(f[key], path).ravel())
            if len(d) == 3 and d[2] == 1:
                d = d[:2]
            if len(d) != 2:
                raise ReaderError(
                    f"{path}: '{key}' is {d}; napari-sbtt reads 2-D (Y, X) CaImAn results only - "
                    "for volumetric results, run CaImAn on one plane"
                )
            return check_image_shape(d, path, key)
    raise ReaderError(
        f"{path}: no 'params/data/dims' (the image size); re-save the results with cnm.save, "
        "which stores the parameters"
    )


def read_caiman(
    h5_path: str | os.PathLike,
    *,
    threshold: float = 0.2,
    only_accepted: bool = True,
) -> CaimanData:
    """Read CaImAn CNMF/CNMF-E results into a labels image and traces.

    Parameters
    ----------
    h5_path
        The ``.hdf5`` / ``.h5`` file written by ``cnm.save``.
    threshold
        Keep each component's pixels where its footprint is >= ``threshold`` x
        its maximum (0 < threshold <= 1); overlaps go to the larger footprint value.
    only_accepted
        Keep only ``estimates/idx_components`` when the file has it (after
        ``evaluate_components``); otherwise all components.

    Returns
    -------
    CaimanData

    Raises
    ------
    FileNotFoundError, ReaderError
        Missing file, missing ``estimates/A`` / ``estimates/C`` / ``params/data/dims``,
        footprints that do not fit ``dims``, or traces whose count disagrees with ``A``.
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must lie in (0, 1], got {threshold}")
    p = as_path(h5_path)
    if not p.is_file():
        raise FileNotFoundError(f"CaImAn results file not found: {p}")
    _, f = open_hdf5(p, "; pass the .hdf5 file written by cnm.save")
    with f:
        dims = _dims(f, p)
        rows, vals, n_pix, n_comp = _read_sparse_columns(f, p)
        if n_pix != dims[0] * dims[1]:
            raise ReaderError(
                f"{p}: 'estimates/A' has {n_pix} pixel rows but 'params/data/dims' {dims} has "
                f"{dims[0] * dims[1]} pixels; the footprints do not belong to this image size"
            )
        if "C" not in f["estimates"] or _is_none(f["estimates/C"]):
            raise ReaderError(f"{p}: no 'estimates/C' (temporal traces); save the results after cnm.fit")
        C_ds = f["estimates/C"]
        if C_ds.ndim != 2 or C_ds.shape[0] != n_comp:
            raise ReaderError(
                f"{p}: 'estimates/C' has shape {C_ds.shape} but 'estimates/A' has {n_comp} components; "
                "C must be (n_components, T) from the same fit"
            )
        keep = np.arange(n_comp)
        if only_accepted and "idx_components" in f["estimates"] and not _is_none(f["estimates/idx_components"]):
            idx = read_h5_dataset(f["estimates/idx_components"], p, np.int64).ravel()
            if idx.size and (idx.min() < 0 or idx.max() >= n_comp):
                raise ReaderError(
                    f"{p}: 'estimates/idx_components' refers to components outside 0..{n_comp - 1}; "
                    "re-run evaluate_components and save again"
                )
            keep = np.unique(idx)
        fr = None
        if "params/data/fr" in f and not _is_none(f["params/data/fr"]):
            try:
                fr_v = float(read_h5_dataset(f["params/data/fr"], p).ravel()[0])
                fr = fr_v if np.isfinite(fr_v) and fr_v > 0 else None
            except (TypeError, ValueError, IndexError):
                fr = None

        def _opt(name: str) -> np.ndarray | None:
            if name not in f["estimates"] or _is_none(f["estimates"][name]):
                return None
            ds = f["estimates"][name]
            if ds.shape != C_ds.shape:
                return None
            return np.ascontiguousarray(read_h5_dataset(ds, p, np.float32)[keep].T)

        C = np.ascontiguousarray(read_h5_dataset(C_ds, p, np.float32)[keep].T)
        S, YrA = _opt("S"), _opt("YrA")

    ny = dims[0]
    ys, xs, ws = [], [], []
    for j in keep:
        r, v = rows[j], vals[j]
        if r.size and (r.min() < 0 or r.max() >= n_pix):
            raise ReaderError(
                f"{p}: component {j} in 'estimates/A' has pixel indices outside 0..{n_pix - 1}; "
                "the file is damaged - re-save it"
            )
        vmax = v.max() if v.size else 0.0
        m = (v > 0) & (v >= threshold * vmax) if vmax > 0 else np.zeros(v.size, dtype=bool)
        r, v = r[m], v[m]
        ys.append(r % ny)  # Fortran order: p = y + x * Y
        xs.append(r // ny)
        ws.append(v)
    labels = labels_from_weighted_pixels(
        ys, xs, ws, dims, source=p, field="estimates/A", roi_names=[int(j) for j in keep]
    )
    present = np.zeros(keep.size + 1, dtype=bool)
    present[np.unique(labels)] = True
    missing = [int(keep[k]) for k in range(keep.size) if not present[k + 1]]
    if missing:
        warnings.warn(
            f"{p}: components {missing[:10]}{'...' if len(missing) > 10 else ''} have no pixels left "
            f"after thresholding at {threshold} and resolving overlaps; their labels are absent",
            stacklevel=2,
        )
    return CaimanData(
        path=p, labels=labels, C=C, S=S, YrA=YrA, dims=(int(dims[0]), int(dims[1])), fr=fr,
        component_index=keep.astype(np.int64), threshold=float(threshold),
    )
