"""Train / Load widget: fit an SBTT model (or apply a checkpoint) in a worker thread.

One button toggles Train <-> Stop. Per-epoch reports feed a napari ``progress`` bar, the
widget's own progress bar and a live loss plot; the GUI drains reports at most every 100 ms.
Stop ends training at the next epoch; the best model so far is kept and the result is shown.
A failure is shown in the widget and the state machine returns to a state that can start again.
The fit itself runs in a child process (:mod:`napari_sbtt.isolated`), so the viewer's process
never imports torch and the GUI thread never waits on the fit's GIL.
"""

from __future__ import annotations

import os
import sys
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from magicgui.widgets import Container, FileEdit, ProgressBar, PushButton

from ..core.errors import OptionError
from ..core.progress import RunControl, RunStopped, fit_limits_text, fit_progress
from ._common import MessageLabel, follow_theme, resolve_inputs, timing_for
from ._files import checkpoint_info
from ._layers import InputError, check_inputs, find_layer, scan_from_metadata, show_result
from ._plots import LossPlot
from ._run_fields import make_run_fields, run_config_from_fields
from ._settings import PersistedValues
from ._state import TrainState, TrainStateMachine, session_for
from ._worker import Job

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from ..recording import Recording

__all__ = ["TrainWidget", "device_choices", "run_job", "verdict_message", "WIDGET_WORDS", "FIT_STEPS"]

#: seconds between updates of napari's progress bar (each one costs a nested event loop)
PBAR_INTERVAL_S = 2.0
#: steps of the progress bars of a fit: the share of the longest the fit can take (cap or epochs)
FIT_STEPS = 1000

#: how this widget names the settings that library errors name (see core.errors.OptionError)
WIDGET_WORDS: dict[str, str] = {
    "frame_period": "the frame period (Data tab)",
    "line_period": "the line period (Data tab, to find the acquired rows from the movie's NaN rows)",
    "scan": "a scan pattern (Scan tab)",
    "adapt": "'adapt to these ROIs'",
    "dff_neuropil": "the settings the model was trained with",
    "device_auto": "device 'auto'",
    "device_cpu": "device 'cpu'",
}


def device_choices(_widget: Any = None) -> list[str]:
    """"auto", "cpu", and "cuda" when a GPU looks usable; never imports torch itself."""
    choices = ["auto", "cpu"]
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            if torch.cuda.is_available():
                choices.append("cuda")
        except Exception:  # noqa: BLE001
            pass
    elif os.path.exists("/proc/driver/nvidia/version"):
        choices.append("cuda")
    return choices


#: CPU priority drop of the fitting process (POSIX nice): the viewer gets the CPU first
CHILD_NICE = 5


def isolated_fits() -> bool:
    """True when fits run in a child process (the default); ``NAPARI_SBTT_INPROCESS=1`` or
    ``NAPARI_SBTT_SYNC=1`` runs them in the viewer's process instead (for debugging)."""
    from ._worker import env_flag, sync_mode

    return not (env_flag("NAPARI_SBTT_INPROCESS") or sync_mode())


def run_job(rec: "Recording", model: str | None, config: Any, control: RunControl) -> Any:
    """The worker's job: :func:`napari_sbtt.recording.run_recording`, the library's run.

    The recording's samples are read here (numpy only); the fit runs in a child process
    (:mod:`napari_sbtt.isolated`, at a lower CPU priority), so the viewer's process never runs
    torch and no step of the fit can hold the GUI thread's GIL; with ``NAPARI_SBTT_INPROCESS=1``
    it runs here, after torch's libraries were loaded with the GIL released (``_torch_preload``).
    """
    from ..recording import run_recording

    if isolated_fits():
        return run_recording(rec, model=model, config=config, control=control, isolate=True, nice=CHILD_NICE)
    from ._torch_preload import preload_torch_libraries

    preload_torch_libraries()
    return run_recording(rec, model=model, config=config, control=control)


def verdict_message(result: Any, oasis_layer: str | None = None) -> str:
    """The held-out verdict against OASIS of a calcium result, in the widget's words ("" for other
    likelihoods); ``oasis_layer``: the layer that shows OASIS's estimate when SBTT did not beat it."""
    from ..heldout import heldout_summary

    if (result.config or {}).get("likelihood") != "calcium":
        return ""
    note = (f"OASIS's estimate is added as the layer '{oasis_layer}'" if oasis_layer
            else "OASIS's estimate is in the result (oasis_rates)"
            if getattr(result, "oasis_rates", None) is not None else "")
    return heldout_summary((result.metrics or {}).get("heldout"), oasis_note=note)


class TrainWidget(Container):
    """Train an SBTT model on the chosen movie and ROIs, or apply/adapt a saved checkpoint."""

    def __init__(self, napari_viewer: "napari.viewer.Viewer") -> None:
        super().__init__(labels=True)
        self._viewer = napari_viewer
        self._session = session_for(napari_viewer)
        self.state = TrainStateMachine()
        self.job: Job | None = None
        self._pbar: Any = None
        self._pbar_shown = 0.0
        self.last_result: Any = None

        #: the run settings, generated from the RunConfig fields' metadata (library defaults)
        self.fields = make_run_fields(device_choices=device_choices)
        for name, widget in self.fields.items():
            setattr(self, name, widget)
        #: the settings shown above the Train button (``adapt`` goes with the checkpoint)
        self.run_settings = [w for name, w in self.fields.items() if name != "adapt"]
        self.reset_button = PushButton(text="Reset to defaults",
                                      tooltip="forget the remembered settings above")
        self.train_button = PushButton(text="Train")
        self.checkpoint = FileEdit(label="checkpoint", mode="r", filter="*.safetensors")
        self.apply_button = PushButton(text="Apply checkpoint")
        self.save_model_path = FileEdit(label="save model", mode="w", filter="*.safetensors")
        self.save_model_button = PushButton(text="Save checkpoint")
        self.save_result_path = FileEdit(label="save result", mode="w")
        self.save_result_button = PushButton(text="Save result folder")
        self.progress_bar = ProgressBar(label="progress", min=0, max=1, value=0)
        #: what a fit may cost: early stopping, the time cap and the epoch limit of the fields
        self.limits = MessageLabel(label="")
        self.status = MessageLabel(label="")
        self.message = MessageLabel(label="")
        self.extend([*self.run_settings, self.limits, self.reset_button,
                     self.train_button, self.checkpoint, self.fields["adapt"], self.apply_button,
                     self.progress_bar, self.status, self.message, self.save_model_path,
                     self.save_model_button, self.save_result_path, self.save_result_button])
        #: the settings remembered across sessions (restored here, saved on every change)
        self.settings = PersistedValues("train", {name: w for name, w in self.fields.items() if name != "adapt"})
        self.loss_plot = LossPlot()
        self.native.layout().addWidget(self.loss_plot)
        follow_theme(napari_viewer, self.native, self.loss_plot.apply_colours)

        for name in ("epochs", "max_seconds"):
            self.fields[name].changed.connect(self.show_limits)
        self.show_limits()
        self.train_button.changed.connect(self._on_train_button)
        self.reset_button.changed.connect(self.reset_settings)
        self.apply_button.changed.connect(self.apply_checkpoint)
        self.save_model_button.changed.connect(self.save_checkpoint)
        self.save_result_button.changed.connect(self.save_result)
        self.state.connect(self._on_state)
        self._session.listeners.append(self._on_session)
        self.native.destroyed.connect(partial(TrainWidget._shutdown, self.state, self._job_ref))
        self._on_state(TrainState.IDLE, TrainState.IDLE)
        if self._session.pending_checkpoint:
            self._on_session("checkpoint")

    # ------------------------------------------------------------------ state -> GUI
    def _job_ref(self) -> Job | None:
        return self.job

    @staticmethod
    def _shutdown(state: TrainStateMachine, job_ref: Callable[[], Job | None], *_: Any) -> None:
        """The widget is being destroyed (viewer closing): stop the run and wait for the thread."""
        job = job_ref()
        if job is not None and job.running:
            job.abort()
            job.wait(30.0)

    def _on_state(self, _old: TrainState, new: TrainState) -> None:
        busy = new is TrainState.TRAINING
        self.train_button.text = "Stop" if busy else "Train"
        self.train_button.enabled = True
        for w in (self.apply_button, self.save_model_button, self.save_result_button, *self.run_settings,
                  self.reset_button):
            w.enabled = not busy
        texts = {
            TrainState.IDLE: "ready",
            TrainState.TRAINING: "running...",
            TrainState.DONE: "done",
            TrainState.STOPPED: "stopped early; best model kept",
            TrainState.FAILED: "failed",
        }
        msg = self.state.message
        self.status.show_info(f"{texts[new]}{': ' + msg if msg and new is not TrainState.FAILED else ''}")
        if new is TrainState.FAILED:
            self.message.show_error(msg or "the run failed")

    def _on_session(self, what: str) -> None:
        if what == "checkpoint" and self._session.pending_checkpoint:
            try:
                self.checkpoint.value = self._session.pending_checkpoint
            except RuntimeError:  # widget deleted
                return
            self.message.show_info(f"checkpoint {Path(self._session.pending_checkpoint).name} selected; "
                                   "press 'Apply checkpoint'")

    # ------------------------------------------------------------------ actions
    def reset_settings(self, *_: Any) -> None:
        """Return the run settings to the library's defaults and forget the remembered values."""
        self.settings.reset()
        self.show_limits()
        self.message.show_info("settings reset to their defaults")

    def show_limits(self, *_: Any) -> None:
        """State what a fit with the fields' settings may cost (early stopping, cap, epochs)."""
        from ..config import fit_limits

        try:
            max_epochs, cap, patience = fit_limits(run_config_from_fields(self.fields))
        except ValueError:  # a field the run refuses: Train says which
            self.limits.clear()
            return
        self.limits.show_info(fit_limits_text(max_epochs, cap, patience))

    def _on_train_button(self, *_: Any) -> None:
        if self.state.busy:
            self.stop()
        else:
            self.start_training()

    def start_training(self) -> bool:
        """Train a new model on the chosen inputs; False (with a message) when they are unusable."""
        return self._start(model=None)

    def apply_checkpoint(self, *_: Any) -> bool:
        """Apply (or with 'adapt', fine-tune) the chosen checkpoint instead of training."""
        path = Path(self.checkpoint.value) if self.checkpoint.value else None
        if path is None or not path.is_file():
            self.message.show_error("choose a checkpoint file (*.safetensors) saved by napari-sbtt")
            return False
        return self._start(model=path)

    def stop(self) -> None:
        """Stop training at the next epoch (the best model so far is kept)."""
        if self.state.request_stop() and self.job is not None:
            self.job.request_stop()
            self.train_button.text = "Stopping..."
            self.train_button.enabled = False

    def _traces_recording(self) -> Any:
        """The Data widget's traces recording when it is what will be fitted (no movie chosen)."""
        s = self._session
        if s.recording is not None and s.movie_layer is None:
            return s.recording
        return None

    def run_config(self, model: Path | None = None, n_rois: int | None = None) -> Any:
        """The :class:`~napari_sbtt.config.RunConfig` of the fields; with a checkpoint ``model``,
        checks it against ``n_rois`` ROIs (raises InputError with the widget's words)."""
        adapt = bool(model is not None and self.fields["adapt"].value)
        if model is not None:
            from ..pipeline import check_model_rois

            info = checkpoint_info(model)
            if info is None:
                raise InputError(f"{model.name} is not a napari-sbtt model checkpoint")
            try:
                check_model_rois(int(info.get("n_neurons", -1)), int(n_rois or 0), adapt=adapt,
                                 source=f"the checkpoint {model.name}")
            except OptionError as e:
                raise InputError(e.render(WIDGET_WORDS)) from None
        try:
            return run_config_from_fields(self.fields, adapt=adapt)
        except ValueError as e:
            raise InputError(str(e)) from None

    def _movie_recording(self) -> tuple[Any, Any, "Recording"]:
        """(movie layer, labels layer, Recording of their data with the Data / Scan tabs' timing)."""
        from ..recording import recording_from_arrays

        movie_layer, labels_layer = resolve_inputs(self._viewer, self._session)
        data, labels = check_inputs(movie_layer, labels_layer)
        s = self._session
        scan = s.scan if (s.scan is not None and s.scan_for == movie_layer.name) else None
        if scan is None:
            scan = scan_from_metadata(movie_layer.metadata)
        frame, line = timing_for(movie_layer, s) if scan is None else (None, None)
        if scan is None and frame is None and line is None:
            raise InputError("the frame period is unknown: set it in the Data widget (or build a "
                             "scan pattern in the Scan widget)")
        try:
            rec = recording_from_arrays(data, np.array(labels, copy=True), scan=scan, frame_period=frame,
                                        line_period=line, name=movie_layer.name,
                                        provenance={"movie_layer": movie_layer.name,
                                                    "labels_layer": labels_layer.name})
        except OptionError as e:
            raise InputError(e.render(WIDGET_WORDS)) from None
        except ValueError as e:
            raise InputError(str(e)) from None
        return movie_layer, labels_layer, rec

    def _start(self, model: Path | None) -> bool:
        if not self.state.can_start():
            return False
        rec = self._traces_recording()
        try:
            if rec is not None:
                name = Path(str(rec.path)).name if rec.path is not None else "traces"
                self._inputs_used = (None, self._session.recording_labels, Path(name).stem)
            else:
                movie_layer, labels_layer, rec = self._movie_recording()
                self._inputs_used = (movie_layer.name, labels_layer.name, movie_layer.name)
            config = self.run_config(model, rec.n_rois)
        except InputError as e:
            self.message.show_error(str(e))
            return False
        self.message.clear()
        self.loss_plot.reset()
        training = model is None or config.adapt
        total = FIT_STEPS if training else 1
        self.progress_bar.max, self.progress_bar.value = total, 0
        self._open_pbar(total, "SBTT training" if training else "SBTT inference")
        self.state.to(TrainState.TRAINING, "training" if training else "applying the checkpoint")
        self.job = Job(partial(run_job, rec, str(model) if model is not None else None, config),
                       on_reports=self._on_reports, on_done=self._on_done, on_error=self._on_error,
                       parent=self.native)
        self.job.start()
        return True

    # ------------------------------------------------------------------ progress
    def _open_pbar(self, total: int, desc: str) -> None:
        from napari.utils import progress

        self._close_pbar()
        self._pbar = progress(total=total, desc=desc)
        self._pbar_shown = time.monotonic()

    def _close_pbar(self) -> None:
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None

    def _on_reports(self, reports: list[Any]) -> None:
        epochs = [r for r in reports if hasattr(r, "train_loss")]
        if epochs:
            last = epochs[-1]
            fp = fit_progress(last)  # seconds against the cap, the most time left
            step = round(fp.fraction * FIT_STEPS)
            self.loss_plot.add(epochs)
            self.progress_bar.max = FIT_STEPS
            self.progress_bar.value = step
            now = time.monotonic()
            # napari's progress bar runs a nested processEvents on every update (measured: up to
            # ~100 ms on a busy 2-core machine), so it is updated at most every 2 s; the widget's
            # own bar, status line and loss plot follow every report
            if self._pbar is not None and (now - self._pbar_shown >= PBAR_INTERVAL_S or step >= FIT_STEPS):
                self._pbar_shown = now
                self._pbar.total = FIT_STEPS
                self._pbar.set_description(f"SBTT {fp.elapsed_text()}, {fp.remaining_text()}")
                self._pbar.update(max(0, step - self._pbar.n))
            extra = "; stopping after this epoch" if self.state.stop_requested else ""
            self.status.show_info(
                f"{fp.text()}: train {last.train_loss:.4g}, validation "
                f"{last.valid_loss:.4g} (best epoch {int(last.best_epoch) + 1}){extra}")
        stages = [r for r in reports if hasattr(r, "stage")]
        if stages and not epochs:
            r = stages[-1]
            self.status.show_info(f"{r.stage}: {r.message} ({r.done}/{r.total})")

    def _on_done(self, result: Any) -> None:
        self._close_pbar()
        self.job = None
        self.last_result = result
        movie_name, labels_name, name = self._inputs_used
        try:
            movie_layer = self._viewer.layers[movie_name] if movie_name is not None else None
            labels_layer = self._viewer.layers[labels_name] if labels_name is not None else None
            layer = show_result(self._viewer, result, movie_layer, labels_layer, name=name)
        except (KeyError, ValueError) as e:
            self.state.to(TrainState.FAILED, f"the run finished but its layers were removed: {e}")
            return
        self._session.result = result
        self._session.changed("result")
        n_ep = len(result.history)
        fit = (result.metrics or {}).get("fit_r_median")
        fit_txt = f", median fit r {fit:.2f}" if isinstance(fit, (int, float)) else ""
        self.progress_bar.value = self.progress_bar.max
        verdict = verdict_message(result, layer.metadata.get("sbtt_oasis_layer"))
        if verdict:
            self.message.show_info(verdict)
        if result.stopped:
            best = (result.metrics or {}).get("best_epoch")
            self.state.to(TrainState.STOPPED, f"after {n_ep} epochs, best epoch {best}{fit_txt}")
        else:
            self.state.to(TrainState.DONE, f"{n_ep} epochs{fit_txt}" if n_ep else f"applied{fit_txt}")

    def _on_error(self, exc: BaseException) -> None:
        self._close_pbar()
        self.job = None
        if isinstance(exc, RunStopped):
            self.state.to(TrainState.STOPPED, "stopped while reading the movie; nothing was fitted")
            return
        text = str(exc) or type(exc).__name__
        if not isinstance(exc, ValueError) and not hasattr(exc, "remote_type"):
            text = f"{type(exc).__name__}: {text}"
        self.state.to(TrainState.FAILED, text)

    # ------------------------------------------------------------------ saving
    def save_checkpoint(self, *_: Any) -> bool:
        result = self.last_result or self._session.result
        if result is None or getattr(result, "model", None) is None:
            self.message.show_error("nothing to save yet: train a model or apply a checkpoint first")
            return False
        path = Path(self.save_model_path.value)
        if path.suffix != ".safetensors":
            path = path.with_suffix(".safetensors")
        try:
            result.model.save(path)
        except (OSError, ValueError) as e:
            self.message.show_error(f"could not save the checkpoint: {e}")
            return False
        self.message.show_info(f"saved model to {path}")
        return True

    def save_result(self, *_: Any) -> bool:
        from ._writer import save_result_with_labels

        result = self.last_result or self._session.result
        if result is None:
            self.message.show_error("nothing to save yet: train a model or apply a checkpoint first")
            return False
        used = getattr(self, "_inputs_used", None)
        if used is not None and used[0] is None:  # a traces recording: its own ROIs, if any
            labels_layer = find_layer(self._viewer, used[1])
        else:
            _, labels_layer = resolve_inputs(self._viewer, self._session)
        labels = np.asarray(labels_layer.data) if labels_layer is not None else None
        try:
            path = save_result_with_labels(Path(self.save_result_path.value), result, labels)
        except (OSError, ValueError) as e:
            self.message.show_error(f"could not save the result: {e}")
            return False
        self.message.show_info(f"saved result to {path}")
        return True
