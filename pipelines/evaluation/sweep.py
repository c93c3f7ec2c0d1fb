"""`mast sweep TASK --checkpoint CKPT [--protocol linear|finetune]`: a Ray Tune sweep for one task.

1. Load the task (``configs/tasks``) and its search space (``tune_spaces/TASK.yaml``, or
   ``tune_spaces/finetune/TASK.yaml``); both are validated before any work starts. CKPT is an
   exported encoder folder, an MLflow run id or ``runs:/`` URI of a pretraining run, ``random:ARCH``
   (a seeded random initialisation, e.g. ``random:mast_small``) or ``imagenet:ARCH:TIMM_FILE``.
2. ``linear`` (default): embed every clip once with the frozen encoder (``pipelines.embeddings``;
   cached), and each Tune trial fits linear probes on the *train* rows and reports accuracy on the
   *validation* rows. ``finetune``: each trial is a Ray Train run (``pipelines.finetune``) that
   updates the encoder and a linear head on the train clips and scores the validation clips.
   ASHA stops weak trials early. Test clips never reach a trial.
3. The best configuration is refitted once per round (one round, or one per fold) and scored on
   the test clips; a fold task's score is the mean over folds.
4. MLflow: one parent run per sweep (task, protocol, checkpoint, best config, test score) with a
   child run per trial (its params and per-epoch validation accuracy).

``--resume`` continues an interrupted sweep with ``Tuner.restore``; finished trials are kept.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import torch

from mast_core.probe import accuracy_interval, fit_linear_probe
from pipelines.common import storage as store
from pipelines.common.checkpoints import local_encoder
from pipelines.common.config import ConfigError
from pipelines.common.tracking import default_tracking_uri, experiment_id_for, find_run
from pipelines.data.stream import DataConfigError, read_paths
from pipelines.evaluation.embeddings import embed_task, load_embeddings, skipped_clips
from pipelines.evaluation.spaces import TuneSpace
from pipelines.evaluation.tasks import TaskConfig
from pipelines.evaluation.trials import linear_trial, probe_settings


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


def trial_progress(progress, total: int):
    """A Tune callback that prints one line per finished trial (Tune's status tables are switched off)."""
    from ray import tune

    class TrialProgress(tune.Callback):
        # no closure over `progress`: Tune pickles its callbacks with the experiment state, and
        # the driver's print may be a patched one; a restored callback prints with print
        def __init__(self, progress, total: int) -> None:
            self.done, self.total, self.progress = 0, total, progress

        def __getstate__(self) -> dict:
            return {"done": self.done, "total": self.total}

        def __setstate__(self, state: dict) -> None:
            self.done, self.total, self.progress = state["done"], state["total"], print

        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            self.done += 1
            result = trial.last_result or {}
            shown = {key: (f"{value:.3g}" if isinstance(value, float) else value) for key, value in trial.config.items()}
            self.progress(
                f"[sweep] trial {self.done}/{self.total} done: val_accuracy {result.get('val_accuracy', float('nan')):.4f} "
                f"after {result.get('training_iteration', 0)} reports {shown}"
                + (f" on node {result['node_id']}" if "node_id" in result else "")
            )

        def on_trial_error(self, iteration, trials, trial, **info) -> None:
            self.progress(f"[sweep] trial {trial.trial_id} failed; its error is in {trial.local_path}")

    return TrialProgress(progress, total)


def trial_runs(tracking_uri: str, experiment: str, tags: dict):
    """Ray's ``MLflowLoggerCallback`` (a child run per trial, its config as params, each report as
    metrics), except that a report is one ``log_batch`` call: Ray's logs each metric with its own
    call and a lookup of the run, about 5 ms each on a sqlite store, in Tune's driver loop: 8 s of an
    8-trial linear sweep of 34 s went there (a profile of ``benchmarks/sweep_cache.py``'s sweep)."""
    import time

    from mlflow import MlflowClient
    from mlflow.entities import Metric
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    from ray.tune.result import TIMESTEPS_TOTAL, TRAINING_ITERATION
    from ray.tune.utils import flatten_dict

    class TrialRuns(MLflowLoggerCallback):
        client = None  # one for all reports, made on the first

        def log_trial_result(self, iteration: int, trial, result: dict) -> None:
            step = result.get(TIMESTEPS_TOTAL) or result[TRAINING_ITERATION]
            now = int(time.time() * 1000)
            metrics = []
            for key, value in flatten_dict(result).items():
                try:  # what MLflow can plot; strings and the like are left out, as Ray's callback does
                    metrics.append(Metric(key, float(value), now, step))
                except (TypeError, ValueError):
                    continue
            if self.client is None:
                self.client = MlflowClient(self.tracking_uri)
            self.client.log_batch(self._trial_runs[trial], metrics=metrics)

    return TrialRuns(tracking_uri=tracking_uri, experiment_name=experiment, tags=tags, save_artifact=False)


def _parent_run(client, experiment: str, name: str, tags: dict) -> tuple[str, bool]:
    """(run id, existed): the sweep's parent run, found by name so a resumed sweep reuses it."""
    experiment_id = experiment_id_for(client, experiment, client.tracking_uri)
    run = find_run(client, experiment_id, "mast.sweep_name", name)
    if run is not None:
        return run.info.run_id, True
    run = client.create_run(experiment_id, run_name=name, tags={"mast.sweep_name": name, **tags})
    return run.info.run_id, False


def _linear_plan(task: TaskConfig, encoder_dir: str, num_classes: int, progress) -> tuple:
    """(trainable, test scorer, key, tags): probes on cached embeddings; tests stay in the driver."""
    from ray import tune

    try:
        cache, cached = embed_task(task.shards, encoder_dir, task.frames_per_clip, progress=progress)
    except DataConfigError as error:  # a shard lost or broken after the start check: before any MLflow run
        raise ConfigError(f"task {task.name}: {error}; restore it and run the sweep again") from None
    rounds, tests = split_rounds(task, load_embeddings(cache))

    def score_tests(best_config: dict, _space: TuneSpace) -> list[tuple[float, int]]:
        settings = probe_settings(best_config)
        scores = []
        for data_round, (test_x, test_y) in zip(rounds, tests):  # the test rows are used here, once
            probe = fit_linear_probe(*data_round["train"], *data_round["validation"], settings, num_classes=num_classes)
            scores.append((probe.accuracy(test_x, test_y), len(test_y)))
        return scores

    trainable = tune.with_parameters(linear_trial, rounds=rounds, num_classes=num_classes)
    extra = {"embeddings_cached": cached, "skipped_clips": len(skipped_clips(cache))}  # clips that did not decode
    return trainable, score_tests, store.name(cache).split("-")[0], {"embedding_cache": cache}, extra


def _finetune_plan(task: TaskConfig, encoder_dir: str, num_classes: int, space: TuneSpace, storage: str) -> tuple:
    """(trainable, test scorer, key, tags): a Train run per trial; the best config refitted per round."""
    from ray import tune

    from mast_core.checkpoint import load_encoder
    from pipelines.evaluation.embeddings import encoder_digest
    from pipelines.evaluation.finetune import finetune_settings, finetune_trial, fit_round

    _, features = load_encoder(local_encoder(encoder_dir))
    stats = (features.mean, features.std)
    key = encoder_digest(encoder_dir)
    runs = store.join(storage, f"{task.name}-finetune-{key}-train")  # the trials' Train runs, beside the Tune experiment
    common = {"workers": space.workers, "use_gpu": space.resources.get("gpu", 0) > 0, "cpus_per_worker": space.resources.get("cpu", 1.0)}
    extra: dict = {}  # filled by the test rounds: clips that did not decode, seen by the final fits

    def score_tests(best_config: dict, _space: TuneSpace) -> list[tuple[float, int]]:
        scores = []
        for fold in task.rounds:  # the test clips reach a Trainer here only, after selection
            metrics = fit_round(
                task,
                encoder_dir,
                finetune_settings(best_config),
                fold=fold,
                num_classes=num_classes,
                stats=stats,
                storage=runs,
                name=f"test-round-{fold or 0}",
                with_test=True,
                **common,
            )
            scores.append((metrics["test_accuracy"], metrics["test_clips"]))
            extra["skipped_clips"] = max(extra.get("skipped_clips", 0), int(metrics.get("skipped_clips", 0)))
        return scores

    trainable = tune.with_parameters(
        finetune_trial, task=task, encoder_dir=encoder_dir, num_classes=num_classes, stats=stats, storage=runs, **common
    )
    return trainable, score_tests, key, {}, extra


def max_concurrent_finetune_trials(space: TuneSpace) -> int:
    """Trials that fit the cluster at once. Each needs its Train workers plus its data actors, and a
    trial started without them would wait for ever: Tune's own accounting sees only the trial
    function. One CPU stays free for Ray Data's file-listing tasks (the 2-CPU hang, docs/design.md "Platform notes")."""
    import ray

    from pipelines.evaluation.finetune import DATA_ACTORS_PER_TRIAL

    per_trial = space.workers * space.resources.get("cpu", 1.0) + DATA_ACTORS_PER_TRIAL
    return max(1, int((ray.cluster_resources().get("CPU", 1) - 1) // per_trial))


def max_concurrent_linear_trials() -> int | None:
    """On one machine, as many linear trials at once as it has cores (an embedded Ray counts more
    logical CPUs than cores, ``local_cpus``): each concurrent trial is a process that imports torch
    and its optimiser (about 3 s of CPU), while its probes take a fraction of a second. On a
    cluster, one per free CPU (None: Tune's own limit)."""
    import os

    import ray

    if sum(1 for node in ray.nodes() if node["Alive"]) > 1:
        return None
    return min(os.cpu_count() or 1, max(1, int(ray.cluster_resources().get("CPU", 1))))


def _check_inputs(task: TaskConfig, encoder_dir: str, space: TuneSpace, protocol: str, storage: str) -> int:
    """The number of classes; every bad input fails here, before Ray or MLflow start."""
    if protocol not in ("linear", "finetune"):
        raise ConfigError(f"protocol: 'linear' or 'finetune', got {protocol!r}")
    if space.protocol != protocol:
        raise ConfigError(f"the search space is for the {space.protocol} protocol, the sweep asks for {protocol}")
    try:
        store.check_location(storage, "--storage")
        manifest = store.join(task.shards, "manifest.json")
        if not store.is_file(manifest):
            raise ConfigError(f"{manifest} not found; make the shards with: {task.ingest}")
        if not store.is_file(store.join(encoder_dir, "encoder.safetensors")):
            raise ConfigError(f"--checkpoint {encoder_dir}: not an exported encoder folder (encoder.safetensors + config.json)")
        listed = json.loads(store.read_text(manifest))
        read_paths([store.join(task.shards, shard["file"]) for shard in listed["shards"] if shard["rows"]])  # each shard readable
        return len(listed["vocabulary"])
    except store.StorageError as error:
        raise ConfigError(str(error)) from None
    except DataConfigError as error:
        raise ConfigError(f"task {task.name}: {error}") from None


def _tuner(trainable, space: TuneSpace, protocol: str, name: str, storage: str, resume: bool, callbacks: list, progress):
    """A new Tuner for the sweep, or the interrupted one restored from ``storage/name``."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import BasicVariantGenerator

    resources = {key.upper(): value for key, value in space.resources.items()}
    if protocol == "finetune":  # the trial function only drives a TorchTrainer, which holds the resources
        resources, concurrency = {"CPU": 0.01}, max_concurrent_finetune_trials(space)
    else:
        concurrency = max_concurrent_linear_trials()
    trainable = tune.with_resources(trainable, resources)
    path = store.join(storage, name)
    where = store.train_storage(path)
    progress(f"[sweep] {space.num_samples} trials, at most {concurrency or 'one per free CPU'} at once; Tune state in {path}")
    if resume and tune.Tuner.can_restore(where["storage_path"], storage_filesystem=where["storage_filesystem"]):
        progress(f"[sweep] resuming {path}")
        return tune.Tuner.restore(
            where["storage_path"], trainable=trainable, resume_errored=True, storage_filesystem=where["storage_filesystem"]
        )
    if store.exists(path) and not resume:
        raise ConfigError(f"{path} holds an earlier sweep of this task and checkpoint; pass --resume to continue it")
    if space.scheduler.type == "asha":
        scheduler = ASHAScheduler(
            max_t=10_000, grace_period=space.scheduler.grace_period, reduction_factor=space.scheduler.reduction_factor
        )
    else:
        scheduler = FIFOScheduler()
    return tune.Tuner(
        trainable,
        param_space=space.tune_space(),
        tune_config=tune.TuneConfig(
            metric="val_accuracy",
            mode="max",
            num_samples=space.num_samples,
            # seeded, so one space file samples the same configs on every run and machine; the
            # concurrency limit goes here too: Tune ignores max_concurrent_trials (with a warning)
            # when it is given a generator, and fine-tune trials beyond the cluster would hang
            search_alg=BasicVariantGenerator(random_state=space.seed, max_concurrent=concurrency or 0),
            scheduler=scheduler,
            # linear trials are short: one long-lived process per concurrent trial, not one per trial
            reuse_actors=protocol == "linear",
        ),
        run_config=tune.RunConfig(name=name, verbose=0, callbacks=callbacks, **store.train_storage(storage)),
    )


def _log_summary(client, parent_id: str, summary: dict) -> None:
    """The best config as ``best.*`` params and the scores as metrics of the parent run."""
    for key, value in summary["best_config"].items():
        try:
            client.log_param(parent_id, f"best.{key}", value)
        except Exception:  # a resumed sweep already logged the best config; params are immutable
            pass
    folds = len(summary["test_scores"]) > 1
    keys = ("test_accuracy", "val_accuracy", "test_ci_low", "test_ci_high", "chance_accuracy", "test_clips")
    keys += ("test_accuracy_std",) if folds else ()  # a std is logged only where there are folds
    for key in keys + (("skipped_clips",) if "skipped_clips" in summary else ()):
        client.log_metric(parent_id, key, summary[key])
    client.set_terminated(parent_id, "FINISHED")


def run_sweep(
    task: TaskConfig,
    encoder_dir: str | Path,
    space: TuneSpace,
    *,
    protocol: str = "linear",
    storage: str | Path = "runs/sweeps",
    tracking_uri: str | None = None,
    experiment: str = "mast-sweeps",
    resume: bool = False,
    label: str | None = None,
    progress=print,
) -> dict:
    """Sweep ``space`` for ``task`` on the encoder in ``encoder_dir``; returns the summary (best
    config, its validation accuracy, the test accuracy of the refit, per round)."""
    from mlflow import MlflowClient

    from pipelines.common.runtime import init_ray

    # 1. inputs, before any work
    encoder_dir, storage = store.absolute(encoder_dir), store.absolute(storage)
    num_classes = _check_inputs(task, encoder_dir, space, protocol, storage)
    tracking_uri = tracking_uri or default_tracking_uri()
    init_ray()

    # 2. the trials' plan: what a trial trains, and the test scorer the driver keeps
    if protocol == "linear":
        trainable, score_tests, key, tags, extra = _linear_plan(task, encoder_dir, num_classes, progress)
    else:
        trainable, score_tests, key, tags, extra = _finetune_plan(task, encoder_dir, num_classes, space, storage)
    name = f"{task.name}-{protocol}-{key}"

    # 3. the MLflow parent run (found again by name on a resumed sweep)
    client = MlflowClient(tracking_uri)
    arch = json.loads((local_encoder(encoder_dir) / "config.json").read_text())["arch"]
    parent_tags = {
        "task": task.name,
        "protocol": protocol,
        "checkpoint": encoder_dir,
        "model_label": label or f"{arch.upper()} {store.name(encoder_dir)}",
        **tags,
    }
    parent_id, _ = _parent_run(client, experiment, name, parent_tags)
    progress(f"[sweep] {task.name} ({protocol}): {len(task.rounds)} round(s), {num_classes} classes; MLflow parent run {parent_id}")

    # 4. the trials, selected on validation accuracy
    callbacks = [
        trial_runs(tracking_uri, experiment, {"mlflow.parentRunId": parent_id, "task": task.name}),
        trial_progress(progress, space.num_samples),
    ]
    results = _tuner(trainable, space, protocol, name, storage, resume, callbacks, progress).fit()
    best = results.get_best_result(metric="val_accuracy", mode="max")
    best_config = dict(best.config)
    progress(f"[sweep] best validation accuracy {best.metrics['val_accuracy']:.4f} with {best_config}")

    # 5. the test split, once, with the selected config; a 95 % bootstrap interval over its clips
    scored = score_tests(best_config, space)
    test_scores = [accuracy for accuracy, _ in scored]
    ci_low, ci_high = accuracy_interval(scored)
    summary = {
        "task": task.name,
        "protocol": protocol,
        "test_accuracy": statistics.mean(test_scores),
        "test_accuracy_std": statistics.pstdev(test_scores) if len(test_scores) > 1 else 0.0,
        "test_scores": test_scores,
        "test_clips": sum(clips for _, clips in scored),
        "test_ci_low": ci_low,
        "test_ci_high": ci_high,
        "chance_accuracy": 1.0 / num_classes,
        "val_accuracy": float(best.metrics["val_accuracy"]),
        "best_config": best_config,
        "trials": len(results),
        "parent_run_id": parent_id,
        **extra,
    }
    _log_summary(client, parent_id, summary)
    spread = f" ± {summary['test_accuracy_std']:.4f} over {len(test_scores)} folds" if len(test_scores) > 1 else ""
    skipped = f"; {summary['skipped_clips']} clips that do not decode left out" if summary.get("skipped_clips") else ""
    progress(
        f"[sweep] {task.name}: test accuracy {summary['test_accuracy']:.4f}{spread} "
        f"(95 % interval {ci_low:.4f}-{ci_high:.4f} over {summary['test_clips']} test clips){skipped}"
    )
    return summary
