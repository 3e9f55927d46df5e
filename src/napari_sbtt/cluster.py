"""Ray, the one way napari-sbtt uses more than one process or machine (:mod:`napari_sbtt.batchrun`,
:mod:`napari_sbtt.search`).

Ray is optional (``pip install "napari-sbtt[tune]"``, ``ray[tune]>=2.9,<3``) and imported only
here, on first use; only its public API is used (``ray.init``, ``ray.remote``, ``ray.wait``,
``ray.get``, and Ray Tune's ``Tuner``). :func:`start_ray` starts a local Ray on this machine
unless one is running in this process already, or joins a cluster at ``address`` (``"auto"``:
the cluster this machine belongs to, ``"ray://host:10001"``: a remote one through Ray Client).
"""

from __future__ import annotations

from types import ModuleType

__all__ = ["RAY_MISSING", "require_ray", "start_ray"]

#: the one line a user without Ray gets
RAY_MISSING = 'Ray is not installed; install it with: pip install "napari-sbtt[tune]"'


def require_ray() -> ModuleType:
    """The ``ray`` module; ImportError with the install command when it is missing."""
    try:
        import ray
    except ImportError:
        raise ImportError(RAY_MISSING) from None
    return ray


def start_ray(address: str | None = None, *, num_cpus: int | None = None,
              num_gpus: int | None = None) -> bool:
    """Make sure Ray runs for this process; True when this call started (or joined) it, so the
    caller shuts it down again with ``ray.shutdown()``.

    ``address`` None starts a local Ray with ``num_cpus`` / ``num_gpus`` (None: all of this
    machine's); ``"auto"`` or ``"ray://host:port"`` joins a running cluster (then ``num_cpus`` and
    ``num_gpus`` must be None: the cluster has its own). A Ray already initialised in this process
    (a notebook, a test fixture) is used as it is.
    """
    ray = require_ray()
    if ray.is_initialized():
        return False
    if address is not None and (num_cpus is not None or num_gpus is not None):
        raise ValueError(f"num_cpus / num_gpus size a local Ray; a cluster at {address!r} has its own "
                         "resources (leave them out, or leave out the address)")
    kwargs: dict[str, object] = {"include_dashboard": False, "configure_logging": True,
                                 "log_to_driver": True}
    if address is None:
        kwargs.update(num_cpus=num_cpus, num_gpus=num_gpus)
    ray.init(address=address, **kwargs)
    return True
