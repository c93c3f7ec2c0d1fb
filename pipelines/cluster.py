"""`mast check-cluster`: validate a Ray cluster-launcher YAML offline before `ray up`.

Runs Ray's own schema and config checks (``prepare_config`` + ``validate_config``, the code path of
``ray up``; a private Ray API, wrapped here so one place changes if Ray moves it), then checks
that Ray's schema does not cover but that matter for this project.
"""

from __future__ import annotations

import copy
import logging
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


def validate_cluster_config(path: str | Path) -> dict:
    """Return the prepared config, or raise :class:`ClusterConfigError` listing every problem."""
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
    problems = _project_checks(prepared)
    if problems:
        raise ClusterConfigError(f"{path}: " + "; ".join(problems))
    return prepared
