"""The child process of :func:`napari_sbtt.isolated.run_isolated`: ``python -m napari_sbtt._child``.

Reads one job frame from stdin, fits or applies the model with
:func:`napari_sbtt.pipeline.fit_and_infer` (as a run in the parent's process would), and answers
on its original stdout (see the protocol in :mod:`napari_sbtt.isolated`). A ``S`` byte on stdin
stops the fit at the next epoch through the run's :class:`~napari_sbtt.core.progress.RunControl`
(the best model so far is kept and the result is still sent); the end of stdin (the parent
closed it or died) ends this process at once.
"""

from __future__ import annotations

import os
import sys
import threading
import traceback


def _lower_priority() -> None:
    """Apply the niceness the parent asked for (``NAPARI_SBTT_CHILD_NICE``); best effort."""
    try:
        n = int(os.environ.get("NAPARI_SBTT_CHILD_NICE", "0") or 0)
        if n > 0 and hasattr(os, "nice"):
            os.nice(n)
    except (ValueError, OSError):
        pass


def main() -> int:
    _lower_priority()
    from napari_sbtt.core.frames import child_streams, read_frame, watch_stdin, write_frame

    out, stdin = child_streams()
    ok, job = read_frame(stdin)
    if not ok:
        return 3
    from napari_sbtt.core.progress import RunControl

    control = RunControl(lambda r: write_frame(out, ("report", r)))  # every report to the parent
    threading.Thread(target=watch_stdin, args=(stdin, control.stop), daemon=True).start()
    try:
        from napari_sbtt.config import RunConfig
        from napari_sbtt.pipeline import fit_and_infer

        result = fit_and_infer(
            job["observations"], model=job["model"], config=RunConfig.from_dict(job["config"]),
            control=control, scan=job["scan"], frame_period=job["frame_period"],
            seconds_extract=job["seconds_extract"])
        result.model.save(job["model_out"], overwrite=True)
        result.model = None
        write_frame(out, ("done", result))
        return 0
    except BaseException as e:  # noqa: BLE001 - every failure goes back to the parent
        tb = traceback.format_exc()
        if not isinstance(e, (ValueError, OSError)):  # user mistakes need no traceback
            sys.stderr.write(tb)
        write_frame(out, ("error", type(e).__module__, type(e).__name__, str(e), tb))
        return 1


if __name__ == "__main__":
    sys.exit(main())
