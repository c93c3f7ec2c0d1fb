import copy
import re
from pathlib import Path

import pytest
import yaml

from fixtures import REPO_ROOT
from pipelines.cli import main
from pipelines.cluster import ClusterConfigError, validate_cluster_config

ROOT = REPO_ROOT


@pytest.fixture(scope="module")
def shipped() -> dict:
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def write(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_shipped_cluster_yaml_passes_rays_checks():
    prepared = validate_cluster_config(ROOT / "cluster.yaml")
    assert prepared["head_node_type"] == "head"
    assert set(prepared["available_node_types"]) == {"head", "gpu_worker", "cpu_worker"}
    assert prepared["docker"]["image"].startswith("rayproject/ray:2.60.0-py311")


def mutate_head_type(c):
    c["head_node_type"] = "missing"


def mutate_unknown_key(c):
    c["colour"] = "blue"


def mutate_bad_type(c):
    c["max_workers"] = "many"


def mutate_negative_workers(c):
    c["available_node_types"]["gpu_worker"]["max_workers"] = -1


def mutate_min_above_max(c):
    c["available_node_types"]["cpu_worker"].update(min_workers=3, max_workers=2)


def mutate_ray_ml_image(c):
    c["docker"]["image"] = "rayproject/ray-ml:2.49.0-py311-gpu"


def mutate_no_shm(c):
    c["docker"].pop("head_run_options")


@pytest.mark.parametrize(
    "mutate, message",
    [
        (mutate_head_type, "head_node_type"),
        (mutate_unknown_key, "colour"),
        (mutate_bad_type, "many"),
        (mutate_negative_workers, "gpu_worker: min_workers/max_workers must be >= 0"),
        (mutate_min_above_max, "cpu_worker: min_workers (3) exceeds max_workers (2)"),
        (mutate_ray_ml_image, "no longer published"),
        (mutate_no_shm, "--shm-size"),
    ],
)
def test_bad_configs_are_rejected_with_the_key(tmp_path, shipped, mutate, message):
    config = copy.deepcopy(shipped)
    mutate(config)
    with pytest.raises(ClusterConfigError, match=re.escape(message)):
        validate_cluster_config(write(tmp_path, config))


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ClusterConfigError, match="not found"):
        validate_cluster_config(tmp_path / "nope.yaml")
    path = tmp_path / "broken.yaml"
    path.write_text("provider: [unclosed")
    with pytest.raises(ClusterConfigError, match="not valid YAML"):
        validate_cluster_config(path)


def test_check_cluster_command(capsys, tmp_path, shipped):
    main(["check-cluster", str(ROOT / "cluster.yaml")])
    assert "valid. node types: head (m6i.4xlarge" in capsys.readouterr().out
    config = copy.deepcopy(shipped)
    mutate_head_type(config)
    with pytest.raises(SystemExit, match="mast check-cluster: .*head_node_type"):
        main(["check-cluster", str(write(tmp_path, config))])
