"""Distributed SS-MAST pretraining on Ray Train (2 CPU workers), logged to a real MLflow store."""

import json
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

from fixtures import REPO_ROOT
from fixtures.damage import damaged_copy, truncate
from fixtures.layouts import write_layout
from fixtures.pretrain import RESUME_STEPS, resume_settings, tiny_config
from fixtures.services import free_port, mlflow_store, start_mlflow_server, stop_server
from mast_core.checkpoint import load_encoder
from pipelines.common.config import ConfigError, load_config
from pipelines.data.ingest import IngestSettings, ingest
from pipelines.pretrain.driver import PretrainConfig, feature_path, pretrain
from pipelines.pretrain.state import read_trace

ROOT = REPO_ROOT


@pytest.fixture(scope="module")
def shards(ray_local, tmp_path_factory):
    base = tmp_path_factory.mktemp("pretrain-data")
    write_layout("speech_commands", base / "sc", corrupt=False)
    ingest("speech_commands", base / "sc", base / "shards", settings=IngestSettings(shard_mb=0.05), progress=lambda line: None)
    return base / "shards"


def loss_steps(tracking_uri: str, run_id: str) -> list[int]:
    return sorted(m.step for m in MlflowClient(tracking_uri).get_metric_history(run_id, "loss"))


@pytest.mark.slow
def test_two_worker_pretraining_logs_to_mlflow_and_exports(shards, tmp_path, capfd):
    """Also on shards damaged after ingest: a train clip of 4 of the 17 shards no longer decodes
    (FLAC frames zeroed); those clips are skipped and counted, training goes on with full batches."""
    tracking = mlflow_store(tmp_path / "mlflow.db")
    damaged = damaged_copy(shards, tmp_path / "shards", split="train", shards_hit=4)
    config = tiny_config(
        tmp_path / "shards",
        tmp_path,
        "two-workers",
        **{"data.validation_sources": f"[{{path: '{shards}', splits: [validation]}}]", "data.val_clips": 8, "run.val_every": 3},
    )
    result = pretrain(config, tracking)
    assert result["step"] == 6
    # each shard is read 8 times an epoch: 48 of the epoch's 136 clips trained, 32 of them damaged copies
    assert len(damaged) == 4 and 1 <= result["corrupt_clips"] <= 32
    assert f"{result['corrupt_clips']} clips that did not decode were skipped" in capfd.readouterr().out
    client = MlflowClient(tracking)
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["model.arch"] == "mast_tiny" and run.data.params["run.num_workers"] == "2"
    assert run.data.tags["mast.world_size"] == "2"  # as the workers saw it, not only the configured value
    assert run.data.tags["mast.feature_path"] == "tasks"  # data.features=auto on CPUs
    # both ranks start from the same weights, teacher and key queue (the same negatives from step 0)
    assert run.data.tags["mast.initial_state.rank0"] == run.data.tags["mast.initial_state.rank1"]
    assert loss_steps(tracking, result["run_id"]) == [1, 2, 3, 4, 5, 6]
    assert {"loss", "lr", "momentum", "samples_per_s", "data_wait_s", "val_loss"} <= set(run.data.metrics)
    assert run.data.metrics["corrupt_clips"] == result["corrupt_clips"]  # the count of the last checkpoint, all ranks
    assert sorted(m.step for m in client.get_metric_history(result["run_id"], "val_loss")) == [3, 6]
    # the representation monitor runs with validation, on the validation clips of both ranks
    knn = client.get_metric_history(result["run_id"], "monitor/knn_accuracy")
    assert sorted(m.step for m in knn) == [3, 6] and all(0.0 <= m.value <= 1.0 for m in knn)
    assert {"monitor/embedding_spread", "monitor/collapse_warning"} <= set(run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(result["run_id"])}
    assert {"config.yaml", "loss_curve.png", "encoder"} <= artifacts
    encoder, features = load_encoder(result["export"])
    assert encoder.arch == "mast" and features.std > 0


@pytest.mark.slow
def test_a_killed_worker_resumes_from_the_last_checkpoint(resume_reference, tmp_path, train_registry, ray_address):
    """SIGKILL one Train worker once Train has registered a checkpoint; the job restarts the group
    from the newest registered checkpoint, with the state it saved, and finishes the steps; every
    step trained the same clips as in an uninterrupted run of the same config (exact resume of the
    data position, across epochs: each rank's epoch here is a few batches)."""
    from ray.util.state import list_actors

    tracking = mlflow_store(tmp_path / "mlflow.db")
    damaged = resume_reference["damaged"]  # three train clips that no longer decode, counted once per encounter
    config = tiny_config(damaged, tmp_path, "fault", **resume_settings(damaged), **{"run.data_trace": tmp_path / "trace"})
    run_dir = tmp_path / "runs" / "fault"
    killed = []

    def kill_a_worker_once_a_checkpoint_is_registered():
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not list(run_dir.glob("checkpoint_*")):
            time.sleep(0.05)
        # this session's Ray by address: other Ray instances may run on the machine
        workers = list_actors(address=ray_address, filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")])
        while time.monotonic() < deadline and not train_registry(run_dir).get("latest"):
            time.sleep(0.05)  # the folder is written first; Train registers it at its next poll
        if workers:
            os.kill(workers[-1].pid, signal.SIGKILL)
            killed.append(workers[-1].pid)

    killer = threading.Thread(target=kill_a_worker_once_a_checkpoint_is_registered, daemon=True)
    killer.start()
    result = pretrain(config, tracking)
    killer.join()
    assert killed, "no worker was killed"
    assert result["step"] == RESUME_STEPS == 10
    registry = train_registry(run_dir)
    # every checkpoint step registered once: had the restart continued from an older checkpoint than
    # the newest registered one, the steps in between would have been registered again
    assert [entry["step"] for entry in registry["kept"]] == [2, 4, 6, 8, 10] and registry["reports"] == 5
    run = MlflowClient(tracking).get_run(result["run_id"])
    resumed = int(run.data.tags["mast.resumed_from_step"])
    assert resumed >= 2
    saved = next(entry for entry in registry["kept"] if entry["step"] == resumed)
    assert json.loads((saved["folder"] / "progress.json").read_text())["state_hash"] == saved["state_hash"]
    # weights, optimiser moments, scheduler, key queue, RNG and data position as they were saved
    assert run.data.tags["mast.resumed_state_hash"] == saved["state_hash"]
    assert loss_steps(tracking, result["run_id"]) == list(range(1, 11))  # one continuous sequence

    # the same clips in every step as an uninterrupted run of the same settings: none trained twice, none skipped
    expected, got = read_trace(resume_reference["trace"]), read_trace(tmp_path / "trace")
    assert sorted(expected) == [0, 1] and sorted(expected[0]) == list(range(1, 11))
    assert got == expected
    epochs = {json.loads(line)["epoch"] for line in (resume_reference["trace"] / "rank0.jsonl").read_text().splitlines()}
    assert len(epochs) >= 2  # the sequence crossed an epoch boundary
    replayed = (tmp_path / "trace" / "rank0.jsonl").read_text().count("\n") - 10
    assert replayed >= 0  # steps after the resumed checkpoint ran twice in the log, once in the model
    # and the same views of them (crops, the mixup memory, masks, patch-drop): the same weights, bit for bit
    # the replayed part of the epoch did not count its bad clips twice
    assert result["corrupt_clips"] == resume_reference["corrupt_clips"] >= 1
    resumed, straight = (load_encoder(export)[0].state_dict() for export in (result["export"], resume_reference["export"]))
    assert resumed.keys() == straight.keys() and all(torch.equal(resumed[key], straight[key]) for key in resumed)


def test_bad_configs_fail_before_any_work(tmp_path):
    base = ROOT / "configs/pretrain/tiny_cpu.yaml"
    with pytest.raises(ConfigError, match="unknown key optim.learning_rate"):
        load_config(PretrainConfig, base, ["optim.learning_rate=1"])
    with pytest.raises(ConfigError, match="optim.lr: expected a number"):
        load_config(PretrainConfig, base, ["optim.lr=fast"])
    with pytest.raises(ConfigError, match=r"model.arch: 'mast_huge' is not one of"):
        load_config(PretrainConfig, base, ["model.arch=mast_huge"])
    with pytest.raises(ConfigError, match="objective.patch_drop"):
        load_config(PretrainConfig, base, ["objective.patch_drop=1.5"])
    with pytest.raises(ConfigError, match="ssast needs an AST"):
        load_config(PretrainConfig, base, ["model.objective=ssast"])
    with pytest.raises(ConfigError, match="data.features: 'gpu' is not one of"):
        load_config(PretrainConfig, base, ["data.features=gpu"])
    # a number out of range: the key, its rule and the value, one line
    for setting, message in (
        ("optim.lr=-1", "optim.lr: must be > 0, got -1"),
        ("optim.lr=.nan", "optim.lr: must be > 0, got nan"),
        ("optim.batch_size=0", "optim.batch_size: must be >= 1, got 0"),
        ("optim.clip_grad=0", "optim.clip_grad: must be > 0, got 0"),
        ("run.cpus_per_worker=0", "run.cpus_per_worker: must be > 0, got 0"),
        ("run.val_every=0", "run.val_every: must be >= 1, got 0"),
        ("data.shuffle_buffer=-1", "data.shuffle_buffer: must be >= 0, got -1"),
        ("objective.momentum_final=2", "objective.momentum_final: must be in [0, 1], got 2"),
        ("objective.queue_size=0", "objective.queue_size: must be >= 1, got 0"),
        ("run.data_trace=s3://bucket/trace", "run.data_trace: a local folder, got 's3://bucket/trace'"),
    ):
        with pytest.raises(ConfigError) as caught:
            load_config(PretrainConfig, base, [setting])
        assert str(caught.value).startswith(message) and "\n" not in str(caught.value), (setting, str(caught.value))
    config = load_config(PretrainConfig, base, [f"data.sources=[{{path: '{tmp_path}'}}]"])
    with pytest.raises(ConfigError, match="manifest.json not found"):
        pretrain(config, f"sqlite:///{tmp_path / 'mlflow.db'}")
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "manifest.json").write_text(json.dumps({"stats": {"mean": 0.0, "std": 1.0, "num_frames": 10}}))
    config = load_config(
        PretrainConfig,
        base,
        [
            f"data.sources=[{{path: '{tmp_path / 'train'}'}}]",
            f"data.validation_sources=[{{path: '{tmp_path / 'nope'}'}}]",
        ],
    )
    with pytest.raises(ConfigError, match="data.validation_sources: .*manifest.json not found"):
        pretrain(config, f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert not (tmp_path / "mlflow.db").exists()  # nothing was started


def test_a_missing_or_truncated_shard_fails_the_job_at_start_naming_the_file(shards, tmp_path):
    manifest = json.loads((shards / "manifest.json").read_text())
    damaged_copy(shards, tmp_path / "shards", split="train", shards_hit=0)
    config = tiny_config(tmp_path / "shards", tmp_path, "damaged")
    truncate(tmp_path / "shards" / manifest["shards"][3]["file"])
    with pytest.raises(ConfigError, match=rf"data.sources: .*{manifest['shards'][3]['file']}: not a readable Parquet shard"):
        pretrain(config, f"sqlite:///{tmp_path / 'mlflow.db'}")
    shutil.copyfile(shards / manifest["shards"][3]["file"], tmp_path / "shards" / manifest["shards"][3]["file"])  # restored
    (tmp_path / "shards" / manifest["shards"][5]["file"]).unlink()
    with pytest.raises(ConfigError, match=rf"{manifest['shards'][5]['file']}: shard listed in its manifest.json but missing"):
        pretrain(config, f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "runs" / "damaged").exists()  # nothing was started


def test_a_shard_lost_mid_run_stops_the_job_naming_it_and_a_rerun_resumes_once_restored(shards, tmp_path):
    copy = tmp_path / "shards"
    shutil.copytree(shards, copy, ignore=shutil.ignore_patterns("embeddings"))
    listed = [
        shard["file"]
        for shard in json.loads((copy / "manifest.json").read_text())["shards"]
        if shard["rows"] and "train" in shard["splits"]
    ]
    victim, backup = copy / listed[0], tmp_path / "kept.parquet"
    trace = tmp_path / "trace"
    settings = {
        "optim.total_steps": 12,
        "run.max_failures": 0,
        "run.data_trace": trace,
        "data.sources": f"[{{path: '{copy}', weight: 1, splits: [train]}}]",  # a few batches an epoch: every epoch reads every shard
    }
    config = tiny_config(copy, tmp_path, "lost", **settings)
    tracking = mlflow_store(tmp_path / "mlflow.db")

    def steps_traced() -> int:
        path = trace / "rank0.jsonl"
        return len(path.read_text().splitlines()) if path.exists() else 0

    def lose_the_shard_after_step_2():
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and steps_traced() < 3:  # the step-2 checkpoint is being written
            time.sleep(0.05)
        shutil.move(victim, backup)

    thief = threading.Thread(target=lose_the_shard_after_step_2, daemon=True)
    thief.start()
    with pytest.raises(
        ConfigError,
        match=rf"data.sources: {re.escape(str(victim))}: shard listed in its manifest.json but missing.*run the same command again",
    ):
        pretrain(config, tracking)
    thief.join()
    shutil.move(backup, victim)  # restored: the same command continues from the last checkpoint
    result = pretrain(config, tracking)
    assert result["step"] == 12
    run = MlflowClient(tracking).get_run(result["run_id"])
    assert int(run.data.tags["mast.resumed_from_step"]) >= 2
    assert loss_steps(tracking, result["run_id"]) == list(range(1, 13))


def test_shipped_configs_are_valid():
    for path in sorted((ROOT / "configs/pretrain").glob("*.yaml")):
        config = load_config(PretrainConfig, path)
        assert config.data.sources, path
    paper = load_config(PretrainConfig, ROOT / "configs/pretrain/paper.yaml")
    assert paper.model.arch == "mast_small" and paper.objective.patch_drop == 0.2 and paper.run.use_gpu
    assert [Path(s.path).name for s in paper.data.sources] == ["audioset-10", "fsd50k"]
    # data.features=auto: the log-mel on the workers' GPUs, in the decoding tasks on a CPU-only run
    assert feature_path(paper) == "device" and feature_path(load_config(PretrainConfig, ROOT / "configs/pretrain/tiny_cpu.yaml")) == "tasks"
    assert feature_path(load_config(PretrainConfig, ROOT / "configs/pretrain/tiny_cpu.yaml", ["data.features=device"])) == "device"


@pytest.mark.slow
def test_unreachable_tracking_server_at_start_falls_back_to_a_local_store(shards, tmp_path, capfd):
    # one worker: the test is about the tracking store, not the group (two_worker covers that)
    config = tiny_config(shards, tmp_path, "no-server", **{"optim.total_steps": 2, "run.checkpoint_every": 2, "run.num_workers": 1})
    result = pretrain(config, f"http://127.0.0.1:{free_port()}")
    assert result["step"] == 2
    assert "is not reachable" in capfd.readouterr().err
    assert result["tracking_uri"] == f"sqlite:///{tmp_path / 'runs' / 'no-server' / 'mlflow.db'}"
    assert loss_steps(result["tracking_uri"], result["run_id"]) == [1, 2]


@pytest.mark.slow
def test_tracking_server_dying_mid_run_does_not_stop_training(shards, tmp_path, capfd):
    """A real `mlflow server` on 127.0.0.1 is killed after the first checkpoint; training finishes,
    and the metrics it could not send are kept in the final checkpoint."""
    port = free_port()
    backend, artifacts = tmp_path / "server.db", tmp_path / "server-artifacts"
    server = start_mlflow_server(backend, artifacts, port)
    config = tiny_config(shards, tmp_path, "server-dies", **{"optim.total_steps": 8, "run.log_every": 1, "run.num_workers": 1})
    run_dir = tmp_path / "runs" / "server-dies"

    def kill_server_after_first_checkpoint():
        deadline = time.time() + 240
        while time.time() < deadline and not list(run_dir.glob("checkpoint_*")):
            time.sleep(0.2)
        stop_server(server)

    killer = threading.Thread(target=kill_server_after_first_checkpoint, daemon=True)
    killer.start()
    try:
        result = pretrain(config, f"http://127.0.0.1:{port}")
    finally:
        killer.join()
    assert result["step"] == 8
    assert "MLflow not reachable" in capfd.readouterr().err
    kept = [json.loads(line)["step"] for line in (Path(result["checkpoint"]) / "metrics.jsonl").read_text().splitlines() if line]
    logged = loss_steps(f"sqlite:///{backend}", result["run_id"])  # what the server had stored, read from its store
    assert logged and kept, (logged, kept)
    assert sorted(set(logged) | set(kept)) == list(range(1, 9))  # nothing lost


@pytest.mark.parametrize("arch, objective", [("mast_tiny", "ssmast"), ("ast_tiny", "ssmast"), ("ast_tiny", "ssast")])
def test_every_model_choice_builds_and_takes_a_step(arch, objective, tmp_path):
    import torch

    from pipelines.pretrain.loop import build_objective

    config = load_config(
        PretrainConfig,
        ROOT / "configs/pretrain/tiny_cpu.yaml",
        [
            f"model.arch={arch}",
            f"model.objective={objective}",
            "data.frames_per_clip=160",
            "objective.ssast_masked=12",
            "objective.queue_size=32",
        ],
    )
    torch.manual_seed(0)
    model = build_objective(config).train()
    trainable = {name: param for name, param in model.named_parameters() if param.requires_grad}
    encoder = {id(param) for param in model.encoder.parameters()}
    assert encoder <= {id(param) for param in trainable.values()}  # the encoder is what pretraining trains
    before = {name: param.detach().clone() for name, param in trainable.items()}
    optimizer = torch.optim.SGD(trainable.values(), lr=0.1)  # plain SGD: a parameter moves iff its gradient is non-zero
    views = [torch.randn(2, 128, 160) for _ in range(2 if objective == "ssmast" else 1)]
    loss, stats = model(dict(zip(("view_a", "view_b"), views)))  # the batch as the stream gives it
    optimizer.zero_grad()
    loss.backward()
    assert torch.isfinite(loss) and stats
    optimizer.step()
    unchanged = sorted(name for name, param in trainable.items() if torch.equal(param.detach(), before[name]))
    assert not unchanged, f"the step left these parameters as they were: {unchanged}"
