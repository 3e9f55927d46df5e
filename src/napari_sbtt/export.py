"""Write a result for other tools: NPZ, HDF5, CSV, an activity-movie TIFF or NWB.

:func:`export_result` (also :meth:`SBTTResult.export <napari_sbtt.result.SBTTResult.export>`)
picks the format from the file's suffix; the writers themselves are in
:mod:`napari_sbtt.core.writers`. The TIFF and NWB exports paint or link each ROI's mask: the
labels are given, or found again from the source recorded by
:func:`napari_sbtt.recording.run_recording` (:func:`labels_from_provenance`).

API layer: numpy only.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .core.errors import OptionError
from .core.readers.rois import looks_like_rows, read_labels

__all__ = ["export_result", "labels_from_provenance", "CSV_WHAT", "NWB_SPIKE_RATE"]

#: what a CSV export may hold (``what=``); ``spikes_per_s`` for calcium results on dF/F
CSV_WHAT = ("rates", "observations", "signal", "spikes_per_s")
#: name of the NWB RoiResponseSeries of the estimated spike rate (beside ``Deconvolved``)
NWB_SPIKE_RATE = "EstimatedSpikeRate"


def labels_from_provenance(prov: Mapping[str, Any]) -> np.ndarray | None:
    """Re-read the ROI labels a result was computed from, or None when they cannot be found."""
    fmt = prov.get("format")
    rois = prov.get("rois")
    if rois not in (None, "array") and Path(rois).is_file() and not looks_like_rows(rois):
        return read_labels(rois)
    if fmt == "suite2p":
        from .core.readers import read_suite2p

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return read_suite2p(prov.get("plane_dir") or prov["path"],
                                overlap=prov.get("overlap", "weight")).labels
    if fmt == "caiman":
        from .core.readers import read_caiman

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return read_caiman(prov["path"], threshold=float(prov.get("threshold", 0.2))).labels
    if fmt == "nwb" and rois is None:
        from .core.readers import read_nwb

        with read_nwb(prov["path"]) as d:
            return d.labels
    return None


def export_result(
    result: Any,
    path: str | os.PathLike,
    format: str | None = None,
    *,
    labels: Any = None,
    overwrite: bool = False,
    what: str = "rates",
    nwb_subject: Mapping[str, Any] | None = None,
    nwb_location: str | None = None,
) -> Path:
    """Write ``result`` as NPZ, HDF5, CSV, an activity-movie TIFF or NWB (chosen by suffix or ``format``).

    Parameters
    ----------
    result
        An :class:`~napari_sbtt.result.SBTTResult`.
    path
        Output file: ``.npz`` (all arrays + ``result_json``), ``.h5``/``.hdf5``
        (datasets + JSON attributes), ``.csv`` (``time_s`` + one column per
        ROI of ``what``), ``.tif``/``.tiff`` (float32 (T_fine, Y, X) activity
        movie) or ``.nwb`` (RoiResponseSeries ``processing/ophys/Fluorescence/Deconvolved``
        linked to a PlaneSegmentation; see :func:`napari_sbtt.core.writers.write_nwb`).
    format
        ``"npz"``, ``"hdf5"``, ``"csv"``, ``"tiff"`` or ``"nwb"`` to override the suffix.
    labels
        (Y, X) labels image (array or .tif/.npy) for the TIFF and NWB exports;
        by default re-read from the source recorded by :func:`run_recording`.
    overwrite
        Replace an existing file.
    what
        For CSV: ``"rates"`` (default), ``"observations"``, ``"signal"`` or ``"spikes_per_s"``
        (estimated spikes/s, calcium results on dF/F; see
        :meth:`~napari_sbtt.result.SBTTResult.spikes_per_s`). The NPZ and HDF5 exports hold
        ``spikes_per_s`` beside the rates, and the NWB export a second RoiResponseSeries
        ``EstimatedSpikeRate`` (unit ``spikes/s``) in the same container, when the result has it.
    nwb_subject
        For NWB: the animal's NWB Subject fields (``subject_id``, ``species``, ``sex``,
        ``age`` ISO 8601 such as ``P90D``, ...), which nwbinspector and DANDI require and
        napari-sbtt cannot know.
    nwb_location
        For NWB built from a labels image: the imaging plane's brain area (for a mouse an
        Allen CCF term, e.g. ``VISp``).

    Returns
    -------
    Path of the file written (atomically).
    """
    from .core import writers

    fmt = writers.format_from_path(path, format)
    arrays: dict[str, np.ndarray] = {
        "rates": np.asarray(result.rates, dtype=np.float32),
        "times": np.asarray(result.times, dtype=np.float64),
        "observations": np.asarray(result.observations, dtype=np.float32),
        "roi_ids": np.asarray(result.roi_ids, dtype=np.int64),
    }
    if result.signal is not None:
        arrays["signal"] = np.asarray(result.signal, dtype=np.float32)
    spike_units = None
    if getattr(result, "has_spike_estimate", False):  # calcium on dF/F: estimated spikes/s beside the rates
        from .core.units import SPIKE_RATE_UNITS

        arrays["spikes_per_s"] = result.spikes_per_s()
        spike_units = SPIKE_RATE_UNITS
    prov = dict((result.config or {}).get("recording") or {})
    if fmt in ("npz", "hdf5"):
        meta = result.metadata()
        if fmt == "npz":
            return writers.write_npz(path, arrays, meta, overwrite=overwrite)
        obs_params = (result.config or {}).get("observations") or {}
        obs_units = "dF/F" if obs_params.get("dff") else (
            "raw, neuropil-corrected" if obs_params.get("neuropil") is not None else "raw")
        units_of = {"observations": obs_units, "signal": obs_units}
        if spike_units is not None:
            units_of["spikes_per_s"] = spike_units
        return writers.write_hdf5(path, arrays, meta, overwrite=overwrite, array_units=units_of)
    if fmt == "csv":
        if what not in CSV_WHAT or what not in arrays:
            raise ValueError(f"what must be one of {', '.join(CSV_WHAT)} (when present: 'spikes_per_s' needs a "
                             f"calcium result on dF/F), got {what!r}")
        return writers.write_traces_csv(path, arrays["times"], arrays[what], arrays["roi_ids"],
                                        overwrite=overwrite)
    lab = read_labels(labels) if labels is not None else None
    extra = []
    if spike_units is not None:
        est = result.metrics["spikes_estimate"]
        extra.append((NWB_SPIKE_RATE, arrays["spikes_per_s"], "spikes/s",
                      f"Estimated spike rate per ROI: the deconvolved activity divided by the dF/F jump one "
                      f"{est.get('indicator')} spike makes (preset amplitude {est.get('amplitude')} dF/F per "
                      f"spike) and by the bin width. An estimate: neurons whose single-spike transient differs "
                      f"from the preset's are off by that ratio."))
    if fmt == "nwb" and lab is None and prov.get("segmentation"):
        seg = prov["segmentation"]
        ids = arrays["roi_ids"]
        return writers.write_nwb(
            path, arrays["rates"], arrays["times"], ids, bin_width=float(result.grid.bin_width),
            units=result.units, source_nwb=seg["path"], segmentation=seg.get("name"),
            table_rows=ids - 1, overwrite=overwrite, subject=nwb_subject, location=nwb_location,
            description=f"Likelihood: {(result.config or {}).get('likelihood')}.", extra_series=extra,
        )
    if lab is None:
        lab = labels_from_provenance(prov)
    if lab is None:
        raise OptionError(
            f"{path}: the {fmt.upper()} export paints/links each ROI's mask, but this result does not say where "
            "its ROI labels are (it was not computed from a file with ROI masks); pass {labels}",
            labels="labels=<(Y, X) labels image or .tif/.npy>")
    if fmt == "tiff":
        return writers.write_activity_tiff(path, arrays["rates"], lab, arrays["roi_ids"],
                                           bin_width=float(result.grid.bin_width), overwrite=overwrite)
    fper = (result.config or {}).get("frame_period_s")
    scan = (result.config or {}).get("scan")
    if fper is None and isinstance(scan, Mapping):
        fper = scan.get("frame_period_s")
    return writers.write_nwb(
        path, arrays["rates"], arrays["times"], arrays["roi_ids"], bin_width=float(result.grid.bin_width),
        units=result.units, labels=lab, frame_period=fper, overwrite=overwrite, subject=nwb_subject,
        location=nwb_location,
        description=f"Likelihood: {(result.config or {}).get('likelihood')}.", extra_series=extra,
    )
