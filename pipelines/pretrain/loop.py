"""The per-worker pretraining loop, run by every Ray Train worker (see :func:`train_loop`)."""

from __future__ import annotations

import json
import math
import random
import tempfile
import time
from pathlib import Path

import torch

from mast_core.contracts import Objective
from pipelines.common.runtime import worker_print
from pipelines.common.tracking import quick_mlflow_failures
from pipelines.data.stream import to_torch
from pipelines.pretrain.config import PretrainConfig, load_config_dict


def build_objective(config: PretrainConfig) -> Objective:
    """The configured objective around a fresh encoder from the registry (ImageNet weights if asked)."""
    from mast_core import SSAST, SSMAST
    from mast_core.imagenet import init_from_imagenet
    from mast_core.registry import build_encoder, objective_class

    encoder = build_encoder(
        config.model.arch,
        max_frames=config.data.frames_per_clip,
        drop_path_rate=config.model.drop_path_rate,
        **objective_class(config.model.objective).encoder_settings,
    )
    if config.model.imagenet:
        init_from_imagenet(encoder, config.model.imagenet)
    objective = config.objective
    if config.model.objective == "ssast":
        return SSAST(encoder, num_masked=objective.ssast_masked)
    return SSMAST(
        encoder,
        proj_dim=objective.proj_dim,
        head=objective.head,
        queue_size=objective.queue_size,
        temperature=objective.temperature,
        patch_drop=objective.patch_drop,
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
            worker_print(
                f"[pretrain] warning: MLflow not reachable ({type(error).__name__}: {error}); "
                f"{len(self.pending)} steps kept for the next flush",
                error=True,
            )
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
    from mast_core.ssmast import momentum_schedule

    quick_mlflow_failures()
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
                    save_encoder(model.encoder, folder / "encoder", FeatureSettings(mean=mean, std=std))
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
                loss, _ = model({key: batch[key].to(device) for key in model.views})
                total_loss += torch.stack([loss.detach().float(), torch.ones((), device=device)])
        if ddp:
            torch.distributed.all_reduce(total_loss)
        model.train()
        if rank == 0 and total_loss[1] > 0:
            metrics.add(step, {"val_loss": float(total_loss[0] / total_loss[1])})

    last_loss = float("nan")
    while step < total:
        iterator = shard.iter_torch_batches(
            batch_size=config.optim.batch_size,
            collate_fn=to_torch,
            drop_last=True,
            local_shuffle_buffer_size=config.data.shuffle_buffer or None,
        )
        fetch_start = time.perf_counter()
        for batch in iterator:
            wait_since += time.perf_counter() - fetch_start
            views = {key: batch[key].to(device) for key in model.views}  # the keys this objective reads
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                loss, stats = wrapped(views)
            (loss / config.optim.grad_accum).backward()
            micro += 1
            loss_sum += float(loss.detach())
            for key, value in stats.items():
                stats_sum[key] = stats_sum.get(key, 0.0) + value
            samples_since += len(views[model.views[0]]) * world
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
                model.after_step(step, total, momentum)  # SS-MAST: EMA teacher update; SSAST: nothing
                step += 1
                progress["step"] = step
                progress["samples"] += samples_since
                last_loss = loss_sum / micro
                if val_shard is not None and (step % config.run.val_every == 0 or step == total):
                    validate()  # before this step's metrics are flushed, so val_loss joins them
                if rank == 0:
                    elapsed = time.perf_counter() - last_log
                    entry = {
                        "loss": last_loss,
                        "lr": scheduler.get_last_lr()[0],
                        "momentum": momentum,
                        "samples_per_s": samples_since / max(elapsed, 1e-9),
                        "data_wait_s": wait_since,
                        **{f"objective/{k}": v / micro for k, v in stats_sum.items() if k != "loss"},
                    }
                    if device.type == "cuda":
                        entry["gpu_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
                    metrics.add(step, entry)
                    if step % config.run.log_every == 0 or step == total:
                        metrics.flush()
                        worker_print(
                            f"[pretrain] step {step}/{total} loss {last_loss:.4f} lr {entry['lr']:.2e} "
                            f"{entry['samples_per_s']:.1f} samples/s"
                        )
                last_log, samples_since, wait_since, loss_sum, stats_sum, micro = time.perf_counter(), 0, 0.0, 0.0, {}, 0
                if step == total or step % config.run.checkpoint_every == 0:
                    report_checkpoint(final=step == total)
                if step == total:
                    break
            fetch_start = time.perf_counter()
        progress["epoch"] += 1
        progress["batches_in_epoch"] = 0
