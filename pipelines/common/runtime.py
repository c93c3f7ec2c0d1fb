"""Where a pipeline runs: a Ray cluster when one is configured, else an embedded local Ray."""

from __future__ import annotations

import os
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


def init_ray(num_cpus: int | None = None) -> None:
    """Connect to ``RAY_ADDRESS`` if set (a cluster or ``ray job submit``), else start Ray locally."""
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=True)
    else:
        # one machine has no spot-instance preemption to watch for: Train's watcher would be one
        # more actor process per run (set before Ray starts, so its processes inherit it)
        os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
        ray.init(num_cpus=num_cpus or local_cpus(), log_to_driver=True)
    import ray.data

    # Progress bars per operator are noise in logs; the pipelines print their own progress.
    ray.data.DataContext.get_current().enable_progress_bars = False
