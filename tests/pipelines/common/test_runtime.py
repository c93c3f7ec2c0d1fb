"""Joining a Ray cluster that is already there: a `ray start` cluster on this machine (found through
Ray's cluster file) or ``RAY_ADDRESS``, token authentication on, with no resources passed; a stale
cluster file or a dead ``RAY_ADDRESS`` answered with a clear message. Each program is a real
subprocess, as a user's command is."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from fixtures.cluster import RayNodes
from fixtures.layouts import write_layout
from fixtures.services import free_port

# prints the CPUs of the cluster it is on: the head's 3 when it joined, the local 4 when it started one
PROBE = "from pipelines.common.runtime import init_ray; init_ray(); import ray; print('cpus', int(ray.cluster_resources()['CPU']))"


def run(command: list[str], env: dict, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def head():
    nodes = RayNodes()
    try:
        nodes.start_head(num_cpus=3)
        yield nodes
    finally:
        nodes.stop()


@pytest.mark.slow
def test_mast_ingest_joins_a_ray_start_cluster_found_through_its_cluster_file(head, tmp_path):
    write_layout("speech_commands", tmp_path / "raw", corrupt=False)
    done = run([sys.executable, "-m", "pipelines", "ingest", "speech_commands", "--root", "raw", "--out", "shards"], head.env, tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    assert re.search(rf"\[ray\] joining the Ray cluster at [0-9.]+:{head.gcs_port} \(started with `ray start`", done.stderr), done.stderr[
        -2000:
    ]
    assert (tmp_path / "shards" / "manifest.json").is_file()


def test_ray_address_joins_without_passing_resources(head, tmp_path):
    env = {**head.env, "RAY_ADDRESS": head.address, "RAY_TMPDIR": "/nonexistent"}  # no cluster file there
    done = run([sys.executable, "-c", PROBE], env, tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "cpus 3" in done.stdout


@pytest.fixture
def short_root():
    """A temp root short enough for the Unix sockets of a Ray started under it."""
    root = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_a_stale_cluster_file_is_reported_and_a_local_ray_starts(short_root, tmp_path):
    (short_root / "ray").mkdir()
    dead = f"127.0.0.1:{free_port()}"
    (short_root / "ray" / "ray_current_cluster").write_text(dead)
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    done = run([sys.executable, "-c", PROBE], {**env, "RAY_TMPDIR": str(short_root)}, tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"names a Ray cluster at {dead} that does not answer" in done.stderr
    assert "cpus 4" in done.stdout  # a local Ray of its own


def test_a_dead_ray_address_stops_the_command_with_one_line(tmp_path):
    write_layout("speech_commands", tmp_path / "raw", corrupt=False)
    dead = f"127.0.0.1:{free_port()}"
    done = run(
        [sys.executable, "-m", "pipelines", "ingest", "speech_commands", "--root", "raw", "--out", "shards"],
        {**os.environ, "RAY_ADDRESS": dead},
        tmp_path,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"mast ingest: RAY_ADDRESS={dead}: no Ray cluster answers there; start it, or unset RAY_ADDRESS to run locally"
    )
    assert not (tmp_path / "shards" / "manifest.json").exists()


def test_a_dashboard_address_in_ray_address_says_to_submit_a_job(tmp_path):
    done = run([sys.executable, "-c", PROBE], {**os.environ, "RAY_ADDRESS": "http://127.0.0.1:8265"}, tmp_path, timeout=60)
    assert done.returncode == 1
    assert (
        "RAY_ADDRESS=http://127.0.0.1:8265 is a dashboard (Jobs API) address: run the command on the cluster with `ray job submit"
        in done.stderr
    )
