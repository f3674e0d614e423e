"""First-party plugin: ``harness run --executor ray``, the run's stages on a Ray cluster.

Each category's gate is fitted, and its samples prepared, in one Ray actor with declared resources;
classifiers that hold a local model (``Classifier.holds_model``: ``hf``) become a pool of actor
replicas, each building the model once; hosted APIs stay asynchronous in the driver. Everything
else is the core's `harness.run.runner.Run`, which the executor subclasses: only the driver writes
records, so ``--resume``, the response cache and the progress display are unchanged.

Modules: `cluster` (importing Ray, joining or starting a cluster, the options and resources),
`workers` (the category actor and the model replicas) and `executor` (`RayRun`).
Ray is an optional extra: ``pip install 'anomaly-harness[ray]'``; nothing imports it until a run uses it.
"""

from harness.hookspecs import hookimpl

__version__ = "0.1.0"


@hookimpl(trylast=True)
def register_executors(register):
    """Register the ``ray`` executor."""
    from harness_ray.executor import RayRun

    register(RayRun)
