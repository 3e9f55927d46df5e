"""The child process of :func:`napari_sbtt.isolated.run_isolated`: ``python -m napari_sbtt._child``.

Reads one job frame from stdin, fits or applies the model exactly as
:func:`napari_sbtt.api.run_on_observations` does, and answers on its original stdout (see the
protocol in :mod:`napari_sbtt.isolated`). A ``S`` byte on stdin stops the fit at the next epoch
(the best model so far is kept and the result is still sent); the end of stdin (the parent
closed it or died) ends this process at once.
"""

from __future__ import annotations

import os
import sys
import threading
import traceback
from typing import IO, Any


def _watch_stdin(stdin: IO[bytes], stop: threading.Event) -> None:
    while True:
        b = stdin.read(1)
        if not b:  # the parent is gone or no longer wants an answer
            os._exit(3)
        if b == b"S":
            stop.set()


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
    # the protocol owns the original stdout; anything printed goes to stderr instead
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    stdin = sys.stdin.buffer

    from napari_sbtt.isolated import read_frame, write_frame

    ok, job = read_frame(stdin)
    if not ok:
        return 3
    stop = threading.Event()
    threading.Thread(target=_watch_stdin, args=(stdin, stop), daemon=True).start()
    try:
        from napari_sbtt.api import RunConfig, _fit_and_infer, _reporter

        def send(r: Any) -> bool:
            """Pass the report to the parent; answer whether the parent asked to stop."""
            write_frame(out, ("report", r))
            return stop.is_set()

        report, stopped = _reporter(send)
        result = _fit_and_infer(
            job["observations"], job["scan"], job["frame_period"], job["model"],
            RunConfig.from_dict(job["config"]), report, stopped, job["seconds_extract"])
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
