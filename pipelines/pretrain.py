"""`mast pretrain --config configs/pretrain/NAME.yaml [--set key=value ...]`: SS-MAST on Ray Train.

The recipe, top to bottom:
1. load and validate the config (an unknown key or a bad value fails here, before any work);
2. start or join Ray (``RAY_ADDRESS`` / ``ray job submit`` -> the cluster, else an embedded Ray);
3. open the MLflow run of this job: a new one, or the existing run with the same ``run.name``
   (a re-run resumes both the training and its MLflow run);
4. stream the ingested shards (``pipelines.data``) into a ``TorchTrainer`` whose workers run
   :func:`train_loop` under DDP (gloo on CPU, NCCL on GPU, bf16 autocast on GPU);
5. export the encoder (safetensors + JSON) and log it with the config and a loss curve.

Fault tolerance: every ``checkpoint_every`` steps the workers report a checkpoint holding the
student, teacher, heads, queue, optimiser, scheduler, step, data position and RNG state.
``FailureConfig(max_failures)`` restarts a killed worker group from the newest checkpoint, and
running the same command again resumes from it. Rank 0 writes metrics to MLflow every
``log_every`` steps; after a restart it skips the steps MLflow already holds (the replayed steps
between the checkpoint and the crash), so every step appears exactly once. If the tracking server
cannot be reached, the metrics stay buffered, a warning is printed, and training goes on; the
buffer is retried at every later flush and saved in each checkpoint as ``metrics.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from .config import ConfigError, flatten, load_config, to_dict
from .data import AugmentSettings, DataConfigError, Source, StreamSettings, build_stream, normalisation_stats, to_torch
from .runtime import worker_print

# An unreachable tracking server must cost seconds, not MLflow's default minutes of retries.
MLFLOW_CLIENT_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def _quick_mlflow_failures() -> None:
    for key, value in MLFLOW_CLIENT_ENV.items():
        os.environ.setdefault(key, value)


@dataclass
class SourceConfig:
    path: str
    weight: float = 1.0
    splits: list[str] | None = None

    def to_source(self) -> Source:
        return Source(self.path, self.weight, tuple(self.splits) if self.splits else None)


@dataclass
class DataSection:
    sources: list[SourceConfig] = field(default_factory=list)
    # Held-out slice for a validation loss: the first val_clips clips of these sources, augmented
    # once and kept fixed, so the curve compares like with like.
    validation_sources: list[SourceConfig] = field(default_factory=list)
    val_clips: int = 64
    frames_per_clip: int = 1024
    decode_actors: int = 1
    featurize_batch: int = 32
    shuffle_buffer: int = 256
    seed: int = 0
    augment: AugmentSettings = field(default_factory=AugmentSettings)

    def validate(self) -> None:
        if not self.sources:
            raise ConfigError("sources: give at least one ingested dataset folder")
        if self.frames_per_clip < 16 or self.decode_actors < 1 or self.featurize_batch < 1 or self.shuffle_buffer < 0:
            raise ConfigError("frames_per_clip >= 16, decode_actors >= 1, featurize_batch >= 1, shuffle_buffer >= 0")


@dataclass
class ModelSection:
    arch: Literal["mast_tiny", "mast_small", "mast_base", "ast_tiny", "ast_base"] = "mast_tiny"
    objective: Literal["ssmast", "ssast"] = "ssmast"
    imagenet: str | None = None
    drop_path_rate: float = 0.0

    def validate(self) -> None:
        if self.objective == "ssast" and not self.arch.startswith("ast"):
            raise ConfigError(f"objective: ssast needs an AST arch, got {self.arch}")
        if self.imagenet is not None and not Path(self.imagenet).is_file():
            raise ConfigError(f"imagenet: {self.imagenet} not found")


@dataclass
class ObjectiveSection:
    proj_dim: int = 256
    head: Literal["linear", "mlp"] = "linear"
    queue_size: int = 65536
    temperature: float = 0.07
    patch_drop: float = 0.2
    momentum: Literal["cosine", "fixed"] = "cosine"
    momentum_base: float = 0.99
    momentum_final: float = 1.0
    ssast_masked: int = 400

    def validate(self) -> None:
        if not 0.0 <= self.patch_drop < 1.0:
            raise ConfigError(f"patch_drop: must be in [0, 1), got {self.patch_drop}")
        if not 0.0 <= self.momentum_base <= 1.0 or not 0.0 <= self.momentum_final <= 1.0:
            raise ConfigError("momentum_base and momentum_final must be in [0, 1]")
        if self.temperature <= 0 or self.queue_size < 1 or self.proj_dim < 1:
            raise ConfigError("temperature, queue_size and proj_dim must be positive")


@dataclass
class OptimSection:
    lr: float = 5e-4
    weight_decay: float = 0.05
    batch_size: int = 64  # per worker, per micro-step
    grad_accum: int = 1
    warmup_steps: int = 1000
    total_steps: int = 100000
    clip_grad: float = 3.0

    def validate(self) -> None:
        if self.lr <= 0 or self.batch_size < 1 or self.grad_accum < 1 or self.total_steps < 1 or self.warmup_steps < 0:
            raise ConfigError("lr > 0, batch_size >= 1, grad_accum >= 1, total_steps >= 1, warmup_steps >= 0")


@dataclass
class RunSection:
    name: str = "pretrain"
    storage: str = "runs"
    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    max_failures: int = 3
    log_every: int = 10
    val_every: int = 500
    tracking_uri: str | None = None
    experiment: str = "mast-pretrain"
    seed: int = 0
    torch_threads: int = 1

    def validate(self) -> None:
        if not self.name or "/" in self.name:
            raise ConfigError(f"name: must be a non-empty name without '/', got {self.name!r}")
        if min(self.num_workers, self.checkpoint_every, self.keep_checkpoints, self.log_every, self.val_every) < 1:
            raise ConfigError("num_workers, checkpoint_every, keep_checkpoints, log_every and val_every must be >= 1")
        if self.max_failures < -1:
            raise ConfigError(f"max_failures: -1 (unlimited) or >= 0, got {self.max_failures}")


@dataclass
class PretrainConfig:
    run: RunSection = field(default_factory=RunSection)
    model: ModelSection = field(default_factory=ModelSection)
    objective: ObjectiveSection = field(default_factory=ObjectiveSection)
    optim: OptimSection = field(default_factory=OptimSection)
    data: DataSection = field(default_factory=DataSection)

    def validate(self) -> None:
        if self.run.checkpoint_every > self.optim.total_steps:
            raise ConfigError(f"run.checkpoint_every ({self.run.checkpoint_every}) exceeds optim.total_steps ({self.optim.total_steps})")


# ----------------------------------------------------------------------------------------------
# The per-worker loop
# ----------------------------------------------------------------------------------------------


def build_objective(config: PretrainConfig) -> torch.nn.Module:
    import mast_core
    from mast_core.imagenet import init_from_imagenet

    encoder = getattr(mast_core, config.model.arch)(
        max_frames=config.data.frames_per_clip,
        drop_path_rate=config.model.drop_path_rate,
        **({"patch_stride": 16} if config.model.objective == "ssast" else {}),
    )
    if config.model.imagenet:
        init_from_imagenet(encoder, config.model.imagenet)
    if config.model.objective == "ssast":
        return mast_core.SSAST(encoder, num_masked=config.objective.ssast_masked)
    objective = config.objective
    return mast_core.SSMAST(
        encoder, proj_dim=objective.proj_dim, head=objective.head, queue_size=objective.queue_size,
        temperature=objective.temperature, patch_drop=objective.patch_drop,
    )


def learning_rate_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up then cosine decay to 0."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


class MetricBuffer:
    """Rank 0's metrics on their way to MLflow (exactly once per step, see the module doc)."""

    def __init__(self, tracking_uri: str, run_id: str) -> None:
        self.tracking_uri, self.run_id = tracking_uri, run_id
        self.pending: list[tuple[int, dict[str, float]]] = []
        self.logged_through = self._last_logged_step()

    def _last_logged_step(self) -> int:
        try:
            from mlflow import MlflowClient

            history = MlflowClient(self.tracking_uri).get_metric_history(self.run_id, "loss")
            return max((m.step for m in history), default=0)
        except Exception as error:
            worker_print(f"[pretrain] warning: MLflow not reachable ({type(error).__name__}); buffering metrics", error=True)
            return 0

    def add(self, step: int, metrics: dict[str, float]) -> None:
        if step <= self.logged_through:
            return
        if self.pending and self.pending[-1][0] == step:
            self.pending[-1][1].update(metrics)
        else:
            self.pending.append((step, dict(metrics)))

    def flush(self) -> bool:
        if not self.pending:
            return True
        try:
            from mlflow import MlflowClient
            from mlflow.entities import Metric

            client = MlflowClient(self.tracking_uri)
            stamp = int(time.time() * 1000)
            entries = [Metric(key, float(value), stamp, step) for step, metrics in self.pending for key, value in metrics.items()]
            for start in range(0, len(entries), 900):  # MLflow accepts 1000 metrics per batch
                client.log_batch(self.run_id, metrics=entries[start : start + 900], synchronous=True)
        except Exception as error:  # an unreachable server must not end training
            worker_print(f"[pretrain] warning: MLflow not reachable ({type(error).__name__}: {error}); "
                         f"{len(self.pending)} steps kept for the next flush", error=True)
            return False
        self.logged_through = self.pending[-1][0]
        self.pending.clear()
        return True


def _save_training_state(directory: Path, model, optimizer, scheduler, state: dict) -> None:
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
        },
        directory / "training_state.pt",
    )
    (directory / "progress.json").write_text(json.dumps(state))


def _load_training_state(directory: Path, model, optimizer, scheduler, device) -> dict:
    # weights_only: a checkpoint folder is data, never code
    saved = torch.load(directory / "training_state.pt", map_location=device, weights_only=True)
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["torch_rng"].cpu())
    return json.loads((directory / "progress.json").read_text())


def _tag_run(loop_config: dict, key: str, value: str) -> None:
    try:
        from mlflow import MlflowClient

        MlflowClient(loop_config["tracking_uri"]).set_tag(loop_config["run_id"], key, value)
    except Exception as error:  # the tag is informative; never fail training over it
        worker_print(f"[pretrain] warning: could not tag the MLflow run ({type(error).__name__})", error=True)


def train_loop(loop_config: dict) -> None:
    """Runs on every Ray Train worker."""
    import ray.train
    from torch.nn.parallel import DistributedDataParallel

    from mast_core.checkpoint import FeatureSettings, save_encoder
    from mast_core.ssmast import SSMAST, momentum_schedule

    _quick_mlflow_failures()
    config = load_config_dict(loop_config["config"])
    torch.set_num_threads(config.run.torch_threads)
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    torch.manual_seed(config.run.seed + rank)
    random.seed(config.run.seed + rank)

    model = build_objective(config).to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.optim.lr, weight_decay=config.optim.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, config.optim.warmup_steps, config.optim.total_steps)
    )
    progress = {"step": 0, "epoch": 0, "batches_in_epoch": 0, "samples": 0}
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            progress = _load_training_state(Path(folder), model, optimizer, scheduler, device)
        if rank == 0:
            worker_print(f"[pretrain] resumed from step {progress['step']} (epoch {progress['epoch']})")
            _tag_run(loop_config, "mast.resumed_from_step", str(progress["step"]))
    ddp = world > 1 and torch.distributed.is_initialized()
    # The key queue is a buffer kept identical on every rank by all_gather: no broadcasting.
    wrapped = DistributedDataParallel(model, broadcast_buffers=False) if ddp else model
    metrics = MetricBuffer(loop_config["tracking_uri"], loop_config["run_id"]) if rank == 0 else None
    use_bf16 = device.type == "cuda"
    shard = ray.train.get_dataset_shard("train")
    step = progress["step"]
    total = config.optim.total_steps
    last_log, samples_since, wait_since = time.perf_counter(), 0, 0.0
    loss_sum, stats_sum, micro = 0.0, {}, 0

    def report_checkpoint(final: bool) -> None:
        """Every rank reports; rank 0 writes the state (and, at the end, the exported encoder)."""
        payload = {"step": step, "loss": last_loss}
        with tempfile.TemporaryDirectory() as folder:
            folder = Path(folder)
            if rank == 0:
                _save_training_state(folder, model, optimizer, scheduler, progress)
                if final:
                    mean, std = loop_config["stats"]
                    save_encoder(model.student if isinstance(model, SSMAST) else model.encoder, folder / "encoder",
                                 FeatureSettings(mean=mean, std=std))
                flushed = metrics.flush()
                lines = [json.dumps({"step": s, **m}) for s, m in metrics.pending]
                (folder / "metrics.jsonl").write_text("\n".join(lines))
                payload["metrics_flushed"] = flushed
            ray.train.report(payload, checkpoint=ray.train.Checkpoint.from_directory(str(folder)) if rank == 0 else None)

    val_shard = ray.train.get_dataset_shard("val") if loop_config.get("has_val") else None

    def validate() -> None:
        model.eval()
        total_loss = torch.zeros(2, device=device)  # (sum of batch losses, batches)
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            for batch in val_shard.iter_torch_batches(batch_size=config.optim.batch_size, collate_fn=to_torch):
                views = [batch["view_a"].to(device)] + ([batch["view_b"].to(device)] if isinstance(model, SSMAST) else [])
                loss, _ = model(*views)
                total_loss += torch.stack([loss.detach().float(), torch.ones((), device=device)])
        if ddp:
            torch.distributed.all_reduce(total_loss)
        model.train()
        if rank == 0 and total_loss[1] > 0:
            metrics.add(step, {"val_loss": float(total_loss[0] / total_loss[1])})

    last_loss = float("nan")
    while step < total:
        iterator = shard.iter_torch_batches(
            batch_size=config.optim.batch_size, collate_fn=to_torch, drop_last=True,
            local_shuffle_buffer_size=config.data.shuffle_buffer or None,
        )
        fetch_start = time.perf_counter()
        for batch in iterator:
            wait_since += time.perf_counter() - fetch_start
            view_a, view_b = batch["view_a"].to(device), batch["view_b"].to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                if isinstance(model, SSMAST):
                    loss, stats = wrapped(view_a, view_b)
                else:
                    loss, stats = wrapped(view_a)
            (loss / config.optim.grad_accum).backward()
            micro += 1
            loss_sum += float(loss.detach())
            for key, value in stats.items():
                stats_sum[key] = stats_sum.get(key, 0.0) + value
            samples_since += view_a.shape[0] * world
            progress["batches_in_epoch"] += 1
            if micro % config.optim.grad_accum == 0:
                torch.nn.utils.clip_grad_norm_(trainable, config.optim.clip_grad)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                if config.objective.momentum == "cosine":
                    momentum = momentum_schedule(step, total, config.objective.momentum_base, config.objective.momentum_final)
                else:
                    momentum = config.objective.momentum_base
                if isinstance(model, SSMAST):
                    model.update_teacher(momentum)
                step += 1
                progress["step"] = step
                progress["samples"] += samples_since
                last_loss = loss_sum / micro
                if val_shard is not None and (step % config.run.val_every == 0 or step == total):
                    validate()  # before this step's metrics are flushed, so val_loss joins them
                if rank == 0:
                    elapsed = time.perf_counter() - last_log
                    entry = {
                        "loss": last_loss, "lr": scheduler.get_last_lr()[0], "momentum": momentum,
                        "samples_per_s": samples_since / max(elapsed, 1e-9), "data_wait_s": wait_since,
                        **{f"objective/{k}": v / micro for k, v in stats_sum.items() if k != "loss"},
                    }
                    if device.type == "cuda":
                        entry["gpu_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
                    metrics.add(step, entry)
                    if step % config.run.log_every == 0 or step == total:
                        metrics.flush()
                        worker_print(f"[pretrain] step {step}/{total} loss {last_loss:.4f} lr {entry['lr']:.2e} "
                                     f"{entry['samples_per_s']:.1f} samples/s")
                last_log, samples_since, wait_since, loss_sum, stats_sum, micro = time.perf_counter(), 0, 0.0, 0.0, {}, 0
                if step == total or step % config.run.checkpoint_every == 0:
                    report_checkpoint(final=step == total)
                if step == total:
                    break
            fetch_start = time.perf_counter()
        progress["epoch"] += 1
        progress["batches_in_epoch"] = 0


def load_config_dict(data: dict) -> PretrainConfig:
    from .config import build

    return build(PretrainConfig, data)


# ----------------------------------------------------------------------------------------------
# The driver
# ----------------------------------------------------------------------------------------------


def default_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlflow.db').resolve()}"


def open_mlflow_run(config: PretrainConfig, tracking_uri: str) -> tuple[str, bool]:
    """(run id, resumed): the run tagged with this run name, or a new one with all params."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(config.run.experiment)
    if experiment is None:
        artifacts = None
        if tracking_uri.startswith("sqlite:"):  # absolute, or workers would write relative to their cwd
            artifacts = (Path(tracking_uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
        experiment_id = client.create_experiment(config.run.experiment, artifact_location=artifacts)
    else:
        experiment_id = experiment.experiment_id
    params = {key: str(value)[:6000] for key, value in flatten(to_dict(config)).items()}
    found = client.search_runs([experiment_id], filter_string=f"tags.`mast.run_name` = '{config.run.name}'", max_results=1)
    if found:
        run = found[0]
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = sorted(client.get_metric_history(run_id, "loss"), key=lambda m: m.step)
    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.plot([m.step for m in history], [m.value for m in history])
    axis.set_xlabel("step")
    axis.set_ylabel("SS-MAST loss")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def pretrain(config: PretrainConfig, tracking_uri: str | None = None, dataset=None, stats: tuple[float, float] | None = None) -> dict:
    """Run (or resume) the job; returns the run id, final step and checkpoint path.

    ``dataset`` replaces the shard stream with any Ray Dataset of ``view_a``/``view_b`` rows
    (``benchmarks/pretrain_throughput.py`` feeds in-memory batches); ``stats`` then gives the
    normalisation statistics stored with the exported encoder.
    """
    from mlflow import MlflowClient
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from .runtime import init_ray

    sources = [source.to_source() for source in config.data.sources]
    if dataset is None:
        try:
            stats = normalisation_stats(sources)  # also checks that every source has a manifest
        except DataConfigError as error:
            raise ConfigError(f"data.sources: {error}") from None
    stats = stats or (0.0, 0.5)
    for source in config.data.validation_sources:  # fail before MLflow or Ray start
        try:
            source.to_source().manifest()
        except DataConfigError as error:
            raise ConfigError(f"data.validation_sources: {error}") from None
    tracking_uri = tracking_uri or config.run.tracking_uri or default_tracking_uri()
    _quick_mlflow_failures()
    try:
        run_id, resumed = open_mlflow_run(config, tracking_uri)
    except ConfigError:
        raise
    except Exception as error:  # server down at start: keep a local store for this job
        fallback = Path(config.run.storage).resolve() / config.run.name / "mlflow.db"
        fallback.parent.mkdir(parents=True, exist_ok=True)
        print(f"[pretrain] warning: MLflow at {tracking_uri} is not reachable ({type(error).__name__}); "
              f"logging to sqlite:///{fallback} instead", file=sys.stderr, flush=True)
        tracking_uri = f"sqlite:///{fallback}"
        run_id, resumed = open_mlflow_run(config, tracking_uri)
    print(f"[pretrain] MLflow run {run_id} ({'resumed' if resumed else 'new'}) at {tracking_uri}", flush=True)
    init_ray()
    def settings(seed: int) -> StreamSettings:
        return StreamSettings(
            frames_per_clip=config.data.frames_per_clip, mode="pretrain", batch_size=config.data.featurize_batch,
            decode_actors=config.data.decode_actors, seed=seed, augment=config.data.augment,
        )

    datasets = {"train": dataset if dataset is not None else build_stream(sources, settings(config.data.seed), stats)}
    if config.data.validation_sources:
        try:
            val_stream = build_stream([v.to_source() for v in config.data.validation_sources], settings(config.data.seed + 1), stats)
        except DataConfigError as error:
            raise ConfigError(f"data.validation_sources: {error}") from None
        datasets["val"] = val_stream.limit(config.data.val_clips).materialize()
    storage = Path(config.run.storage).resolve()
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={
            "config": to_dict(config), "tracking_uri": tracking_uri, "run_id": run_id, "stats": stats, "has_val": "val" in datasets,
        },
        scaling_config=ScalingConfig(
            num_workers=config.run.num_workers, use_gpu=config.run.use_gpu,
            resources_per_worker={"CPU": config.run.cpus_per_worker, **({"GPU": 1} if config.run.use_gpu else {})},
        ),
        datasets=datasets,
        run_config=RunConfig(
            name=config.run.name,
            storage_path=str(storage),
            failure_config=FailureConfig(max_failures=config.run.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=config.run.keep_checkpoints),
        ),
    )
    result = trainer.fit()
    client = MlflowClient(tracking_uri)
    if result.error is not None:
        _try(lambda: client.set_terminated(run_id, status="FAILED"))
        raise result.error
    with result.checkpoint.as_directory() as folder:
        folder = Path(folder)
        progress = json.loads((folder / "progress.json").read_text())
        export = storage / config.run.name / "encoder"
        if (folder / "encoder").is_dir():
            import shutil

            shutil.rmtree(export, ignore_errors=True)
            shutil.copytree(folder / "encoder", export)
        pending = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line]
    if pending:  # the server was down at the last checkpoint: log what rank 0 kept
        buffer = MetricBuffer(tracking_uri, run_id)
        buffer.pending = [(entry.pop("step"), entry) for entry in pending]
        buffer.flush()

    def log_outputs() -> None:
        with tempfile.TemporaryDirectory() as scratch:
            scratch = Path(scratch)
            (scratch / "config.yaml").write_text(__import__("yaml").safe_dump(to_dict(config), sort_keys=False))
            loss_curve_png(client, run_id, scratch / "loss_curve.png")
            client.log_artifact(run_id, str(scratch / "config.yaml"))
            client.log_artifact(run_id, str(scratch / "loss_curve.png"))
        if export.is_dir():
            client.log_artifacts(run_id, str(export), artifact_path="encoder")
        client.set_terminated(run_id, status="FINISHED")

    _try(log_outputs)
    print(f"[pretrain] finished at step {progress['step']}; encoder exported to {export}", flush=True)
    return {
        "run_id": run_id, "step": progress["step"], "export": str(export), "checkpoint": result.checkpoint.path,
        "tracking_uri": tracking_uri,
    }


def _try(action) -> None:
    """MLflow bookkeeping after training: warn, never fail the finished job (the checkpoint has it all)."""
    try:
        action()
    except Exception as error:
        print(f"[pretrain] warning: MLflow not reachable at the end ({type(error).__name__}); the encoder and "
              "metrics.jsonl are in the final checkpoint", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> None:
    try:
        config = load_config(PretrainConfig, args.config, args.set)
        pretrain(config, args.tracking_uri)
    except ConfigError as error:
        raise SystemExit(f"mast pretrain: {error}") from None


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pretrain", help="SS-MAST / SSAST pretraining on Ray Train",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, required=True, help="YAML config (see configs/pretrain/)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value, e.g. optim.lr=3e-4")
    parser.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or ./mlflow.db)")
    parser.set_defaults(handler=run)


if __name__ == "__main__":
    from .cli import main

    main(["pretrain", *sys.argv[1:]])
