import os

import pytest

os.environ.setdefault("RAY_DEDUP_LOGS", "0")
# Train V2 polls its workers; keep test logs readable.
os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")


@pytest.fixture(scope="module")
def ray_local():
    """A real local Ray for the module. 4 logical CPUs on 2 cores: Ray Data's file listing needs
    a whole CPU beside two Train workers and a decoding actor (the 2-CPU hang, docs/design.md "Platform notes")."""
    import ray

    ray.init(num_cpus=4, log_to_driver=False)
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()
