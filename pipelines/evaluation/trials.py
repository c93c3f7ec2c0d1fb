"""The linear sweep's Tune trial, in a module of its own: a trial process imports this module to
unpickle the function, and it needs only torch and the probe, not the sweep's Ray Data, MLflow and
embedding code (its import takes 1.7 s against 2.4 s for the sweep module's, ``python -X importtime``)."""

from __future__ import annotations

import statistics

import torch

from mast_core.probe import ProbeSettings, fit_linear_probe


def probe_settings(config: dict) -> ProbeSettings:
    fields = ProbeSettings.__dataclass_fields__
    return ProbeSettings(**{key: (int(value) if fields[key].type == "int" else value) for key, value in config.items() if key in fields})


def linear_trial(config: dict, rounds: list[dict], num_classes: int) -> None:
    """One Tune trial: a probe per round; reports the running mean validation accuracy."""
    import ray
    from ray import tune

    torch.set_num_threads(1)
    settings = probe_settings(config)
    node = ray.get_runtime_context().get_node_id()  # in every report: where the trial ran (not logged as a metric)
    single = len(rounds) == 1
    scores = []
    for data in rounds:
        # the clips this round fits and selects on, in every report (audits: no test clip among them)
        clips = {"train_clips": len(data["train"][1]), "val_clips": len(data["validation"][1]), "node_id": node}

        def per_epoch(epoch: int, metrics: dict, clips: dict = clips) -> None:
            if single:  # per-epoch reports let ASHA stop weak trials early
                tune.report({"val_accuracy": metrics["val_accuracy"], "train_loss": metrics["train_loss"], "epoch": epoch, **clips})

        probe = fit_linear_probe(*data["train"], *data["validation"], settings, num_classes=num_classes, on_epoch=per_epoch)
        scores.append(probe.val_accuracy)
        if not single:  # fold tasks: one report per round, the mean so far
            tune.report({"val_accuracy": statistics.mean(scores), "rounds_done": len(scores), **clips})
    if single:
        tune.report({"val_accuracy": scores[0], "best_epoch": probe.best_epoch, "done": 1, **clips})
