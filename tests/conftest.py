import json
import os
from pathlib import Path

import pytest

from fixtures.services import mlflow_uris_kept

os.environ.setdefault("RAY_DEDUP_LOGS", "0")
# Train V2 polls its workers; keep test logs readable.
os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
# Train's controller polls its workers every 2 s by default: each report, the end of the run and the
# worker group's start wait for a poll, about 8 s of every tiny run here. Every 0.1 s: a tiny
# pretraining job took 25.4-26.0 s against 27.8 s at 0.5 s, for no more CPU. Set before Ray starts,
# so the session's Ray and the jobs of subprocesses see it too.
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.1")
# No spot-instance preemption on one machine: the watcher is one more actor process per Train run
# (as the embedded Ray of pipelines.common.runtime.init_ray sets it too).
os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")


@pytest.fixture(autouse=True)
def mlflow_uris_restored():
    """Each test starts with MLflow's process-wide tracking and registry URIs as they were (see
    :func:`fixtures.services.mlflow_uris_kept`; a fixture of a wider scope that runs a sweep keeps
    them itself: it is set up before this one)."""
    with mlflow_uris_kept():
        yield


@pytest.fixture(scope="session")
def ray_local():
    """One real local Ray for the whole session (a start costs seconds of CPU on 2 cores). 4 logical
    CPUs: Ray Data's file listing needs a whole CPU beside two Train workers and a decoding actor
    (the 2-CPU hang, docs/design.md "Platform notes"). A pipeline function run by an earlier test
    may already have started Ray through ``init_ray``; the session then shares that one."""
    import ray

    if not ray.is_initialized():
        # address="local": never a `ray start` cluster found on the machine (the dashboard stays: the
        # state API that the fault tests use to find workers goes through it)
        ray.init(address="local", num_cpus=4, log_to_driver=False)
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def ray_address(ray_local) -> str:
    """The session Ray's address, for a subprocess (``RAY_ADDRESS``) that should join it rather than
    start its own cluster."""
    return ray_local.get_runtime_context().gcs_address


def registered_checkpoints(run_dir: Path) -> dict:
    """What Ray Train has registered for the run in ``run_dir``: ``latest`` (the checkpoint a restart
    or a rerun starts from) and ``kept``, oldest first, each as the metrics its report carried plus
    ``folder``; ``reports``, how many checkpoints were registered in all. Train rewrites this file
    each time it registers a checkpoint; ``{}`` until the first one (or while it is being written)."""
    try:
        state = json.loads((run_dir / "checkpoint_manager_snapshot.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}

    def entry(result: dict) -> dict:
        return {**result["metrics"], "folder": run_dir / result["checkpoint_dir_name"]}

    return {
        "latest": entry(state["latest_checkpoint_result"]) if state.get("latest_checkpoint_result") else None,
        "kept": [entry(result) for result in state["checkpoint_results"]],
        "reports": state["current_report_index"],
    }


@pytest.fixture
def train_registry():
    """:func:`registered_checkpoints`, for tests that interrupt a run at a registered checkpoint."""
    return registered_checkpoints


@pytest.fixture(scope="session")
def resume_reference(ray_local, tmp_path_factory) -> dict:
    """The resume tests' data and one uninterrupted run of their settings (:mod:`fixtures.pretrain`),
    made once for the session: ``damaged`` (a copy of tiny Speech Commands shards with three train
    clips that no longer decode), the run's data ``trace`` folder, its exported encoder (``export``)
    and ``corrupt_clips``. A resumed run of the same settings must match it step for step."""
    from fixtures.damage import damaged_copy
    from fixtures.layouts import write_layout
    from fixtures.pretrain import resume_settings, tiny_config
    from fixtures.services import mlflow_store
    from pipelines.data.ingest import IngestSettings, ingest
    from pipelines.pretrain.driver import pretrain

    base = tmp_path_factory.mktemp("resume-reference")
    write_layout("speech_commands", base / "sc", corrupt=False)
    ingest("speech_commands", base / "sc", base / "shards", settings=IngestSettings(shard_mb=0.05), progress=lambda line: None)
    damaged = base / "damaged"
    assert len(damaged_copy(base / "shards", damaged, split="train", per_shard=1, shards_hit=3)) == 3
    config = tiny_config(damaged, base, "reference", **resume_settings(damaged), **{"run.data_trace": base / "trace"})
    result = pretrain(config, mlflow_store(base / "mlflow.db"))
    return {"damaged": damaged, "trace": base / "trace", "export": result["export"], "corrupt_clips": result["corrupt_clips"]}


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 API on 127.0.0.1 (moto's standalone server) for the whole session, reached through
    the standard AWS variables exactly as a cluster reaches AWS S3, MinIO or Ceph. Yields its
    endpoint URL; each test makes its own bucket (:func:`s3_bucket`)."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one INFO line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    names = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://{host}:{port}", AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1"
    )
    from pipelines.common import storage

    storage.clear_cache()
    yield f"http://{host}:{port}"
    server.stop()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    storage.clear_cache()


@pytest.fixture
def s3_bucket(s3_server, request) -> str:
    """A new, empty bucket on the session's S3 server: ``s3://NAME``."""
    import re
    import uuid

    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-") + "-" + uuid.uuid4().hex[:8]
    import boto3  # moto's own dependency; the project itself reaches S3 through pyarrow

    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=name)
    return f"s3://{name}"
