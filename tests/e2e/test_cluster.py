"""A real cluster on one machine: a head and two worker nodes as separate `ray start` processes with
token authentication, jobs submitted through the Jobs API, tracking to a real `mlflow server` (its
artifacts in S3), shards, checkpoints and the export in a local S3 server.

1. `mast pretrain` with two Train workers, one per worker node. Mid-run one worker node is killed
   (its raylet and workers, by pid) and a replacement node joins: the job resumes from the newest
   checkpoint in the bucket and finishes, with one MLflow run and every step logged exactly once.
2. `mast sweep` on the same cluster, its checkpoint and shards in the bucket: trials run on both
   worker nodes.
"""

import json
import re
import sys
import time

import pytest
import torch
import yaml
from mlflow import MlflowClient

from fixtures.cluster import RayNodes
from fixtures.layouts import write_layout
from fixtures.pretrain import tiny_config
from fixtures.services import free_port, start_mlflow_server, stop_server
from mast_core.checkpoint import load_encoder, save_encoder
from mast_core.mast import mast_tiny
from pipelines.common import storage
from pipelines.common.config import to_dict
from pipelines.data.ingest import IngestSettings, ingest

pytestmark = pytest.mark.slow
AWS = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


@pytest.fixture(scope="module")
def cluster(ray_local, s3_server, tmp_path_factory):
    import os

    import boto3

    base = tmp_path_factory.mktemp("cluster")
    bucket = "cluster-e2e"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=bucket)
    write_layout("speech_commands", base / "raw", corrupt=False)
    ingest("speech_commands", base / "raw", f"s3://{bucket}/data/kws", settings=IngestSettings(shard_mb=0.05), progress=lambda line: None)
    aws = {name: os.environ[name] for name in AWS}
    port = free_port()
    server = start_mlflow_server(
        base / "mlflow.db", f"s3://{bucket}/mlflow-artifacts", port, env={"MLFLOW_S3_ENDPOINT_URL": aws["AWS_ENDPOINT_URL"]}
    )
    tracking = f"http://127.0.0.1:{port}"
    nodes = RayNodes(env={**aws, "MLFLOW_TRACKING_URI": tracking})
    try:
        nodes.start_head(num_cpus=0)  # schedules nothing: every task and trial runs on a worker node
        nodes.add_node("a", num_cpus=2, resources={"mast_worker": 1})
        nodes.add_node("b", num_cpus=2, resources={"mast_worker": 1})
        yield {"nodes": nodes, "bucket": f"s3://{bucket}", "tracking": tracking, "base": base}
    finally:
        nodes.stop()
        stop_server(server)


def submit(nodes: RayNodes, base, *arguments: str) -> str:
    """``mast ARGUMENTS`` as a job; its driver runs in ``base`` (not /tmp, where /tmp/ray would
    shadow the ray package)."""
    entrypoint = f"cd {base} && {sys.executable} -m pipelines {' '.join(arguments)}"
    return nodes.jobs().submit_job(entrypoint=entrypoint)


def wait_for(client, job: str, timeout: float) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = str(client.get_job_status(job).value)
        if status in TERMINAL:
            return status
        time.sleep(1)
    raise TimeoutError(f"job {job} still running after {timeout} s:\n{client.get_job_logs(job)[-6000:]}")


def rank_nodes(logs: str) -> list[tuple[int, str]]:
    return [(int(rank), node) for rank, node in re.findall(r"\[pretrain\] rank (\d+)/2 on node ([0-9a-f]+)", logs)]


def latest_checkpoint_step(run: str) -> int:
    try:
        snapshot = json.loads(storage.read_text(f"{run}/checkpoint_manager_snapshot.json"))
    except (FileNotFoundError, json.JSONDecodeError):
        return 0
    latest = snapshot.get("latest_checkpoint_result")
    return latest["metrics"]["step"] if latest else 0


def test_pretrain_job_survives_the_loss_of_a_worker_node(cluster):
    nodes, bucket, tracking, base = cluster["nodes"], cluster["bucket"], cluster["tracking"], cluster["base"]
    name, steps = "multinode", 12
    config = tiny_config(
        f"{bucket}/data/kws",
        base,
        name,
        **{
            "run.storage": f"{bucket}/runs",
            "run.num_workers": 2,
            "run.worker_resources": "{mast_worker: 1}",  # one Train worker per worker node
            "run.max_failures": 3,
            "run.checkpoint_every": 2,
            "run.log_every": 1,
            "optim.total_steps": steps,
            "data.decode_actors": 1,
        },
    )
    (base / "pretrain.yaml").write_text(yaml.safe_dump(to_dict(config)))
    client = nodes.jobs()
    job = submit(nodes, base, "pretrain", "--config", str(base / "pretrain.yaml"))
    node_a, node_b = nodes.node_id("a"), nodes.node_id("b")

    # kill worker node a once a checkpoint past the first is registered in the bucket
    run = f"{bucket}/runs/{name}"
    deadline = time.time() + 300
    while latest_checkpoint_step(run) < 4:
        assert time.time() < deadline and str(client.get_job_status(job).value) not in TERMINAL, client.get_job_logs(job)[-6000:]
        time.sleep(0.5)
    before = rank_nodes(client.get_job_logs(job))
    assert {node for _, node in before} == {node_a, node_b}, before  # the two workers on the two worker nodes
    killed_at = nodes.kill_node("a")
    nodes.add_node("c", num_cpus=2, resources={"mast_worker": 1})  # the replacement
    node_c = nodes.node_id("c")

    status = wait_for(client, job, timeout=400)
    logs = client.get_job_logs(job)
    assert status == "SUCCEEDED", logs[-8000:]
    resumed = re.findall(r"\[pretrain\] resumed from step (\d+)", logs)
    assert resumed and int(resumed[-1]) >= 4, logs[-8000:]
    placements = rank_nodes(logs)
    first = {rank: node for rank, node in reversed(placements)}  # each rank's first line
    last = dict(placements)  # each rank's last line: the group that finished
    assert set(first.values()) == {node_a, node_b} and set(last.values()) == {node_b, node_c}, placements

    # one MLflow run on the server, every step logged exactly once
    mlflow = MlflowClient(tracking)
    experiment = mlflow.get_experiment_by_name("mast-pretrain")
    runs = mlflow.search_runs([experiment.experiment_id], filter_string=f"tags.`mlflow.runName` = '{name}'")
    assert len(runs) == 1
    history = mlflow.get_metric_history(runs[0].info.run_id, "loss")
    assert sorted(m.step for m in history) == list(range(1, steps + 1))
    assert runs[0].data.tags["mast.resumed_from_step"] == resumed[-1]
    # the export is in the bucket and loads; MLflow keeps its artifacts in the bucket too
    encoder, _ = load_encoder(f"{run}/encoder")
    assert encoder.arch == "mast" and encoder.embed_dim > 0
    assert any(storage.walk(f"{bucket}/mlflow-artifacts")), "no MLflow artifact reached the bucket"

    first_after = min(m.timestamp for m in history if m.timestamp / 1000 > killed_at) / 1000
    print(f"\n[figure] node kill -> first step after the resume: {first_after - killed_at:.1f} s (resumed from step {resumed[-1]})")


# Trials of about 3 s (150 epochs, one report each): Tune hands a pending trial to an actor that
# has just finished one (reuse_actors) and drops the actor it was starting for it, so trials that
# end before the other node's actor is up would all run on the first node.
SPACE = """num_samples: 4
scheduler: {type: fifo}
resources: {cpu: 1}
space:
  lr: {loguniform: [1.0e-3, 1.0e-1]}
  batch_size: 16
  max_epochs: 150
  patience: 150
"""


def test_sweep_job_runs_trials_on_both_worker_nodes(cluster):
    nodes, bucket, tracking, base = cluster["nodes"], cluster["bucket"], cluster["tracking"], cluster["base"]
    torch.manual_seed(0)
    save_encoder(mast_tiny(max_frames=200), base / "sweep-encoder")
    storage.copy_tree(str(base / "sweep-encoder"), f"{bucket}/encoders/tiny")
    (base / "fx_kws.yaml").write_text(
        "name: fx_kws\ndataset: speech_commands\nshards: data/kws\nframes_per_clip: 98\nsplits: {train: train, validation: validation, test: test}\n"
    )
    (base / "space.yaml").write_text(SPACE)
    client = nodes.jobs()
    job = submit(
        nodes, base, "sweep", str(base / "fx_kws.yaml"), "--checkpoint", f"{bucket}/encoders/tiny", "--space", str(base / "space.yaml"),
        "--storage", f"{bucket}/sweeps", "--data-root", bucket,
    )  # fmt: skip
    status = wait_for(client, job, timeout=300)
    logs = client.get_job_logs(job)
    assert status == "SUCCEEDED", logs[-8000:]
    trial_nodes = re.findall(r"\[sweep\] trial \d+/4 done: .* on node ([0-9a-f]+)", logs)
    workers = {nodes.node_id(name) for name in nodes.nodes if name != "head"}
    assert len(trial_nodes) == 4 and set(trial_nodes) == workers, (trial_nodes, workers)
    mlflow = MlflowClient(tracking)
    parent = mlflow.search_runs(
        [mlflow.get_experiment_by_name("mast-sweeps").experiment_id], "tags.task = 'fx_kws' and tags.protocol = 'linear'"
    )
    assert len(parent) == 1 and 0.0 <= parent[0].data.metrics["test_accuracy"] <= 1.0
    assert storage.listdir(f"{bucket}/data/kws/embeddings")  # the embedding cache, in the bucket
