"""Ray itself: importing it (with the pip command when missing), joining or starting a cluster, the
executor's options and the resources its actors declare."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import Field

from harness.errors import HarnessError
from harness.gates import Gate
from harness.options import Options

PIP_HINT = "pip install 'anomaly-harness[ray]'"
#: Ray's resource names and the actor options that ask for them.
RESOURCES = (("CPU", "num_cpus"), ("GPU", "num_gpus"))


class RayOptions(Options):
    """Options of ``--executor ray``: the ``[executor-options]`` table of a run config or sweep file."""

    replicas: int = Field(1, ge=1, description=(
        "actor replicas of each model that holds a local model (hf); each loads it once, and every request goes "
        "to the replica with the fewest in flight. A model's concurrency option is per replica"))
    replica_gpus: float | None = Field(None, ge=0, description=(
        "GPUs each replica declares; None: 1 when the cluster has GPUs, else 0"))
    replica_cpus: float = Field(1.0, ge=0, description="CPUs each replica declares")
    gate_gpus: float | None = Field(None, ge=0, description=(
        "GPUs each category's gate actor declares; None: 1 when the gate's device option is cuda (or auto on a "
        "cluster with GPUs), else 0"))
    gate_cpus: float = Field(1.0, ge=0, description="CPUs each category's gate actor declares")
    max_restarts: int = Field(3, ge=0, description=(
        "restarts of an actor whose process died, and retries of each of its calls that were cut short"))


def import_ray() -> Any:
    """The ``ray`` module, or a `HarnessError` with the pip command."""
    try:
        import ray
    except ImportError:
        raise HarnessError(f"--executor ray needs Ray, which is not installed: {PIP_HINT}") from None
    return ray


def connect(ray: Any, address: str | None) -> bool:
    """Join the cluster at ``address`` or, without one, the local instance (started when none runs);
    ``local``: always start a new instance for this process.

    True when this call connected (the caller then disconnects); False when this process already was.
    """
    if ray.is_initialized():
        return False
    quiet = {"logging_level": logging.WARNING, "log_to_driver": False}
    where = f"at {address}" if address else "running on this machine (RAY_ADDRESS, or the latest one started here)"
    try:
        if address == "local":
            ray.init(address="local", include_dashboard=False, **quiet)
        elif address:
            ray.init(address=address, **quiet)
        else:
            try:
                ray.init(address="auto", **quiet)  # RAY_ADDRESS, or the latest instance started on this machine
            except ConnectionError:
                ray.init(include_dashboard=False, **quiet)
    except (ConnectionError, RuntimeError) as error:  # RuntimeError: e.g. another Ray or Python version there
        reason = " ".join(str(error).split())
        raise HarnessError(f"cannot join the Ray cluster {where}: {reason}. Is `ray start --head` running there "
                           "with this Ray and Python? --ray-address local starts a new instance for this run") from None
    return True


def gate_resources(gate: Gate, options: RayOptions, cluster: dict[str, float]) -> dict[str, float]:
    """``num_cpus`` and ``num_gpus`` of a category's gate actor."""
    gpus = options.gate_gpus
    if gpus is None:
        device = str(getattr(getattr(gate, "options", None), "device", "") or "")
        gpus = 1.0 if device.startswith("cuda") or (device == "auto" and cluster.get("GPU", 0) > 0) else 0.0
    return {"num_cpus": options.gate_cpus, "num_gpus": gpus}


def replica_resources(options: RayOptions, cluster: dict[str, float]) -> dict[str, float]:
    """``num_cpus`` and ``num_gpus`` of one model replica."""
    gpus = options.replica_gpus
    if gpus is None:
        gpus = 1.0 if cluster.get("GPU", 0) > 0 else 0.0
    return {"num_cpus": options.replica_cpus, "num_gpus": gpus}


def check_room(cluster: dict[str, float], gate: dict[str, float], replicas: list[dict[str, float]]) -> None:
    """The replicas and one gate actor must fit in the cluster together, or the run would wait for ever."""
    for resource, key in RESOURCES:
        wanted = gate[key] + sum(r[key] for r in replicas)
        if wanted > cluster.get(resource, 0) + 1e-9:
            raise HarnessError(
                f"--executor ray: the model replicas ({len(replicas)} x {replicas[0][key] if replicas else 0:g}) and a "
                f"gate actor ({gate[key]:g}) need {wanted:g} {resource}, the cluster has {cluster.get(resource, 0):g}; "
                "lower [executor-options] replicas, replica_cpus / replica_gpus or gate_cpus / gate_gpus, or add nodes")


def gate_slots(cluster: dict[str, float], gate: dict[str, float], replicas: list[dict[str, float]], categories: int) -> int:
    """How many categories' gate actors fit beside the replicas at once (at least 1, at most ``categories``)."""
    slots = categories
    for resource, key in RESOURCES:
        if gate[key] > 0:
            left = cluster.get(resource, 0) - sum(r[key] for r in replicas)
            slots = min(slots, int(left // gate[key] + 1e-9))
    return max(1, slots)


class Reservation:
    """One run's actors' resources, reserved together as a Ray placement group: a run's replicas and gate actors
    are placed at once or wait together, so runs sharing a cluster (``harness sweep --parallel``) never each hold
    half of what they need. Each actor asks for its slot's `options`."""

    def __init__(self, ray: Any, wants: list[dict[str, float]]):
        from ray.util.placement_group import placement_group

        bundles: list[dict[str, float]] = []
        self.index: list[int | None] = []  # slot -> its bundle; None: it needs nothing, so it is not placed
        for want in wants:
            bundle = {name: want[key] for name, key in RESOURCES if want[key] > 0}
            self.index.append(len(bundles) if bundle else None)
            if bundle:
                bundles.append(bundle)
        self.group = placement_group(bundles, strategy="PACK") if bundles else None

    async def ready(self) -> None:
        if self.group is not None:
            await self.group.ready()

    def options(self, slot: int) -> dict[str, Any]:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        index = self.index[slot]
        if index is None:
            return {}
        return {"scheduling_strategy": PlacementGroupSchedulingStrategy(self.group, placement_group_bundle_index=index)}

    def release(self) -> None:
        if self.group is not None:
            from ray.util.placement_group import remove_placement_group

            remove_placement_group(self.group)


def unwrapped(error: BaseException) -> BaseException:
    """The exception raised inside a Ray worker, without Ray's wrapper (its traceback text)."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, BaseException) else error
