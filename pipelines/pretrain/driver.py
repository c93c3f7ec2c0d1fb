"""`mast pretrain --config configs/pretrain/NAME.yaml [--set key=value ...]`: SS-MAST on Ray Train.

The recipe, top to bottom:
1. load and validate the config (an unknown key or a bad value fails here, before any work);
2. start or join Ray (``RAY_ADDRESS`` / ``ray job submit`` -> the cluster, else an embedded Ray);
3. open the MLflow run of this job: a new one, or the existing run with the same ``run.name``
   (a re-run resumes both the training and its MLflow run);
4. start a ``TorchTrainer`` whose workers run :func:`train_loop` under DDP (gloo on CPU, NCCL on
   GPU, bf16 autocast on GPU), each streaming its own share of the ingested shards epoch by epoch
   (``pipelines.data.stream.epoch_stream``, an order fixed by the position, so a resume continues it);
5. export the encoder (safetensors + JSON) and log it with the config and a loss curve.

Fault tolerance: every ``checkpoint_every`` steps the workers report a checkpoint holding the
student, teacher, heads, queue, optimiser, scheduler, step and every rank's data position.
``FailureConfig(max_failures)`` restarts a killed worker group from the newest checkpoint, and
running the same command again resumes from it. Each checkpoint's ``progress.json`` (and its
report to Train) carries a digest of that state (:func:`~pipelines.pretrain.loop.state_digest`);
a resumed job tags its MLflow run with the digest of what it loaded (``mast.resumed_state_hash``,
with ``mast.resumed_from_step``), so a restore can be checked. Rank 0 writes metrics to MLflow every
``log_every`` steps; after a restart it skips the steps MLflow already holds (the replayed steps
between the checkpoint and the crash), so every step appears exactly once. If the tracking server
cannot be reached, the metrics stay buffered, a warning is printed, and training goes on; the
buffer is retried at every later flush and saved in each checkpoint as ``metrics.jsonl``.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

from pipelines.common import storage
from pipelines.common.config import ConfigError, flatten, to_dict
from pipelines.common.tracking import default_tracking_uri, experiment_id_for, find_run, pyplot, quick_mlflow_failures
from pipelines.data.stream import DataConfigError, StreamSettings, build_stream, epoch_files, mixture_files, normalisation_stats, read_paths
from pipelines.pretrain.config import PretrainConfig
from pipelines.pretrain.loop import train_loop
from pipelines.pretrain.state import MetricBuffer


def open_mlflow_run(config: PretrainConfig, tracking_uri: str) -> tuple[str, bool]:
    """(run id, resumed): the run tagged with this run name, or a new one with all params."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment_id = experiment_id_for(client, config.run.experiment, tracking_uri)
    params = {key: str(value)[:6000] for key, value in flatten(to_dict(config)).items()}
    run = find_run(client, experiment_id, "mast.run_name", config.run.name)
    if run is not None:
        changed = sorted(key for key, value in params.items() if run.data.params.get(key, value) != value)
        if changed:
            raise ConfigError(f"run {config.run.name!r} exists with a different config ({', '.join(changed[:5])}); pick a new run.name")
        client.update_run(run.info.run_id, status="RUNNING")
        return run.info.run_id, True
    run = client.create_run(experiment_id, run_name=config.run.name, tags={"mast.run_name": config.run.name})
    items = list(params.items())
    for start in range(0, len(items), 90):
        client.log_batch(run.info.run_id, params=[mlflow.entities.Param(k, v) for k, v in items[start : start + 90]])
    return run.info.run_id, False


def loss_curve_png(client, run_id: str, path: Path) -> None:
    plt = pyplot()
    history = sorted(client.get_metric_history(run_id, "loss"), key=lambda m: m.step)
    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.plot([m.step for m in history], [m.value for m in history])
    axis.set_xlabel("step")
    axis.set_ylabel("SS-MAST loss")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def check_data(config: PretrainConfig, dataset=None, stats: tuple[float, float] | None = None) -> tuple[list, tuple[float, float]]:
    """(sources, normalisation stats): ``run.storage`` is reachable and every source and validation
    source has its manifest, checked before MLflow or Ray start. ``stats`` come from the manifests
    unless a ``dataset`` is given."""
    try:
        storage.check_location(config.run.storage, "run.storage")
    except storage.StorageError as error:
        raise ConfigError(str(error)) from None
    sources = [source.to_source() for source in config.data.sources]
    if dataset is None:
        try:
            stats = normalisation_stats(sources)  # also checks that every source has a manifest
        except DataConfigError as error:
            raise ConfigError(f"data.sources: {error}") from None
    for source in config.data.validation_sources:
        try:
            source.to_source().manifest()
        except DataConfigError as error:
            raise ConfigError(f"data.validation_sources: {error}") from None
    if dataset is None:  # every shard there and readable (its Parquet footer), before MLflow or Ray start
        for key, listed in (
            ("data.sources", sources),
            ("data.validation_sources", [v.to_source() for v in config.data.validation_sources]),
        ):
            try:
                if listed:
                    files = mixture_files(listed, config.data.seed)
                    read_paths(files)
                    if key == "data.sources":  # each worker streams whole shards
                        epoch_files(files, config.data.seed, 0, 0, config.run.num_workers)
            except DataConfigError as error:
                raise ConfigError(f"{key}: {error}") from None
    return sources, stats or (0.0, 0.5)


def open_tracking(config: PretrainConfig, tracking_uri: str | None) -> tuple[str, str]:
    """(tracking URI, run id) of this job's MLflow run. A server down at start: a local sqlite store
    in the run's folder instead, with a warning."""
    tracking_uri = tracking_uri or config.run.tracking_uri or default_tracking_uri()
    quick_mlflow_failures()
    try:
        run_id, resumed = open_mlflow_run(config, tracking_uri)
    except ConfigError:
        raise
    except Exception as error:  # server down at start: keep a local store for this job
        # next to the checkpoints when they are on a local disk; sqlite cannot live in a bucket
        base = storage.local_path(config.run.storage) if storage.is_local(config.run.storage) else Path("mast-fallback")
        fallback = (base / config.run.name / "mlflow.db").absolute()
        fallback.parent.mkdir(parents=True, exist_ok=True)
        print(
            f"[pretrain] warning: MLflow at {tracking_uri} is not reachable ({type(error).__name__}); "
            f"logging to sqlite:///{fallback} instead",
            file=sys.stderr,
            flush=True,
        )
        tracking_uri = f"sqlite:///{fallback}"
        run_id, resumed = open_mlflow_run(config, tracking_uri)
    print(f"[pretrain] MLflow run {run_id} ({'resumed' if resumed else 'new'}) at {tracking_uri}", flush=True)
    return tracking_uri, run_id


def feature_path(config: PretrainConfig) -> str:
    """Where the log-mel is computed (``data.features``; ``auto``: on the workers' GPUs when they
    have them, else in the decoding tasks, which keeps the featurisation off the training process on
    CPUs; both measured the same per clip, docs/design.md)."""
    if config.data.features != "auto":
        return config.data.features
    return "device" if config.run.use_gpu else "tasks"


def stream_datasets(config: PretrainConfig, sources: list, dataset=None) -> tuple[dict, dict | None]:
    """(Train datasets, the workers' stream). The shards are streamed by each worker itself, epoch by
    epoch in an order fixed by its position (:func:`pipelines.data.stream.epoch_stream`), so a resume
    continues the same clips: the stream is the sources and settings the workers build it from. A
    ``dataset`` given instead is the Train dataset ``train``, split by Train. ``val``: the first
    ``val_clips`` of the validation sources, materialised once. The workers turn waveforms into
    augmented views on their own device."""

    def settings(seed: int) -> StreamSettings:
        return StreamSettings(
            frames_per_clip=config.data.frames_per_clip,
            mode="pretrain",
            batch_size=config.data.featurize_batch,
            decode_actors=config.data.decode_actors,
            seed=seed,
            features=feature_path(config),
        )

    datasets = {"train": dataset} if dataset is not None else {}
    # the workers read the shards themselves: with this process's storage settings (a bucket's endpoint, keys)
    stream = {"sources": sources, "settings": settings(config.data.seed), "storage": storage.driver_settings()} if dataset is None else None
    if config.data.validation_sources:
        try:
            val_stream = build_stream([v.to_source() for v in config.data.validation_sources], settings(config.data.seed + 1))
        except DataConfigError as error:
            raise ConfigError(f"data.validation_sources: {error}") from None
        datasets["val"] = val_stream.limit(config.data.val_clips).materialize()
    return datasets, stream


def build_trainer(config: PretrainConfig, datasets: dict, loop_config: dict):
    """The ``TorchTrainer`` running :func:`train_loop` on ``run.num_workers`` workers, restarted from
    the newest checkpoint up to ``run.max_failures`` times, keeping ``run.keep_checkpoints``."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    return TorchTrainer(
        train_loop,
        train_loop_config={**loop_config, "config": to_dict(config), "has_val": "val" in datasets},
        scaling_config=ScalingConfig(
            num_workers=config.run.num_workers,
            use_gpu=config.run.use_gpu,
            resources_per_worker={
                "CPU": config.run.cpus_per_worker,
                **({"GPU": 1} if config.run.use_gpu else {}),
                **config.run.worker_resources,
            },
        ),
        datasets=datasets or None,
        run_config=RunConfig(
            name=config.run.name,
            **storage.train_storage(config.run.storage),
            failure_config=FailureConfig(max_failures=config.run.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=config.run.keep_checkpoints),
        ),
    )


def collect_final_checkpoint(checkpoint, export: str, tracking_uri: str, run_id: str) -> dict:
    """The final checkpoint's progress; its encoder copied to ``export`` (a folder or a URI), and
    the metrics MLflow missed at the last checkpoint (a server down) logged now."""
    with checkpoint.as_directory() as folder:
        folder = Path(folder)
        progress = json.loads((folder / "progress.json").read_text())
        if (folder / "encoder").is_dir():
            storage.remove_tree(export)
            storage.copy_tree(str(folder / "encoder"), export)
        pending = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line]
    if pending:  # the server was down at the last checkpoint: log what rank 0 kept
        buffer = MetricBuffer(tracking_uri, run_id)
        buffer.pending = [(entry.pop("step"), entry) for entry in pending]
        buffer.flush()
    return progress


def log_outputs(client, run_id: str, config: PretrainConfig, export: str) -> None:
    """The config, the loss curve and the exported encoder as artifacts; the run marked finished."""
    import yaml

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        (scratch / "config.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
        loss_curve_png(client, run_id, scratch / "loss_curve.png")
        client.log_artifact(run_id, str(scratch / "config.yaml"))
        client.log_artifact(run_id, str(scratch / "loss_curve.png"))
        if storage.is_dir(export):
            storage.copy_tree(export, str(scratch / "encoder"))  # MLflow logs local folders
            client.log_artifacts(run_id, str(scratch / "encoder"), artifact_path="encoder")
    client.set_terminated(run_id, status="FINISHED")


def pretrain(config: PretrainConfig, tracking_uri: str | None = None, dataset=None, stats: tuple[float, float] | None = None) -> dict:
    """Run (or resume) the job; returns the run id, final step and checkpoint path.

    ``dataset`` replaces the shard stream with any Ray Dataset of ``view_a``/``view_b`` rows
    (``benchmarks/pretrain_throughput.py`` feeds in-memory batches); ``stats`` then gives the
    normalisation statistics stored with the exported encoder.
    """
    from mlflow import MlflowClient

    from pipelines.common.runtime import init_ray

    sources, stats = check_data(config, dataset, stats)  # 1. (the config itself was checked when loaded)
    tracking_uri, run_id = open_tracking(config, tracking_uri)  # 3. before Ray: a clashing config fails at once
    init_ray()  # 2.
    path = feature_path(config)
    print(
        f"[pretrain] features: log-mel {'on the train workers' if path == 'device' else 'in the decoding tasks'} (data.features={config.data.features})",
        flush=True,
    )
    client = MlflowClient(tracking_uri)
    client.set_tag(run_id, "mast.feature_path", path)
    datasets, stream = stream_datasets(config, sources, dataset)  # 4.
    loop_config = {"tracking_uri": tracking_uri, "run_id": run_id, "stats": stats, "stream": stream}
    try:
        result = build_trainer(config, datasets, loop_config).fit()
        if result.error is not None:
            raise result.error
    except Exception as error:
        _try(lambda: client.set_terminated(run_id, status="FAILED"))
        shard = re.search(r"DataConfigError: ([^\n]+)", str(error))
        if shard:  # a shard gone or broken mid-run: one line; the checkpoints stay for the rerun
            raise ConfigError(
                f"data.sources: {shard.group(1)}; the job stopped (its last checkpoint is kept): "
                "restore the shard and run the same command again to resume"
            ) from None
        raise
    export = storage.join(config.run.storage, config.run.name, "encoder")
    progress = collect_final_checkpoint(result.checkpoint, export, tracking_uri, run_id)  # 5.
    _try(lambda: log_outputs(client, run_id, config, export))
    corrupt = int(progress.get("corrupt_clips", 0))
    skipped = f"; {corrupt} clips that did not decode were skipped (the job log names them)" if corrupt else ""
    print(f"[pretrain] finished at step {progress['step']}; encoder exported to {export}{skipped}", flush=True)
    return {
        "run_id": run_id,
        "step": progress["step"],
        "corrupt_clips": corrupt,
        "export": export,
        "checkpoint": result.checkpoint.path,
        "tracking_uri": tracking_uri,
    }


def _try(action) -> None:
    """MLflow bookkeeping after training: warn, never fail the finished job (the checkpoint has it all)."""
    try:
        action()
    except Exception as error:
        print(
            f"[pretrain] warning: MLflow not reachable at the end ({type(error).__name__}); the encoder and "
            "metrics.jsonl are in the final checkpoint",
            file=sys.stderr,
            flush=True,
        )
