"""MLflow plumbing shared by every command: the default store, experiments, runs found by tag,
quick failures against an unreachable server, and headless plots.

Example::

    uri = default_tracking_uri()                      # MLFLOW_TRACKING_URI, else ./mlflow.db
    experiment_id = experiment_id_for(client, "mast-pretrain", uri)
    run = find_run(client, experiment_id, "mast.run_name", "tiny")
"""

from __future__ import annotations

import os
from pathlib import Path

# An unreachable tracking server must cost seconds, not MLflow's default minutes of retries.
MLFLOW_CLIENT_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else a sqlite store ``mlflow.db`` in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlflow.db').absolute()}"


def quick_mlflow_failures() -> None:
    """Fail an unreachable server in seconds (unless the user set MLflow's own variables)."""
    for key, value in MLFLOW_CLIENT_ENV.items():
        os.environ.setdefault(key, value)


def artifact_location(tracking_uri: str) -> str | None:
    """Artifacts of a sqlite store go next to its database, as an absolute URI: Ray workers run in
    other working directories and would otherwise scatter ``mlruns/`` folders. Servers decide their
    own location (None)."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri.removeprefix("sqlite:///")).parent / "mlartifacts").absolute().as_uri()
    return None


def experiment_id_for(client, name: str, tracking_uri: str) -> str:
    """The id of experiment ``name``, created (with :func:`artifact_location`) when missing."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=artifact_location(tracking_uri))


def find_run(client, experiment_id: str, tag: str, value: str):
    """The newest run of the experiment whose ``tag`` equals ``value``, or None."""
    found = client.search_runs([experiment_id], filter_string=f"tags.`{tag}` = '{value}'", max_results=1)
    return found[0] if found else None


def pyplot():
    """matplotlib's pyplot on the headless Agg backend (servers and CI have no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
