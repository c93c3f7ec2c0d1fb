"""Pretraining with everything in a bucket: shards, Train's checkpoints and the exported encoder, on a
real S3 API on 127.0.0.1 (real Ray Train, real MLflow); a rerun resumes from the bucket."""

import json
import shutil
from pathlib import Path

import pytest
from mlflow import MlflowClient

from fixtures.layouts import write_layout
from fixtures.pretrain import tiny_config
from fixtures.services import mlflow_store
from mast_core.checkpoint import load_encoder
from pipelines.common import storage
from pipelines.common.config import ConfigError
from pipelines.data.ingest import IngestSettings, ingest
from pipelines.pretrain.driver import pretrain


@pytest.mark.slow
def test_shards_checkpoints_and_export_live_in_the_bucket_and_a_rerun_resumes_from_it(ray_local, s3_bucket, tmp_path):
    write_layout("speech_commands", tmp_path / "raw", corrupt=False)
    shards = f"{s3_bucket}/data/speech_commands"
    ingest("speech_commands", tmp_path / "raw", shards, settings=IngestSettings(shard_mb=0.05), progress=lambda line: None)
    runs = f"{s3_bucket}/runs"
    config = tiny_config(shards, tmp_path, "in-bucket", **{"run.storage": runs, "optim.total_steps": 4, "run.num_workers": 1})
    tracking = mlflow_store(tmp_path / "mlflow.db")

    result = pretrain(config, tracking)
    assert result["step"] == 4 and result["export"] == f"{runs}/in-bucket/encoder"
    assert storage.is_file(storage.join(result["export"], "encoder.safetensors"))
    run_folder = storage.listdir(f"{runs}/in-bucket")
    assert [name for name in run_folder if name.startswith("checkpoint_")], run_folder  # Train's checkpoints
    snapshot = json.loads(storage.read_text(f"{runs}/in-bucket/checkpoint_manager_snapshot.json"))
    assert snapshot["latest_checkpoint_result"]["metrics"]["step"] == 4
    assert not (tmp_path / "runs").exists() and not list(Path.cwd().glob("s3:*"))  # nothing on the local disk
    storage.copy_tree(result["export"], str(tmp_path / "encoder"))
    encoder, features = load_encoder(tmp_path / "encoder")
    assert features.mean != 0.0  # the shards' statistics, read from the manifest in the bucket

    # every local trace of the run goes (Ray's session folders, ~/ray_results, the test's folder)
    local = [path for root in (Path("/tmp/ray"), Path.home() / "ray_results", tmp_path) for path in root.glob("**/in-bucket")]
    for path in local:
        shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(tmp_path / "encoder")
    again = pretrain(config, tracking)  # the same command: Train finds the run in the bucket
    assert again["run_id"] == result["run_id"] and again["step"] == 4
    tags = MlflowClient(tracking).get_run(result["run_id"]).data.tags
    assert tags["mast.resumed_from_step"] == "4"
    assert tags["mast.resumed_state_hash"] == snapshot["latest_checkpoint_result"]["metrics"]["state_hash"]


def test_a_missing_bucket_fails_before_ray_or_mlflow_start(s3_server, tmp_path):
    config = tiny_config(tmp_path / "no-shards", tmp_path, "nowhere", **{"run.storage": "s3://no-such-bucket-for-runs/x"})
    with pytest.raises(
        ConfigError, match=r"run.storage s3://no-such-bucket-for-runs/x: the bucket 'no-such-bucket-for-runs' does not exist"
    ):
        pretrain(config, f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert not (tmp_path / "mlflow.db").exists()
