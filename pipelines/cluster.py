"""`mast check-cluster`: validate a Ray cluster-launcher YAML offline before `ray up`.

Runs Ray's own schema and config checks (``prepare_config`` + ``validate_config``, the code path of
``ray up``; a private Ray API, wrapped here so one place changes if Ray moves it), then checks
that Ray's schema does not cover but that matter for this project:

- token authentication on every node (``RAY_AUTH_MODE=token`` in the containers' environment) and
  the dashboard on the head's loopback (anyone who reaches it can run code through the Jobs API);
- with more than one node, shared storage: ``MAST_STORAGE`` (where runs keep checkpoints) must be
  a URI such as ``s3://bucket/runs``, or a shared mount declared with ``MAST_STORAGE_SHARED=1``,
  and every job config checked (``--job``, default ``configs/pretrain/paper.yaml``) must resolve
  ``run.storage`` and its data sources to such a location with the cluster's environment.
"""

from __future__ import annotations

import copy
import logging
import re
from pathlib import Path

import yaml


class ClusterConfigError(ValueError):
    """A cluster.yaml that `ray up` would reject or that would misbehave; names the file and key."""


def _project_checks(config: dict) -> list[str]:
    problems = []
    for name, node_type in config.get("available_node_types", {}).items():
        low, high = node_type.get("min_workers", 0), node_type.get("max_workers", 0)
        if low < 0 or high < 0:
            problems.append(f"available_node_types.{name}: min_workers/max_workers must be >= 0, got {low}/{high}")
        elif low > high:
            problems.append(f"available_node_types.{name}: min_workers ({low}) exceeds max_workers ({high})")
    docker = config.get("docker") or {}
    image = docker.get("image", "")
    if "ray-ml" in image:
        problems.append(
            f"docker.image: {image!r}: rayproject/ray-ml images are no longer published; use rayproject/ray:<version>-py311-gpu"
        )
    run_options = " ".join(docker.get("run_options", []) + docker.get("head_run_options", []))
    if image and "--shm-size" not in run_options:
        problems.append(
            "docker.run_options / head_run_options: set --shm-size (the object store lives in /dev/shm; Docker's default is 64 MB)"
        )
    return problems


_ENV = re.compile(r"(?:--env[= ]|-e |export )([A-Za-z_][A-Za-z0-9_]*)=(\S+)")


def cluster_environment(config: dict) -> dict[str, tuple[str, str]]:
    """Variables every node sets: ``{name: (value, key it is set in)}``, from ``--env`` in the
    Docker run options and ``export`` in the setup commands (run on every node)."""
    found: dict[str, tuple[str, str]] = {}
    docker = config.get("docker") or {}
    for key in ("run_options", "setup_commands"):
        items = docker.get(key, []) if key == "run_options" else config.get(key, [])
        where = f"docker.{key}" if key == "run_options" else key
        for item in items:
            for name, value in _ENV.findall(str(item)):
                found.setdefault(name, (value.strip("'\""), where))
    return found


def _node_count(config: dict) -> int:
    """The most nodes the cluster can have: the head plus ``max_workers``."""
    per_type = sum(
        node.get("max_workers", 0) for name, node in config.get("available_node_types", {}).items() if name != config.get("head_node_type")
    )
    return 1 + min(config.get("max_workers", per_type), per_type)


def _is_shared(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


def _security_checks(config: dict, env: dict) -> list[str]:
    problems = []
    if env.get("RAY_AUTH_MODE", ("",))[0] != "token":
        problems.append(
            "docker.run_options: set --env RAY_AUTH_MODE=token (token authentication on every node; without it anyone "
            "who reaches the dashboard port runs code through the Jobs API)"
        )
    for command in config.get("head_start_ray_commands", []):
        if "ray start" in command and "--head" in command:
            host = re.search(r"--dashboard-host[= ](\S+)", command)
            if host is None or host.group(1) not in ("127.0.0.1", "localhost"):
                problems.append("head_start_ray_commands: give `ray start --head` --dashboard-host=127.0.0.1 (reach it through SSH)")
    return problems


def _job_checks(config: dict, env: dict, jobs: list[Path]) -> list[str]:
    """Checkpoints and data on shared storage when the cluster has more than one node."""
    nodes = _node_count(config)
    if nodes <= 1:
        return []
    shared_mount = env.get("MAST_STORAGE_SHARED", ("",))[0] == "1"
    problems = []
    storage = env.get("MAST_STORAGE")
    if storage is None:
        problems.append(f"docker.run_options: set --env MAST_STORAGE=s3://BUCKET/runs (this cluster has up to {nodes} nodes)")
    elif not _is_shared(storage[0]) and not shared_mount:
        problems.append(
            f"{storage[1]}: MAST_STORAGE={storage[0]} is a folder on each node's own disk, and this cluster has up to {nodes} "
            f"nodes: checkpoints would stay on the node that wrote them; use s3://BUCKET/runs (or declare a shared mount "
            f"such as EFS with MAST_STORAGE_SHARED=1)"
        )
    from pipelines.common.config import ConfigError, load_config
    from pipelines.pretrain.config import PretrainConfig

    # the job configs as the cluster's nodes will read them: with the cluster's variables
    environ = {name: value for name, (value, _) in env.items()}
    for job in jobs:
        try:
            pretrain = load_config(PretrainConfig, job, environ=environ)
        except ConfigError as error:
            problems.append(f"job config {job}: {error}")
            continue
        if not _is_shared(pretrain.run.storage) and not shared_mount:
            problems.append(
                f"job config {job}: run.storage = {pretrain.run.storage} is a folder on each node's own disk with up to "
                f"{nodes} nodes; give a URI (s3://BUCKET/runs) or ${{MAST_STORAGE}}"
            )
        for index, source in enumerate(pretrain.data.sources):
            if not _is_shared(source.path) and not shared_mount:
                problems.append(f"job config {job}: data.sources[{index}].path = {source.path} is not on shared storage")
    return problems


def validate_cluster_config(path: str | Path, jobs: list[str | Path] | None = None) -> dict:
    """Return the prepared config, or raise :class:`ClusterConfigError` listing every problem.

    ``jobs``: pretraining configs the cluster will run (default: the shipped ``paper.yaml``)."""
    path = Path(path)
    if not path.is_file():
        raise ClusterConfigError(f"{path}: not found")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ClusterConfigError(f"{path}: not valid YAML ({error})") from error
    if not isinstance(config, dict):
        raise ClusterConfigError(f"{path}: expected a mapping at the top level")

    from ray.autoscaler._private.util import prepare_config, validate_config

    logging.getLogger("ray.autoscaler._private.util").setLevel(logging.WARNING)
    try:
        prepared = prepare_config(copy.deepcopy(config))
        validate_config(prepared)
    except Exception as error:  # jsonschema.ValidationError, ValueError, KeyError from Ray
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ClusterConfigError(f"{path}: rejected by Ray's cluster checks: {first_line}") from error
    if jobs is None:
        from pipelines.common.resources import config_dir

        jobs = [config_dir("configs", "pretrain") / "paper.yaml"]
    env = cluster_environment(prepared)
    problems = _project_checks(prepared) + _security_checks(prepared, env) + _job_checks(prepared, env, [Path(job) for job in jobs])
    if problems:
        raise ClusterConfigError(f"{path}: " + "; ".join(problems))
    return prepared
