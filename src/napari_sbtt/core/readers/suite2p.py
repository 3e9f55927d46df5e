"""suite2p plane folders: ROI labels, traces and sampling rate.

A suite2p *plane folder* (``.../suite2p/plane0``) holds:

- ``stat.npy``: one dict per ROI with ``ypix``, ``xpix`` (pixel rows and
  columns), ``lam`` (pixel weights), ``med`` ((y, x) centre) and ``overlap``
  (bool per pixel, True where another ROI claims it);
- ``F.npy``, ``Fneu.npy``, ``spks.npy``: (n_rois, n_frames) float32 traces
  (returned transposed, (T, N), like every trace array in napari-sbtt);
- ``data.bin``: the registered movie, raw int16 of shape (nframes, Ly, Lx) in C
  order (only when suite2p kept it, ``keep_movie_raw`` / ``delete_bin=False``);
- ``iscell.npy``: (n_rois, 2), column 0 = 0/1 cell label, column 1 = classifier probability;
- the options: ``ops.npy`` (one dict with ``Ly``, ``Lx``, ``nframes``, ``fs``;
  suite2p < 1.0) or, in the newer layout, ``db.npy`` (recording: ``Ly``,
  ``Lx``, ``nframes``), ``settings.npy`` (pipeline: ``fs`` = sampling rate per
  plane, Hz) and ``reg_outputs.npy`` (``meanImg`` etc.).

Security note: ``stat.npy``, ``ops.npy``, ``db.npy``, ``settings.npy`` and
``reg_outputs.npy`` are object arrays that suite2p saved with pickle. They are
never given to ``np.load(allow_pickle=True)`` (which would run any code a
crafted file names): :mod:`.safe_pickle` rebuilds only numpy arrays, dicts,
lists and plain values and refuses anything else, naming the file. The plain
numeric arrays (F, Fneu, spks, iscell) are read without pickle, their header
sizes checked against the file (:mod:`.npy`); napari-sbtt itself never writes
pickles.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._common import ReaderError, as_path, check_image_shape, labels_from_weighted_pixels
from .npy import load_npy
from .safe_pickle import UnsafePickleError

__all__ = ["Suite2pData", "read_suite2p", "find_suite2p_plane", "open_suite2p_binary", "OVERLAP_RULES"]

OVERLAP_RULES = ("weight", "drop")


@dataclass
class Suite2pData:
    """ROIs and traces read from one suite2p plane folder.

    Attributes
    ----------
    plane_dir
        The plane folder read.
    labels
        int32 (Y, X): 0 = background, ``k + 1`` = the k-th ROI kept.
    F, Fneu
        float32 (T, N) ROI and neuropil fluorescence of the kept ROIs (time first,
        like the rest of napari-sbtt; suite2p stores (n_rois, n_frames)); ``Fneu``
        is None when Fneu.npy is absent.
    spks
        float32 (T, N) suite2p's deconvolved activity, or None when absent.
    iscell
        bool (N,): suite2p's cell label of each kept ROI.
    cell_probability
        float (N,): suite2p's classifier probability, NaN when iscell.npy is absent.
    roi_index
        int (N,): index of each kept ROI in suite2p's stat.npy / rows of F.npy
        (label ``k + 1`` is suite2p ROI ``roi_index[k]``).
    med
        float (N, 2): suite2p's (row, column) centre of each kept ROI.
    fs
        Sampling rate per plane in Hz (``ops['fs']`` or ``settings['fs']``), or
        None when no options file says.
    n_frames
        T.
    layout
        ``"ops"`` (ops.npy), ``"db"`` (db.npy / settings.npy) or ``"none"``.
    overlap
        The overlap rule used (see :func:`read_suite2p`).
    binary
        The registered movie ``data.bin`` in the plane folder, or None when
        suite2p did not keep it; open it with :meth:`movie`.
    """

    plane_dir: Path
    labels: np.ndarray
    F: np.ndarray
    Fneu: np.ndarray | None
    spks: np.ndarray | None
    iscell: np.ndarray
    cell_probability: np.ndarray
    roi_index: np.ndarray
    med: np.ndarray
    fs: float | None
    n_frames: int
    layout: str
    overlap: str
    binary: Path | None = None

    def movie(self) -> np.memmap | None:
        """The registered movie ``data.bin`` as a read-only (T, Y, X) int16 memory map, or None.

        suite2p writes the registered frames as raw little-endian int16 in C
        order, (nframes, Ly, Lx), with no header; nothing is read until sliced.

        Raises
        ------
        ReaderError
            When the file size is not ``n_frames * Ly * Lx * 2`` bytes (the binary
            belongs to another run, or the image size came from the ROIs' extent
            because no options file gave ``Ly``/``Lx``).
        """
        if self.binary is None:
            return None
        return open_suite2p_binary(self.binary, self.n_frames, self.shape)

    @property
    def n_rois(self) -> int:
        """N, the number of ROIs kept."""
        return int(self.roi_index.size)

    @property
    def med_rows(self) -> np.ndarray:
        """float (N,): row of each kept ROI's centre (for sub-frame timing)."""
        return self.med[:, 0]

    @property
    def shape(self) -> tuple[int, int]:
        """(Y, X) of the image."""
        return tuple(int(s) for s in self.labels.shape)  # type: ignore[return-value]


def open_suite2p_binary(path: str | os.PathLike, n_frames: int, shape: tuple[int, int]) -> np.memmap:
    """A suite2p registered binary (``data.bin``) as a read-only (T, Y, X) int16 memory map.

    Parameters
    ----------
    path
        The ``data.bin`` file: raw little-endian int16 frames, C order, no header.
    n_frames
        T, the number of frames (F.npy's length or ``nframes`` in the options).
    shape
        (Ly, Lx) of each frame.

    Raises
    ------
    ReaderError
        When the file size does not equal ``n_frames * Ly * Lx * 2`` bytes.
    """
    p = as_path(path)
    ly, lx = int(shape[0]), int(shape[1])
    want = int(n_frames) * ly * lx * 2
    size = p.stat().st_size
    if size != want:
        raise ReaderError(
            f"{p}: {size} bytes, but {n_frames} frames of {ly} x {lx} int16 pixels (F.npy's frame "
            f"count and the options' Ly/Lx) need {want}; the binary belongs to another run, or "
            "the plane folder lacks ops.npy/db.npy with the image size - restore the matching files"
        )
    if want == 0:
        raise ReaderError(f"{p}: the registered binary is empty; re-run suite2p's registration")
    return np.memmap(p, dtype="<i2", mode="r", shape=(int(n_frames), ly, lx), order="C")


def _is_plane_dir(p: Path) -> bool:
    return (p / "stat.npy").is_file()


def find_suite2p_plane(path: str | os.PathLike) -> Path | None:
    """The suite2p plane folder at or just below ``path``, or None.

    Accepts a plane folder itself, a ``suite2p`` folder holding exactly one
    ``plane*`` folder, or the folder that holds ``suite2p/plane0`` (one plane).
    Never raises for unrelated paths.
    """
    try:
        p = as_path(path)
        if not p.is_dir():
            return None
        if _is_plane_dir(p):
            return p
        for base in (p, p / "suite2p"):
            if not base.is_dir():
                continue
            planes = sorted(q for q in base.glob("plane*") if q.is_dir() and _is_plane_dir(q))
            if len(planes) == 1:
                return planes[0]
        return None
    except OSError:
        return None


def _load_pickled(path: Path, what: str) -> Any:
    """One of suite2p's pickled files, rebuilt by the restricted unpickler (plain data only)."""
    try:
        return load_npy(path, objects=True)
    except UnsafePickleError:
        raise
    except (ReaderError, OSError) as e:
        raise ReaderError(f"{path}: cannot read suite2p's {what} ({e}); re-run suite2p or restore the file"
                          ) from None


def _load_dict(path: Path, what: str) -> dict[str, Any]:
    arr = _load_pickled(path, what)
    try:
        d = arr.item() if isinstance(arr, np.ndarray) else arr
    except ValueError:
        d = None
    if not isinstance(d, dict):
        raise ReaderError(f"{path}: suite2p's {what} should hold one dict, got {type(d).__name__}; "
                          "re-run suite2p or restore the file")
    return d


def _load_numeric(path: Path, what: str, *, mmap: bool = True) -> np.ndarray:
    try:
        arr = load_npy(path, mmap=mmap)
    except (ReaderError, OSError) as e:
        raise ReaderError(f"{path}: suite2p's {what} should be a numeric array ({e}); re-run suite2p or "
                          "restore the file") from None
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ReaderError(f"{path}: suite2p's {what} has dtype {arr.dtype}, expected numbers; re-run suite2p")
    return arr


def _resolve(plane_dir: str | os.PathLike) -> Path:
    p = as_path(plane_dir)
    if not p.exists():
        raise FileNotFoundError(f"suite2p folder not found: {p}")
    if p.is_file():
        if p.name in ("stat.npy", "F.npy", "ops.npy", "iscell.npy", "db.npy") and _is_plane_dir(p.parent):
            return p.parent
        raise ReaderError(f"{p} is a file; pass the suite2p plane folder that holds stat.npy (…/suite2p/plane0)")
    found = find_suite2p_plane(p)
    if found is not None:
        return found
    planes = sorted(q.name for base in (p, p / "suite2p") if base.is_dir()
                    for q in base.glob("plane*") if q.is_dir() and _is_plane_dir(q))
    if len(planes) > 1:
        raise ReaderError(
            f"{p} holds several suite2p planes ({', '.join(planes)}); pass one plane folder, "
            f"e.g. {p / planes[0]}"
        )
    raise ReaderError(
        f"missing stat.npy in {p}: this is not a suite2p plane folder. Pass the folder that holds "
        "stat.npy, F.npy and iscell.npy (…/suite2p/plane0), after running suite2p's detection"
    )


def _options(p: Path) -> tuple[str, int | None, int | None, int | None, float | None]:
    """(layout, Ly, Lx, nframes, fs) from ops.npy, or db.npy + settings.npy + reg_outputs.npy."""

    def _int(d: dict[str, Any], k: str) -> int | None:
        v = d.get(k)
        try:
            return int(v) if v is not None else None
        except (TypeError, ValueError):
            return None

    def _fs(d: dict[str, Any]) -> float | None:
        v = d.get("fs")
        try:
            f = float(v)
        except (TypeError, ValueError):
            return None
        return f if np.isfinite(f) and f > 0 else None

    if (p / "ops.npy").is_file():
        ops = _load_dict(p / "ops.npy", "options (ops.npy)")
        return "ops", _int(ops, "Ly"), _int(ops, "Lx"), _int(ops, "nframes"), _fs(ops)
    db: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    if (p / "db.npy").is_file():
        db = _load_dict(p / "db.npy", "recording settings (db.npy)")
    if (p / "settings.npy").is_file():
        settings = _load_dict(p / "settings.npy", "pipeline settings (settings.npy)")
    if not db and not settings and not (p / "reg_outputs.npy").is_file():
        return "none", None, None, None, None
    ly, lx = _int(db, "Ly"), _int(db, "Lx")
    if (ly is None or lx is None) and (p / "reg_outputs.npy").is_file():
        reg = _load_dict(p / "reg_outputs.npy", "registration outputs (reg_outputs.npy)")
        for key in ("meanImg", "refImg"):
            img = reg.get(key)
            if isinstance(img, np.ndarray) and img.ndim == 2:
                ly, lx = int(img.shape[0]), int(img.shape[1])
                break
    fs = _fs(settings) if _fs(settings) is not None else _fs(db)
    return "db", ly, lx, _int(db, "nframes"), fs


def read_suite2p(
    plane_dir: str | os.PathLike,
    *,
    only_cells: bool = True,
    overlap: str = "weight",
) -> Suite2pData:
    """Read a suite2p plane folder into a labels image and traces.

    Parameters
    ----------
    plane_dir
        The plane folder (``…/suite2p/plane0``), or a folder holding exactly one
        plane (``…/suite2p`` or its parent).
    only_cells
        Keep only ROIs that suite2p (or the user, in its GUI) labelled as cells
        (``iscell[:, 0] == 1``). Without iscell.npy every ROI is kept (with a warning).
    overlap
        How to paint pixels claimed by several kept ROIs into the one-label-per-pixel image:

        - ``"weight"`` (default): the pixel goes to the ROI with the larger
          ``lam`` there (ties: the lower suite2p index). Every ROI keeps a
          contiguous footprint, and each pixel is used once.
        - ``"drop"``: pixels flagged in ``stat['overlap']`` are left as
          background, as suite2p does when it extracts F (its default
          ``allow_overlap=False``). Without an ``overlap`` field, pixels shared by
          kept ROIs are dropped.

    Returns
    -------
    Suite2pData

    Raises
    ------
    FileNotFoundError
        ``plane_dir`` does not exist.
    ReaderError
        Missing stat.npy or F.npy, ROI pixels outside the image, traces whose
        count or length disagrees with stat.npy / the frame count in the options.
    """
    if overlap not in OVERLAP_RULES:
        raise ValueError(f"overlap must be one of {OVERLAP_RULES}, got {overlap!r}")
    p = _resolve(plane_dir)
    stat = _load_pickled(p / "stat.npy", "ROI statistics (stat.npy)")
    stat = list(np.atleast_1d(stat))
    for k, s in enumerate(stat):
        if not isinstance(s, dict) or "ypix" not in s or "xpix" not in s:
            raise ReaderError(
                f"{p / 'stat.npy'}: ROI {k} lacks the 'ypix'/'xpix' fields; this is not a suite2p "
                "stat.npy (re-run suite2p's detection)"
            )
    n_all = len(stat)
    if not (p / "F.npy").is_file():
        raise ReaderError(f"missing F.npy in {p}: suite2p writes it after extraction; run suite2p's "
                          "extraction step (settings['run']['do_detection'] = True)")
    F = _load_numeric(p / "F.npy", "fluorescence (F.npy)")
    if F.ndim != 2 or F.shape[0] != n_all:
        raise ReaderError(
            f"{p / 'F.npy'}: shape {F.shape} does not match stat.npy's {n_all} ROIs; F.npy should be "
            "(n_rois, n_frames) from the same suite2p run - re-run the extraction"
        )
    n_t = int(F.shape[1])
    layout, ly, lx, nframes, fs = _options(p)
    if nframes is not None and nframes != n_t:
        src = "ops.npy" if layout == "ops" else "db.npy"
        raise ReaderError(
            f"{p / 'F.npy'} has {n_t} frames but {src} field 'nframes' says {nframes}; the traces "
            "and the options come from different runs - re-run suite2p or restore the matching files"
        )

    def _traces(name: str, what: str) -> np.ndarray | None:
        if not (p / name).is_file():
            return None
        a = _load_numeric(p / name, what)
        if a.shape != F.shape:
            raise ReaderError(
                f"{p / name}: shape {a.shape} differs from F.npy's {F.shape}; both must be "
                "(n_rois, n_frames) from the same run - re-run suite2p's extraction"
            )
        return a

    Fneu = _traces("Fneu.npy", "neuropil fluorescence (Fneu.npy)")
    spks = _traces("spks.npy", "deconvolved activity (spks.npy)")

    if (p / "iscell.npy").is_file():
        ic = np.asarray(_load_numeric(p / "iscell.npy", "cell labels (iscell.npy)", mmap=False), dtype=float)
        if ic.ndim == 1:
            ic = np.stack([ic, np.full(ic.shape, np.nan)], axis=1)
        if ic.shape[0] != n_all:
            raise ReaderError(
                f"{p / 'iscell.npy'}: {ic.shape[0]} rows but stat.npy has {n_all} ROIs; iscell.npy "
                "must be (n_rois, 2) from the same run - re-save it from the suite2p GUI"
            )
        is_cell_all = ic[:, 0] > 0.5
        prob_all = ic[:, 1] if ic.shape[1] > 1 else np.full(n_all, np.nan)
    else:
        if only_cells:
            warnings.warn(f"no iscell.npy in {p}; keeping all {n_all} ROIs", stacklevel=2)
        is_cell_all = np.ones(n_all, dtype=bool)
        prob_all = np.full(n_all, np.nan)

    keep = np.flatnonzero(is_cell_all) if only_cells else np.arange(n_all)

    if ly is None or lx is None:
        ymax = max((int(np.max(s["ypix"])) for s in stat if np.size(s["ypix"])), default=0)
        xmax = max((int(np.max(s["xpix"])) for s in stat if np.size(s["xpix"])), default=0)
        ly, lx = ymax + 1, xmax + 1
        warnings.warn(
            f"{p}: no ops.npy / db.npy / reg_outputs.npy gives the image size (Ly, Lx); using the "
            f"ROIs' extent {ly} x {lx}, which may be smaller than the movie",
            stacklevel=2,
        )
        ly, lx = check_image_shape((ly, lx), p / "stat.npy", "ypix/xpix")
    else:  # the image size is checked before anything of that size is allocated
        ly, lx = check_image_shape((ly, lx), p / ("ops.npy" if layout == "ops" else "db.npy"), "Ly/Lx")

    ys, xs, ws = [], [], []
    for k in keep:
        s = stat[k]
        yy = np.asarray(s["ypix"]).ravel()
        xx = np.asarray(s["xpix"]).ravel()
        lam = np.asarray(s["lam"], dtype=float).ravel() if "lam" in s else np.ones(yy.size)
        if overlap == "drop" and "overlap" in s:
            ov = np.asarray(s["overlap"], dtype=bool).ravel()
            if ov.size == yy.size:
                yy, xx, lam = yy[~ov], xx[~ov], lam[~ov]
        ys.append(yy)
        xs.append(xx)
        ws.append(lam)
    if overlap == "drop":
        # drop pixels still shared by kept ROIs (stat without an 'overlap' field)
        flat = np.concatenate([y.astype(np.int64) * lx + x for y, x in zip(ys, xs, strict=True)]) if ys else np.empty(0, np.int64)
        valid = flat[(flat >= 0) & (flat < ly * lx)]
        counts = np.bincount(valid, minlength=ly * lx) if valid.size else np.zeros(ly * lx, np.int64)
        for i, (y, x) in enumerate(zip(ys, xs, strict=True)):
            f = y.astype(np.int64) * lx + x
            inside = (y >= 0) & (y < ly) & (x >= 0) & (x < lx)
            ok = ~inside | (counts[np.clip(f, 0, ly * lx - 1)] <= 1)
            ys[i], xs[i], ws[i] = y[ok], x[ok], ws[i][ok]
    labels = labels_from_weighted_pixels(ys, xs, ws, (ly, lx), source=p / "stat.npy", field="ypix/xpix",
                                        roi_names=[int(k) for k in keep])
    med = np.array(
        [np.asarray(stat[k].get("med", (np.nan, np.nan)), dtype=float).ravel()[:2] for k in keep],
        dtype=float,
    ).reshape(-1, 2)
    def _tn(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(a[keep], dtype=np.float32).T)

    binary = p / "data.bin"
    return Suite2pData(
        plane_dir=p,
        labels=labels,
        F=_tn(F),
        Fneu=None if Fneu is None else _tn(Fneu),
        spks=None if spks is None else _tn(spks),
        iscell=is_cell_all[keep],
        cell_probability=prob_all[keep].astype(float),
        roi_index=keep.astype(np.int64),
        med=med,
        fs=fs,
        n_frames=n_t,
        layout=layout,
        overlap=overlap,
        binary=binary if binary.is_file() else None,
    )
