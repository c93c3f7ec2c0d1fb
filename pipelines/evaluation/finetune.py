"""The fine-tune protocol: a Ray Train run per trial, inside Ray Tune (Train-in-Tune, Ray 2.60 V2).

A trial is a Tune function that builds and fits a ``TorchTrainer``; its workers report every epoch
and ``TuneReportCallback`` forwards the reports to Tune, so ASHA can stop weak trials early.
Each worker trains :class:`mast_core.finetune.EncoderClassifier` (the encoder *and* a linear head,
separate learning rates, optional layer-wise decay) on clips streamed by Ray Data
(:func:`pipelines.data.stream.build_stream`, waveforms that the worker turns into log-mel on its device,
``mode="train"`` with log-mixup-exp and SpecAugment from the trial's config,
:class:`mast_core.views.ViewMaker`), and scores the validation clips after every epoch. The best epoch's weights are
kept in memory.

Selection sees the train and validation clips only: a trial's Trainer is given no test dataset.
The driver then fine-tunes the best configuration once per round and scores that run's best
epoch on the test clips (:func:`fit_round`). Fold tasks select on their first round; fine-tuning
every fold in every trial would multiply the sweep's cost by the number of folds.
"""

from __future__ import annotations

import copy
import json
import tempfile
from dataclasses import asdict, fields
from pathlib import Path

import torch
import torch.nn.functional as F

from mast_core.finetune import FinetuneSettings
from mast_core.views import AugmentSettings, ViewMaker
from pipelines.common.storage import absolute, adopt_settings, driver_settings, train_storage
from pipelines.data.stream import Source, StreamSettings, build_stream, clip_input, to_torch
from pipelines.evaluation.tasks import TaskConfig

DATA_ACTORS_PER_TRIAL = 2  # CPUs for data per trial: the decoding tasks of the training and the validation clips


def finetune_settings(config: dict) -> FinetuneSettings:
    """The trial's config as settings (keys a fine-tune space does not know are ignored)."""
    known = {f.name: f for f in fields(FinetuneSettings)}
    values = {key: (int(value) if known[key].type == "int" else float(value)) for key, value in config.items() if key in known}
    settings = FinetuneSettings(**values)
    settings.validate()
    return settings


def role_stream(task: TaskConfig, selection: dict, settings: FinetuneSettings, mode: str):
    """A Ray Dataset of one role's clips as waveforms (``selection`` as from ``TaskConfig.selection``)."""
    source = Source(
        task.shards,
        splits=tuple(selection["splits"]) if "splits" in selection else None,
        folds=tuple(selection["folds"]) if "folds" in selection else None,
    )
    stream = StreamSettings(frames_per_clip=task.frames_per_clip, mode=mode, batch_size=32, decode_actors=1, seed=settings.seed)
    return build_stream([source], stream)


def train_augmentation(settings: FinetuneSettings) -> AugmentSettings:
    """The fine-tune view chain: the trial's log-mixup-exp ratio and SpecAugment widths, no crop."""
    return AugmentSettings(
        mixup_ratio=settings.mixup_ratio,
        freq_mask=settings.freq_mask,
        time_mask=settings.time_mask,
        virtual_crop_scale=(1.0, 1.0),
        freq_scale=(1.0, 1.0),
        time_scale=(1.0, 1.0),
    )


def _usable(batch: dict, skipped: dict) -> torch.Tensor:
    """The rows to train on or score: labelled clips that decoded. Those that did not decode (a shard
    damaged after ingest: ``error`` set) are counted in ``skipped`` by clip id, once however often seen."""
    errors = batch.get("error") or []
    for clip, error in zip(batch["id"], errors):
        if error:
            skipped.setdefault(clip, error)
    decoded = torch.tensor([not error for error in errors], dtype=torch.bool, device=batch["label"].device)
    return (batch["label"] >= 0) & decoded if errors else batch["label"] >= 0


def _all_workers(count: int, device: torch.device) -> int:
    """A per-worker count summed over the Train workers."""
    total = torch.tensor([float(count)], dtype=torch.float64, device=device)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(total)
    return int(total)


def _accuracy(
    model: torch.nn.Module, shard, views: ViewMaker, batch_size: int, device: torch.device, skipped: dict | None = None
) -> tuple[float, int]:
    """(accuracy, clips scored) over this worker's shard, summed over all workers."""
    correct = torch.zeros(2, dtype=torch.float64, device=device)
    skipped = {} if skipped is None else skipped
    model.eval()
    with torch.no_grad():
        for batch in shard.iter_torch_batches(batch_size=batch_size, collate_fn=to_torch, device=device):
            keep = _usable(batch, skipped)
            if not bool(keep.any()):
                continue
            (spec,) = views(clip_input(batch)[keep])
            lengths = batch["length"][keep]
            logits = model(spec, lengths if int(lengths.min()) < spec.shape[-1] else None)
            correct += torch.tensor(
                [float((logits.argmax(1) == batch["label"][keep]).sum()), float(len(spec))], dtype=torch.float64, device=device
            )
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(correct)
    if correct[1] == 0:
        raise RuntimeError("no labelled clips to score: is the role's split or fold empty?")
    return float(correct[0] / correct[1]), int(correct[1])


def train_loop(config: dict) -> None:
    """Ray Train worker loop: fine-tune, report every epoch, score the best epoch on "test" if given."""
    import ray.train
    import ray.train.torch

    from mast_core.checkpoint import load_encoder
    from mast_core.finetune import EncoderClassifier, layer_decay_groups, lr_factor, scale_learning_rates

    torch.set_num_threads(config.get("threads", 1))
    settings = FinetuneSettings(**config["settings"])
    torch.manual_seed(settings.seed)
    adopt_settings(config.get("storage_settings", {}))  # an encoder in a bucket: the driver's endpoint and keys
    encoder, _ = load_encoder(config["encoder_dir"])
    model = EncoderClassifier(encoder, config["num_classes"], settings.dropout)
    optimizer = torch.optim.AdamW(layer_decay_groups(model, settings.lr, settings.encoder_lr, settings.layer_decay, settings.weight_decay))
    model = ray.train.torch.prepare_model(model)
    device = ray.train.torch.get_device()
    bare = model.module if hasattr(model, "module") else model
    train = ray.train.get_dataset_shard("train")
    validation = ray.train.get_dataset_shard("validation")
    mean, std = config["stats"]
    train_views = ViewMaker(mean, std, train_augmentation(settings), seed=settings.seed)
    eval_views = ViewMaker(mean, std)

    best_accuracy, best_epoch, best_state, stale = -1.0, 0, None, 0
    skipped: dict[str, str] = {}  # clips of this worker's shards that did not decode, by id
    for epoch in range(settings.max_epochs):
        scale_learning_rates(optimizer, lr_factor(epoch, settings.max_epochs, settings.warmup_epochs))
        model.train()
        total, seen = 0.0, 0
        for batch in train.iter_torch_batches(
            batch_size=settings.batch_size,
            collate_fn=to_torch,
            device=device,
            local_shuffle_buffer_size=4 * settings.batch_size,
            local_shuffle_seed=settings.seed + epoch,
        ):
            keep = _usable(batch, skipped)
            if not bool(keep.any()):
                continue
            ids = [clip for clip, kept in zip(batch["id"], keep.tolist()) if kept]
            (spec,) = train_views(clip_input(batch)[keep], ids, epoch)
            lengths, labels = batch["length"][keep], batch["label"][keep]
            loss = F.cross_entropy(model(spec, lengths if int(lengths.min()) < spec.shape[-1] else None), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, seen = total + float(loss) * len(spec), seen + len(spec)
        accuracy, val_clips = _accuracy(model, validation, eval_views, settings.batch_size, device, skipped)
        if accuracy > best_accuracy:
            best_accuracy, best_epoch, stale = accuracy, epoch + 1, 0
            best_state = copy.deepcopy({key: value.detach().cpu() for key, value in bare.state_dict().items()})
        else:
            stale += 1
        # val_accuracy is the best so far: it is what the kept weights score, so it is what Tune selects on
        ray.train.report(
            {
                "val_accuracy": best_accuracy,
                "epoch_val_accuracy": accuracy,
                "train_loss": total / max(seen, 1),
                "epoch": epoch + 1,
                "best_epoch": best_epoch,
                "train_clips": _all_workers(seen, device),  # clips trained on, all workers
                "val_clips": val_clips,
                "skipped_clips": _all_workers(len(skipped), device),
            }
        )
        if stale >= settings.patience:
            break
    if config.get("test"):
        bare.load_state_dict(best_state)
        test_accuracy, test_clips = _accuracy(model, ray.train.get_dataset_shard("test"), eval_views, settings.batch_size, device, skipped)
        final = {
            "val_accuracy": best_accuracy,
            "test_accuracy": test_accuracy,
            "test_clips": test_clips,
            "best_epoch": best_epoch,
            "epoch": best_epoch,
            "skipped_clips": _all_workers(len(skipped), device),
        }
        # Train V2 returns the metrics of the last *checkpoint*, so the final report carries a small one
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "metrics.json").write_text(json.dumps(final))
            ray.train.report(
                final, checkpoint=ray.train.Checkpoint.from_directory(folder) if ray.train.get_context().get_world_rank() == 0 else None
            )


def fit_round(
    task: TaskConfig,
    encoder_dir: str | Path,
    settings: FinetuneSettings,
    *,
    fold: int | None,
    num_classes: int,
    stats: tuple[float, float],
    storage: str | Path,
    name: str,
    workers: int = 1,
    use_gpu: bool = False,
    cpus_per_worker: float = 1.0,
    with_test: bool = False,
    callbacks: list | None = None,
) -> dict:
    """One fine-tuning run (a ``TorchTrainer``) of one round; returns its last reported metrics.

    With ``with_test`` the Trainer also gets the round's test clips and reports ``test_accuracy``
    of the best validation epoch; selection (the Tune trials) never passes it.
    """
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    roles = task.selection(fold)
    datasets = {
        "train": role_stream(task, roles["train"], settings, "train"),
        "validation": role_stream(task, roles["validation"], settings, "eval"),
    }
    if with_test:
        datasets["test"] = role_stream(task, roles["test"], settings, "eval")
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={
            "settings": asdict(settings),
            "encoder_dir": absolute(encoder_dir),
            "storage_settings": driver_settings(),
            "num_classes": num_classes,
            "stats": tuple(stats),
            "test": with_test,
        },
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu, resources_per_worker={"CPU": cpus_per_worker}),
        run_config=RunConfig(name=name, callbacks=callbacks or [], **train_storage(storage)),
        datasets=datasets,
    )
    result = trainer.fit()
    if result.error is not None:
        raise result.error
    return dict(result.metrics or {})


def finetune_trial(
    config: dict,
    *,
    task: TaskConfig,
    encoder_dir: str,
    num_classes: int,
    stats: tuple[float, float],
    storage: str,
    workers: int,
    use_gpu: bool,
    cpus_per_worker: float,
) -> None:
    """The Tune function of one trial: a Train run on the first round, reporting through Tune."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    fit_round(
        task,
        encoder_dir,
        finetune_settings(config),
        fold=task.rounds[0],
        num_classes=num_classes,
        stats=stats,
        storage=storage,
        name=f"trial-{tune.get_context().get_trial_id()}",
        workers=workers,
        use_gpu=use_gpu,
        cpus_per_worker=cpus_per_worker,
        callbacks=[TuneReportCallback()],
    )
