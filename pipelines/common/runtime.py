"""Where a pipeline runs: a Ray cluster when one is configured, else an embedded local Ray."""

from __future__ import annotations

import os
import socket
import sys


def worker_print(message: str, *, error: bool = False) -> None:
    """One line from inside a Ray Train worker, written straight to the process's stream.

    Train V2 replaces ``print`` in its workers. Once a library has wrapped ``sys.stdout`` (as
    happens in these workers), the replacement writes to the stream *and* to Train's logger, and
    every line reached the driver twice. Writing to the stream directly gives one copy.
    """
    stream = sys.stderr if error else sys.stdout
    stream.write(message + "\n")
    stream.flush()


def local_cpus() -> int:
    """Logical CPUs for an embedded Ray: at least 4 on small machines.

    Ray Data's file listing needs a whole CPU next to the training workers and decoding actors;
    with only 2 logical CPUs, Data and Train wait on each other for ever. Oversubscribing 2 cores
    is harmless because every worker runs torch with one thread.
    """
    return max(os.cpu_count() or 1, 4)


class RayClusterError(ConnectionError):
    """``RAY_ADDRESS`` names a cluster that does not answer; the message names the address."""


def _answers(address: str, timeout: float = 2.0) -> bool:
    """Whether something listens at ``host:port`` (a GCS), without Ray's long connection retries."""
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        return True  # not host:port (``auto``, ``ray://...``): leave it to Ray
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def running_local_cluster() -> str | None:
    """The address of a cluster started on this machine with ``ray start`` (Ray's cluster file),
    or None. A stale file, whose cluster is gone, is reported and ignored."""
    from ray._common.utils import get_ray_address_file

    path = get_ray_address_file(None)
    try:
        with open(path) as handle:
            address = handle.read().strip()
    except OSError:
        return None
    if address and _answers(address):
        return address
    print(
        f"[ray] {path} names a Ray cluster at {address or '(empty)'} that does not answer (stopped without "
        f"`ray stop`?); starting a local Ray instead. `ray stop` or deleting the file silences this.",
        file=sys.stderr,
        flush=True,
    )
    return None


def init_ray(num_cpus: int | None = None) -> None:
    """Join a cluster that is there, else start Ray locally with ``num_cpus`` (default :func:`local_cpus`).

    A cluster is there when ``RAY_ADDRESS`` is set (a cluster, or the driver of ``ray job submit``)
    or when ``ray start`` runs on this machine. Joining passes no resources: the cluster has its
    own. Raises :class:`RayClusterError` naming the address when ``RAY_ADDRESS`` names nothing alive.
    """
    import ray

    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS")
    if address and address.startswith(("http://", "https://")):
        raise RayClusterError(
            f"RAY_ADDRESS={address} is a dashboard (Jobs API) address: run the command on the cluster with "
            f"`ray job submit -- mast ...`, or unset RAY_ADDRESS to run it here"
        )
    if address and not _answers(address):
        raise RayClusterError(f"RAY_ADDRESS={address}: no Ray cluster answers there; start it, or unset RAY_ADDRESS to run locally")
    if not address:
        address = running_local_cluster()
        if address:
            print(f"[ray] joining the Ray cluster at {address} (started with `ray start` on this machine)", file=sys.stderr, flush=True)
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        # one machine has no spot-instance preemption to watch for: Train's watcher would be one
        # more actor process per run (set before Ray starts, so its processes inherit it)
        os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
        ray.init(address="local", num_cpus=num_cpus or local_cpus(), log_to_driver=True)
    import ray.data

    # Progress bars per operator are noise in logs; the pipelines print their own progress.
    ray.data.DataContext.get_current().enable_progress_bars = False
