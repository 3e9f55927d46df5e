"""The decay (s) ``deconvolve_traces`` starts from on the real ground-truth sets when no indicator
is named, with the held-out check (the default) and without it; no network is fitted.

The frames are those ``groundtruth_spikes.py`` keeps (same seed), so a set and k whose start is
the same both ways fits exactly as it did without the check: its stored
``groundtruth_spikes.py --no-indicator`` rows stand for the default. Uses the public
``napari_sbtt.traces_decay_estimate``.

    python benchmarks/groundtruth_start_decay.py --gt-dir ../shared/groundtruth [--datasets DS13-...]

Prints one JSON line per data set and k.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from _common import groundtruth_probe_args
from groundtruth_spikes import load_dataset, subsample


def main(argv: list[str] | None = None) -> int:
    from napari_sbtt import traces_decay_estimate

    a = groundtruth_probe_args(__doc__.splitlines()[0], argv, datasets=None,
                               datasets_help="data set folders (default: all)")
    if a is None:
        return 0
    names = a.datasets or sorted(d.name for d in a.gt_dir.iterdir() if d.is_dir())
    command = "python " + " ".join(["groundtruth_start_decay.py", *(argv if argv is not None else sys.argv[1:])])
    for name in names:
        recs = load_dataset(a.gt_dir / name)
        for k in a.k:
            rng = np.random.default_rng(a.seed)  # the frames groundtruth_spikes.py keeps
            obs = [subsample(r["dff"], k, rng) for r in recs]
            times = [r["t"] for r in recs]
            t0 = time.perf_counter()
            checked = traces_decay_estimate(obs, times=times)
            seconds = time.perf_counter() - t0
            plain = traces_decay_estimate(obs, times=times, config={"decay_heldout_check": False})
            print(json.dumps({"dataset": name, "k": k, "plain_s": plain, "checked_s": checked,
                              "seconds_check": round(seconds, 1), "command": command}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
