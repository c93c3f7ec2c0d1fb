"""`mast sweep TASK --checkpoint ENCODER_DIR`: a Ray Tune sweep of linear evaluation for one task.

1. Load the task (``configs/tasks``) and its search space (``tune_spaces``); both are validated
   before any work starts.
2. Embed every clip once with the frozen encoder (``pipelines.embeddings``; cached).
3. Tune trials fit linear probes on the *train* rows and report accuracy on the *validation*
   rows only (ASHA stops weak trials early). The test rows never leave the driver.
4. The best configuration is refitted once per round (one round, or one per fold) and scored on
   the test rows; a fold task's score is the mean over folds.
5. MLflow: one parent run per sweep (task, protocol, checkpoint, best config, test score) with a
   child run per trial (its params and per-epoch validation accuracy).

``--resume`` continues an interrupted sweep with ``Tuner.restore``; finished trials are kept.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

from mast_core.probe import ProbeSettings, fit_linear_probe

from .config import ConfigError
from .embeddings import embed_task, load_embeddings
from .spaces import TuneSpace, load_space
from .tasks import TaskConfig, load_task, task_names


def role_rows(data: dict, selection: dict) -> torch.Tensor:
    """Indices of the rows a role takes: by split name or by fold number."""
    if "splits" in selection:
        wanted = set(selection["splits"])
        mask = torch.tensor([split in wanted for split in data["split"]], dtype=torch.bool)
    else:
        mask = torch.isin(data["fold"], torch.tensor(selection["folds"], dtype=data["fold"].dtype))
    return mask.nonzero().squeeze(1)


def split_rounds(task: TaskConfig, data: dict) -> tuple[list[dict], list[tuple[torch.Tensor, torch.Tensor]]]:
    """Per round: (train, validation) tensors for selection, and the test tensors kept apart."""
    selection, tests = [], []
    for fold in task.rounds:
        roles = task.selection(fold)
        parts = {}
        for role in ("train", "validation", "test"):
            index = role_rows(data, roles[role])
            if len(index) == 0:
                raise ConfigError(f"task {task.name}: no clips for {role} ({roles[role]}) in {task.shards}")
            parts[role] = (data["embedding"][index], data["label"][index])
        selection.append({"train": parts["train"], "validation": parts["validation"]})
        tests.append(parts["test"])
    return selection, tests


def probe_settings(config: dict) -> ProbeSettings:
    fields = ProbeSettings.__dataclass_fields__
    return ProbeSettings(**{key: (int(value) if fields[key].type == "int" else value) for key, value in config.items() if key in fields})


def linear_trial(config: dict, rounds: list[dict], num_classes: int) -> None:
    """One Tune trial: a probe per round; reports the running mean validation accuracy."""
    from ray import tune

    torch.set_num_threads(1)
    settings = probe_settings(config)
    single = len(rounds) == 1
    scores = []
    for data in rounds:
        def per_epoch(epoch: int, metrics: dict) -> None:
            if single:  # per-epoch reports let ASHA stop weak trials early
                tune.report({"val_accuracy": metrics["val_accuracy"], "train_loss": metrics["train_loss"], "epoch": epoch})

        probe = fit_linear_probe(*data["train"], *data["validation"], settings, num_classes=num_classes, on_epoch=per_epoch)
        scores.append(probe.val_accuracy)
        if not single:  # fold tasks: one report per round, the mean so far
            tune.report({"val_accuracy": statistics.mean(scores), "rounds_done": len(scores)})
    if single:
        tune.report({"val_accuracy": scores[0], "best_epoch": probe.best_epoch, "done": 1})


def _parent_run(client, experiment: str, name: str, tags: dict) -> tuple[str, bool]:
    """(run id, existed): the sweep's parent run, found by name so a resumed sweep reuses it."""
    existing = client.get_experiment_by_name(experiment)
    experiment_id = existing.experiment_id if existing else client.create_experiment(experiment)
    runs = client.search_runs([experiment_id], filter_string=f"tags.`mast.sweep_name` = '{name}'", max_results=1)
    if runs:
        return runs[0].info.run_id, True
    run = client.create_run(experiment_id, run_name=name, tags={"mast.sweep_name": name, **tags})
    return run.info.run_id, False


def run_sweep(
    task: TaskConfig,
    encoder_dir: str | Path,
    space: TuneSpace,
    *,
    storage: str | Path = "runs/sweeps",
    tracking_uri: str | None = None,
    experiment: str = "mast-sweeps",
    resume: bool = False,
    label: str | None = None,
    progress=print,
) -> dict:
    from mlflow import MlflowClient
    from ray import tune
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from .pretrain import default_tracking_uri
    from .runtime import init_ray

    encoder_dir = Path(encoder_dir)
    shards = Path(task.shards)
    if not (shards / "manifest.json").is_file():
        raise ConfigError(f"{shards}/manifest.json not found; make the shards with: {task.ingest}")
    if not (encoder_dir / "encoder.safetensors").is_file():
        raise ConfigError(f"--checkpoint {encoder_dir}: not an exported encoder folder (encoder.safetensors + config.json)")
    manifest = json.loads((shards / "manifest.json").read_text())
    tracking_uri = tracking_uri or default_tracking_uri()
    init_ray()
    cache, cached = embed_task(shards, encoder_dir, task.frames_per_clip, progress=progress)
    data = load_embeddings(cache)
    rounds, tests = split_rounds(task, data)
    num_classes = len(manifest["vocabulary"])

    name = f"{task.name}-linear-{cache.stem.split('-')[0]}"
    client = MlflowClient(tracking_uri)
    arch = json.loads((encoder_dir / "config.json").read_text())["arch"]
    parent_id, _ = _parent_run(client, experiment, name, {
        "task": task.name, "protocol": "linear", "checkpoint": str(encoder_dir.resolve()), "embedding_cache": str(cache),
        "model_label": label or f"{arch.upper()} {encoder_dir.resolve().name}",
    })
    progress(f"[sweep] {task.name}: {len(task.rounds)} round(s), {num_classes} classes; MLflow parent run {parent_id}")

    trainable = tune.with_resources(
        tune.with_parameters(linear_trial, rounds=rounds, num_classes=num_classes),
        {key.upper(): value for key, value in space.resources.items()},
    )
    path = Path(storage).resolve() / name
    if resume and tune.Tuner.can_restore(str(path)):
        progress(f"[sweep] resuming {path}")
        tuner = tune.Tuner.restore(str(path), trainable=trainable, resume_errored=True)
    else:
        if path.exists() and not resume:
            raise ConfigError(f"{path} holds an earlier sweep of this task and checkpoint; pass --resume to continue it")
        scheduler = (
            ASHAScheduler(max_t=10_000, grace_period=space.scheduler.grace_period, reduction_factor=space.scheduler.reduction_factor)
            if space.scheduler.type == "asha" else FIFOScheduler()
        )
        tuner = tune.Tuner(
            trainable,
            param_space=space.tune_space(),
            tune_config=tune.TuneConfig(metric="val_accuracy", mode="max", num_samples=space.num_samples, scheduler=scheduler),
            run_config=tune.RunConfig(
                name=name, storage_path=str(Path(storage).resolve()),
                callbacks=[MLflowLoggerCallback(tracking_uri=tracking_uri, experiment_name=experiment,
                                                tags={"mlflow.parentRunId": parent_id, "task": task.name}, save_artifact=False)],
            ),
        )
    results = tuner.fit()
    best = results.get_best_result(metric="val_accuracy", mode="max")
    best_config = dict(best.config)
    progress(f"[sweep] best validation accuracy {best.metrics['val_accuracy']:.4f} with {best_config}")

    settings = probe_settings(best_config)
    test_scores = []
    for data_round, (test_x, test_y) in zip(rounds, tests):  # the test rows are used here, once
        probe = fit_linear_probe(*data_round["train"], *data_round["validation"], settings, num_classes=num_classes)
        test_scores.append(probe.accuracy(test_x, test_y))
    summary = {
        "task": task.name,
        "test_accuracy": statistics.mean(test_scores),
        "test_accuracy_std": statistics.pstdev(test_scores) if len(test_scores) > 1 else 0.0,
        "test_scores": test_scores,
        "val_accuracy": float(best.metrics["val_accuracy"]),
        "best_config": best_config,
        "trials": len(results),
        "parent_run_id": parent_id,
        "embeddings_cached": cached,
    }
    for key, value in best_config.items():
        try:
            client.log_param(parent_id, f"best.{key}", value)
        except Exception:  # a resumed sweep already logged the best config; params are immutable
            pass
    for key in ("test_accuracy", "val_accuracy") + (("test_accuracy_std",) if len(test_scores) > 1 else ()):
        client.log_metric(parent_id, key, summary[key])  # a std is logged only where there are folds
    client.set_terminated(parent_id, "FINISHED")
    progress(f"[sweep] {task.name}: test accuracy {summary['test_accuracy']:.4f}"
             + (f" ± {summary['test_accuracy_std']:.4f} over {len(test_scores)} folds" if len(test_scores) > 1 else ""))
    return summary


def run(args: argparse.Namespace) -> None:
    try:
        names = task_names() if args.all else [args.task]
        if not args.all and args.task is None:
            raise ConfigError("give a TASK or --all")
        if args.protocol != "linear":
            raise ConfigError("--protocol finetune is not implemented yet; use linear")
        jobs = []
        for name in names:
            task = load_task(name)
            if args.all and not (Path(task.shards) / "manifest.json").is_file():
                print(f"[sweep] skipping {name}: no shards at {task.shards}", file=sys.stderr)
                continue
            jobs.append((task, load_space(task.name, args.space)))
        for task, space in jobs:
            run_sweep(task, args.checkpoint, space, storage=args.storage, tracking_uri=args.tracking_uri, resume=args.resume,
                      label=args.label)
    except ConfigError as error:
        raise SystemExit(f"mast sweep: {error}") from None


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("sweep", help="Ray Tune sweep of downstream evaluation", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", nargs="?", help=f"one of: {', '.join(task_names())}")
    parser.add_argument("--all", action="store_true", help="every task whose shards exist")
    parser.add_argument("--checkpoint", required=True, type=Path, help="exported encoder folder")
    parser.add_argument("--space", type=Path, default=None, help="search space YAML (default tune_spaces/TASK.yaml)")
    parser.add_argument("--protocol", choices=("linear", "finetune"), default="linear")
    parser.add_argument("--storage", default="runs/sweeps", help="Ray Tune storage folder")
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--resume", action="store_true", help="continue an interrupted sweep (Tuner.restore)")
    parser.add_argument("--label", default=None, help="row name in `mast report`, e.g. 'MAST IN+SS-MAST' (default: arch and folder)")
    parser.set_defaults(handler=run)
