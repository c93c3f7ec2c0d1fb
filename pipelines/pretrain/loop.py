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
from mast_core.optim import weight_decay_groups
from mast_core.views import ViewMaker, objective_views
from pipelines.common import storage
from pipelines.common.runtime import worker_print
from pipelines.common.tracking import quick_mlflow_failures
from pipelines.data.stream import (
    clip_input,
    epoch_stream,
    shard_errors_named,
    to_torch,
    usable_batches,
)
from pipelines.pretrain.config import PretrainConfig, load_config_dict
from pipelines.pretrain.state import (
    DataTrace,
    MetricBuffer,
    broadcast_buffers,
    digest,
    gather_positions,
    load_training_state,
    position_of,
    save_training_state,
    state_digest,
    step_seed,
)


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


# The monitor warns when the batch's query_std falls below this fraction of its well-spread value.
COLLAPSE_FRACTION = 0.5


def collapse_warning(query_std: float, proj_dim: int) -> str | None:
    """The warning for a window's mean ``query_std`` (SS-MAST's spread of the normalised projections),
    None while it is above :data:`COLLAPSE_FRACTION` of the well-spread ``1 / sqrt(proj_dim)`` (or absent: SSAST)."""
    spread = 1.0 / math.sqrt(proj_dim)
    if not query_std < COLLAPSE_FRACTION * spread:
        return None
    return (
        f"the projections are collapsing: query_std {query_std:.4f}, well spread is {spread:.4f} "
        "(data.augment, optim.lr and objective.patch_drop decide this; docs/augmentation.md)"
    )


def learning_rate_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up then cosine decay to 0."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def _tag_run(loop_config: dict, tags: dict[str, str]) -> None:
    try:
        from mlflow import MlflowClient
        from mlflow.entities import RunTag

        MlflowClient(loop_config["tracking_uri"]).log_batch(loop_config["run_id"], tags=[RunTag(k, v) for k, v in tags.items()])
    except Exception as error:  # the tags are informative; never fail training over them
        worker_print(f"[pretrain] warning: could not tag the MLflow run ({type(error).__name__})", error=True)


class PretrainWorker:
    """What one Ray Train worker holds while it pretrains; :func:`train_loop` takes it through the
    numbered steps, one method each."""

    def __init__(self, loop_config: dict) -> None:
        """1. Build: the config, this worker's rank, seeds, the objective (DDP-wrapped when the group has
        several workers), its optimiser and schedule, the data shards and rank 0's metric buffer."""
        import ray
        import ray.train
        from torch.nn.parallel import DistributedDataParallel

        quick_mlflow_failures()
        self.loop_config = loop_config
        self.config = config = load_config_dict(loop_config["config"])
        torch.set_num_threads(config.run.torch_threads)
        context = ray.train.get_context()
        self.rank, self.world = context.get_world_rank(), context.get_world_size()
        # where each rank runs (a node's loss and the restarted group can be followed in the job log)
        worker_print(f"[pretrain] rank {self.rank}/{self.world} on node {ray.get_runtime_context().get_node_id()}")
        self.device = ray.train.torch.get_device()
        # Every rank builds the same objective (weights, EMA teacher, initial key queue) from the run's
        # seed; then each rank draws its own randomness (patch-drop columns, SSAST's masks).
        torch.manual_seed(config.run.seed)
        self.model = build_objective(config).to(self.device)
        torch.manual_seed(config.run.seed + self.rank)
        random.seed(config.run.seed + self.rank)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        # no decay on norms, biases, tokens and position tables (mast_core.optim)
        self.optimizer = torch.optim.AdamW(weight_decay_groups(self.model, config.optim.weight_decay), lr=config.optim.lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: learning_rate_factor(step, config.optim.warmup_steps, config.optim.total_steps)
        )
        self.ddp = self.world > 1 and torch.distributed.is_initialized()
        # The key queue is a buffer kept identical on every rank by all_gather: no broadcasting.
        self.wrapped = DistributedDataParallel(self.model, broadcast_buffers=False) if self.ddp else self.model
        if self.ddp:
            broadcast_buffers(self.model)  # the same negatives on every rank from step 0
        # the shards' stream, built per epoch in this rank's fixed order (a dataset given to pretrain(): Train splits it)
        self.stream = loop_config.get("stream")
        if self.stream:
            storage.adopt_settings(self.stream["storage"])  # the driver's endpoint and keys for shards in a bucket
        self.train_shard = None if self.stream else ray.train.get_dataset_shard("train")
        self.trace = DataTrace(config.run.data_trace, self.rank) if config.run.data_trace else None
        self.val_shard = ray.train.get_dataset_shard("val") if loop_config.get("has_val") else None
        # features on this worker's device: the stream ships int16 waveforms (pipelines.data.stream)
        mean, std = loop_config["stats"]
        # SS-MAST: two augmented views; SSAST: one clean spectrogram
        self.train_views = objective_views(self.model, mean, std, config.data.augment, seed=config.data.seed)
        self.val_views = objective_views(self.model, mean, std, config.data.augment, seed=config.data.seed + 1)
        self.clean_views = ViewMaker(mean, std)  # the representation monitor's input
        self.metrics = MetricBuffer(loop_config["tracking_uri"], loop_config["run_id"]) if self.rank == 0 else None
        if self.rank == 0:  # the group size as the workers see it, not as configured (tests read it)
            _tag_run(loop_config, {"mast.world_size": str(self.world)})
        self.use_bf16 = self.device.type == "cuda"
        self.total = config.optim.total_steps
        self.progress = {"step": 0, "epoch": 0, "batches_in_epoch": 0, "samples": 0}
        self.last_loss, self.momentum = float("nan"), config.objective.momentum_base
        self.corrupt = 0  # clips of this rank's stream that did not decode, skipped (since this start)
        self.corrupt_before = 0  # all ranks' count saved in the checkpoint resumed from
        self._start_window()

    def skipped(self, ids: list[str], errors: list[str]) -> None:
        """A batch's clips that failed to decode: counted, the first few named in the job log."""
        for clip, error in zip(ids, errors):
            self.corrupt += 1
            if self.corrupt <= 5:
                worker_print(f"[pretrain] rank {self.rank}: skipped clip {clip}, it does not decode ({error})", error=True)

    def resume(self, checkpoint) -> None:
        """2. Resume from the checkpoint Train hands over (the newest it registered; None on a fresh
        start): weights, optimiser, schedule, RNG and data position. Rank 0 logs the state digest
        after loading, to compare with the one saved in the checkpoint's ``progress.json``."""
        if checkpoint is None:
            # what each rank starts from (weights, teacher, queue), compared across ranks in the run's tags
            # (rank 0 writes them all: one writer for a SQLite store)
            digests = [digest(self.model.state_dict())]
            if self.ddp:
                mine, digests = digests[0], [None] * self.world
                torch.distributed.all_gather_object(digests, mine)
            if self.rank == 0:
                _tag_run(self.loop_config, {f"mast.initial_state.rank{rank}": value for rank, value in enumerate(digests)})
            return
        with checkpoint.as_directory() as folder:
            self.progress = load_training_state(Path(folder), self.model, self.optimizer, self.scheduler, self.device)
        self.corrupt_before = self.progress.get("corrupt_clips", 0)
        if self.rank == 0:
            restored = state_digest(self.model, self.optimizer, self.scheduler, self.progress)
            _tag_run(self.loop_config, {"mast.resumed_from_step": str(self.progress["step"]), "mast.resumed_state_hash": restored})
        epoch, batches, warning = position_of(self.progress, self.rank, self.world)
        self.progress.update(epoch=epoch, batches_in_epoch=batches)
        if warning and self.rank == 0:
            worker_print(f"[pretrain] warning: {warning}", error=True)
        if self.rank == 0:
            worker_print(f"[pretrain] resumed from step {self.progress['step']} (epoch {epoch}, batch {batches}), state {restored}")

    def _start_window(self) -> None:
        """Start the accumulators of the next optimiser step (loss, objective stats, samples, data wait)."""
        self.window_start, self.samples, self.data_wait = time.perf_counter(), 0, 0.0
        self.loss_sum, self.stats_sum, self.micro = 0.0, {}, 0

    def views_of(self, batch: dict, maker: ViewMaker) -> dict[str, torch.Tensor]:
        """The objective's input views of a stream batch, computed on this worker's device. A dataset
        of ready views (``pretrain(dataset=...)``, the throughput benchmark) is passed through."""
        if "wave" not in batch and "spec" not in batch:
            return {key: batch[key].to(self.device) for key in self.model.views}
        tensors = maker(clip_input(batch).to(self.device), batch["id"], self.progress["epoch"])
        return dict(zip(self.model.views, tensors))

    def optimizer_steps(self):
        """3. Step: forward and backward per batch, an optimiser step (and the objective's own update,
        the EMA teacher for SS-MAST) every ``grad_accum`` batches. Yields the step count after each
        optimiser step, epoch after epoch, until ``total_steps``."""
        from mast_core.ssmast import momentum_schedule

        config, progress = self.config, self.progress
        memory_batches = math.ceil(config.data.augment.mixup_memory / config.optim.batch_size)
        while progress["step"] < self.total:
            # resumed mid-epoch: the batches of this epoch trained before the checkpoint are skipped
            skip, progress["batches_in_epoch"] = progress["batches_in_epoch"], 0
            counted = self.corrupt  # the replayed batches' bad clips are in the checkpoint's count already
            self.train_views.forget()  # the mixup memory holds this epoch's clips: a resume rebuilds it
            fetch_start = time.perf_counter()
            for batch in self.epoch_batches(progress["epoch"]):
                progress["batches_in_epoch"] += 1
                if progress["batches_in_epoch"] <= skip:
                    if skip - progress["batches_in_epoch"] < memory_batches:  # the memory as it was at the checkpoint
                        self.train_views.remember(clip_input(batch).to(self.device))
                    if progress["batches_in_epoch"] == skip:
                        self.corrupt = counted
                    fetch_start = time.perf_counter()
                    continue
                self.data_wait += time.perf_counter() - fetch_start
                # torch's draws (patch-drop, SSAST's masks) from the position, not from the RNG's history
                torch.manual_seed(step_seed(config.run.seed, self.rank, progress["step"], self.micro))
                if self.trace:
                    self.trace.add(progress["step"] + 1, self.micro, progress["epoch"], batch["id"])
                views = self.views_of(batch, self.train_views)
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16):
                    loss, stats = self.wrapped(views)
                (loss / config.optim.grad_accum).backward()
                self.micro += 1
                self.loss_sum += float(loss.detach())
                for key, value in stats.items():
                    self.stats_sum[key] = self.stats_sum.get(key, 0.0) + value
                self.samples += len(views[self.model.views[0]]) * self.world
                if self.micro % config.optim.grad_accum == 0:
                    torch.nn.utils.clip_grad_norm_(self.trainable, config.optim.clip_grad)
                    self.optimizer.step()
                    self.scheduler.step()
                    self.optimizer.zero_grad(set_to_none=True)
                    step = progress["step"]
                    if config.objective.momentum == "cosine":
                        self.momentum = momentum_schedule(step, self.total, config.objective.momentum_base, config.objective.momentum_final)
                    self.model.after_step(step, self.total, self.momentum)  # SS-MAST: EMA teacher update; SSAST: nothing
                    progress["step"] = step + 1
                    progress["samples"] += self.samples
                    self.last_loss = self.loss_sum / self.micro
                    yield progress["step"]
                    if progress["step"] == self.total:
                        return
                fetch_start = time.perf_counter()
            if progress["batches_in_epoch"] == 0:
                raise RuntimeError(
                    f"rank {self.rank}: epoch {progress['epoch']} gave no full batch of {config.optim.batch_size} clips; "
                    "check data.sources (splits, shards) or lower optim.batch_size"
                )
            progress["epoch"] += 1
            progress["batches_in_epoch"] = 0

    def epoch_batches(self, epoch: int):
        """This rank's usable batches of one epoch: from the shards, in the order fixed by ``(data.seed,
        epoch, rank, world)`` with a seeded local shuffle (so a resume can skip to its position); from
        a dataset given to ``pretrain()``, in the order Train's split gives."""
        config, size = self.config, self.config.optim.batch_size
        shuffle = {"local_shuffle_buffer_size": config.data.shuffle_buffer or None}
        if self.stream:
            source, files = epoch_stream(self.stream["sources"], self.stream["settings"], epoch, self.rank, self.world)
            shuffle["local_shuffle_seed"] = step_seed(config.data.seed, self.rank, epoch, -1) if config.data.shuffle_buffer else None
        else:
            source = self.train_shard
        batches = source.iter_torch_batches(batch_size=size, collate_fn=to_torch, drop_last=True, **shuffle)
        return usable_batches(_shards_checked(batches, files) if self.stream else batches, size, self.skipped)

    def validate(self) -> None:
        """4. Validate: the mean loss over the validation shard (every rank; rank 0 buffers it) and the
        representation monitor on the same clips (:meth:`monitor`)."""
        model, device = self.model, self.device
        self.val_views.forget()  # the same validation views at a step whatever happened before
        model.eval()
        total_loss = torch.zeros(2, device=device)  # (sum of batch losses, batches)
        embeddings, labels = [], []
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.use_bf16):
            batches = self.val_shard.iter_torch_batches(batch_size=self.config.optim.batch_size, collate_fn=to_torch)
            for batch in usable_batches(batches, None, self.skipped):
                loss, _ = model(self.views_of(batch, self.val_views))
                total_loss += torch.stack([loss.detach().float(), torch.ones((), device=device)])
                if ("wave" in batch or "spec" in batch) and "label" in batch:  # stop-gradient embeddings of the clean clips
                    (clean,) = self.clean_views(clip_input(batch).to(device))
                    embeddings.append(model.encoder(clean, batch["length"].to(device)).float().cpu())
                    labels.append(batch["label"].cpu())
        if self.ddp:
            torch.distributed.all_reduce(total_loss)
        model.train()
        if self.rank == 0 and total_loss[1] > 0:
            self.metrics.add(self.progress["step"], {"val_loss": float(total_loss[0] / total_loss[1])})
        self.monitor(embeddings, labels)

    def monitor(self, embeddings: list[torch.Tensor], labels: list[torch.Tensor]) -> None:
        """The online representation monitor (rank 0 logs it): leave-one-out kNN accuracy of the
        student's clip embeddings on the labelled validation clips (every rank's share), their
        spread, and a warning when the objective's ``query_std`` says the projections collapse."""
        from mast_core.probe import embedding_spread, knn_accuracy

        local = (torch.cat(embeddings), torch.cat(labels)) if embeddings else (torch.zeros(0, 1), torch.zeros(0, dtype=torch.long))
        shares = [local]
        if self.ddp:
            shares = [None] * self.world
            torch.distributed.all_gather_object(shares, local)
        if self.rank != 0:
            return
        x = torch.cat([share[0] for share in shares if len(share[1])] or [torch.zeros(0, 1)])
        y = torch.cat([share[1] for share in shares])
        entry = {}
        if int((y >= 0).sum()) >= 2 and len(torch.unique(y[y >= 0])) >= 2:
            entry = {"monitor/knn_accuracy": knn_accuracy(x, y), "monitor/embedding_spread": embedding_spread(x[y >= 0])}
            chance = float(torch.bincount(y[y >= 0]).max()) / int((y >= 0).sum())
            worker_print(
                f"[pretrain] monitor at step {self.progress['step']}: kNN accuracy {entry['monitor/knn_accuracy']:.3f} "
                f"(majority class {chance:.3f}) on {int((y >= 0).sum())} validation clips, embedding spread {entry['monitor/embedding_spread']:.2f}"
            )
        warning = collapse_warning(self.stats_sum.get("query_std", float("nan")) / max(self.micro, 1), self.config.objective.proj_dim)
        entry["monitor/collapse_warning"] = float(warning is not None)
        if warning:
            worker_print(f"[pretrain] warning at step {self.progress['step']}: {warning}", error=True)
        if entry:
            self.metrics.add(self.progress["step"], entry)

    def count_corrupt(self) -> None:
        """Before a checkpoint, on every rank: the clips skipped by all ranks since this (re)start,
        plus those counted before it, go into the training state and rank 0's metrics."""
        corrupt = torch.tensor([self.corrupt], dtype=torch.long, device=self.device)
        if self.ddp:
            torch.distributed.all_reduce(corrupt)
        self.progress["corrupt_clips"] = self.corrupt_before + int(corrupt)
        if self.rank == 0:
            self.metrics.add(self.progress["step"], {"corrupt_clips": self.progress["corrupt_clips"]})

    def log_step(self) -> None:
        """Rank 0 buffers the step's metrics and flushes them to MLflow every ``log_every`` steps."""
        step = self.progress["step"]
        if self.rank == 0:
            elapsed = time.perf_counter() - self.window_start
            entry = {
                "loss": self.last_loss,
                "lr": self.scheduler.get_last_lr()[0],
                "momentum": self.momentum,
                "samples_per_s": self.samples / max(elapsed, 1e-9),
                "data_wait_s": self.data_wait,
                **{f"objective/{k}": v / self.micro for k, v in self.stats_sum.items() if k != "loss"},
            }
            if self.device.type == "cuda":
                entry["gpu_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
            self.metrics.add(step, entry)
            if step % self.config.run.log_every == 0 or step == self.total:
                self.metrics.flush()
                worker_print(
                    f"[pretrain] step {step}/{self.total} loss {self.last_loss:.4f} lr {entry['lr']:.2e} "
                    f"{entry['samples_per_s']:.1f} samples/s"
                )
        self._start_window()

    def checkpoint(self, final: bool) -> None:
        """5. Checkpoint: every rank reports; rank 0 writes the training state with its digest (in
        ``progress.json`` and the reported metrics, which Train keeps with the checkpoint), the
        metrics MLflow has not taken yet and, at the end, the exported encoder."""
        import ray.train

        from mast_core.checkpoint import FeatureSettings, save_encoder

        position = (self.progress["epoch"], self.progress["batches_in_epoch"])
        self.progress["positions"] = gather_positions(position, self.world, self.ddp)  # every rank's place in its stream
        payload = {"step": self.progress["step"], "loss": self.last_loss, "corrupt_clips": self.progress.get("corrupt_clips", 0)}
        with tempfile.TemporaryDirectory() as folder:
            folder = Path(folder)
            if self.rank == 0:
                state_hash = state_digest(self.model, self.optimizer, self.scheduler, self.progress)
                save_training_state(folder, self.model, self.optimizer, self.scheduler, {**self.progress, "state_hash": state_hash})
                if final:
                    mean, std = self.loop_config["stats"]
                    save_encoder(self.model.encoder, folder / "encoder", FeatureSettings(mean=mean, std=std))
                flushed = self.metrics.flush()
                lines = [json.dumps({"step": s, **m}) for s, m in self.metrics.pending]
                (folder / "metrics.jsonl").write_text("\n".join(lines))
                payload.update(metrics_flushed=flushed, state_hash=state_hash)
            ray.train.report(payload, checkpoint=ray.train.Checkpoint.from_directory(str(folder)) if self.rank == 0 else None)


def _shards_checked(batches, files: list[str]):
    """The batches; a shard that went missing or broke since the epoch began is named (a
    DataConfigError the driver reports in one line)."""
    with shard_errors_named(files):
        yield from batches


def train_loop(loop_config: dict) -> None:
    """Runs on every Ray Train worker, in the numbered steps of :class:`PretrainWorker`."""
    import ray.train

    worker = PretrainWorker(loop_config)  # 1. build
    worker.resume(ray.train.get_checkpoint())  # 2. resume
    run = worker.config.run
    for step in worker.optimizer_steps():  # 3. step
        if worker.val_shard is not None and (step % run.val_every == 0 or step == worker.total):
            worker.validate()  # 4. before this step's metrics are flushed, so val_loss joins them
        saving = step == worker.total or step % run.checkpoint_every == 0
        if saving:
            worker.count_corrupt()  # before this step's metrics are flushed, so the count joins them
        worker.log_step()
        if saving:
            worker.checkpoint(final=step == worker.total)  # 5.
