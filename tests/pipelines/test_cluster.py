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


def mutate_no_auth(c):
    c["docker"]["run_options"] = [o for o in c["docker"]["run_options"] if "RAY_AUTH_MODE" not in o]


def mutate_public_dashboard(c):
    c["head_start_ray_commands"] = [
        command.replace("--dashboard-host=127.0.0.1", "--dashboard-host=0.0.0.0") for command in c["head_start_ray_commands"]
    ]


def set_storage(c, value):
    c["docker"]["run_options"] = [o for o in c["docker"]["run_options"] if "MAST_STORAGE" not in o] + [f"--env MAST_STORAGE={value}"]


def mutate_local_storage(c):
    set_storage(c, "/home/ray/runs")


def mutate_no_storage(c):
    c["docker"]["run_options"] = [o for o in c["docker"]["run_options"] if "MAST_STORAGE" not in o]


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
        (mutate_no_auth, "docker.run_options: set --env RAY_AUTH_MODE=token"),
        (mutate_public_dashboard, "head_start_ray_commands: give `ray start --head` --dashboard-host=127.0.0.1"),
        (
            mutate_local_storage,
            "docker.run_options: MAST_STORAGE=/home/ray/runs is a folder on each node's own disk, and this cluster has up to 9 nodes",
        ),
        (mutate_local_storage, "run.storage = /home/ray/runs is a folder on each node's own disk"),  # paper.yaml, as the nodes read it
        (mutate_no_storage, "docker.run_options: set --env MAST_STORAGE=s3://BUCKET/runs (this cluster has up to 9 nodes)"),
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


def test_one_node_may_keep_runs_on_its_disk_and_a_declared_shared_mount_passes(tmp_path, shipped):
    single = copy.deepcopy(shipped)
    mutate_local_storage(single)
    single["max_workers"] = 0
    for node in single["available_node_types"].values():
        node.update(min_workers=0, max_workers=0)
    validate_cluster_config(write(tmp_path, single))  # one machine: its own disk is the shared storage
    efs = copy.deepcopy(shipped)
    set_storage(efs, "/mnt/efs/runs")
    efs["docker"]["run_options"].append("--env MAST_STORAGE_SHARED=1")
    validate_cluster_config(write(tmp_path, efs))


def test_job_configs_are_checked_with_the_clusters_environment(tmp_path, shipped):
    job = tmp_path / "job.yaml"
    job.write_text("run: {storage: /home/ray/runs}\ndata:\n  sources: [{path: s3://b/data/x}]\n")
    with pytest.raises(
        ClusterConfigError, match=re.escape(f"job config {job}: run.storage = /home/ray/runs is a folder on each node's own disk")
    ):
        validate_cluster_config(ROOT / "cluster.yaml", jobs=[job])
    job.write_text("run: {storage: '${MAST_STORAGE}'}\ndata:\n  sources: [{path: data/x}]\n")
    with pytest.raises(ClusterConfigError, match=re.escape(f"job config {job}: data.sources[0].path = data/x is not on shared storage")):
        validate_cluster_config(ROOT / "cluster.yaml", jobs=[job])


def test_check_cluster_command(capsys, tmp_path, shipped):
    main(["check-cluster", str(ROOT / "cluster.yaml")])
    out = capsys.readouterr().out
    assert "valid. node types: head (m6i.4xlarge" in out and "token authentication on; runs in s3://mast-runs/runs" in out
    config = copy.deepcopy(shipped)
    mutate_head_type(config)
    with pytest.raises(SystemExit, match="mast check-cluster: .*head_node_type"):
        main(["check-cluster", str(write(tmp_path, config))])
    config = copy.deepcopy(shipped)
    mutate_local_storage(config)
    with pytest.raises(SystemExit, match="mast check-cluster: .*docker.run_options: MAST_STORAGE=/home/ray/runs is a folder"):
        main(["check-cluster", str(write(tmp_path, config))])
