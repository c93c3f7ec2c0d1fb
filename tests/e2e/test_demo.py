"""`mast demo`: the whole pipeline offline (synthesise, ingest, pretrain, sweep, report), shrunk."""

import csv
import json
import os
import subprocess
import sys

import pytest
from mlflow import MlflowClient

from fixtures import REPO_ROOT
from mast_core.checkpoint import load_encoder

ROOT = REPO_ROOT
ROWS = ["MAST-tiny SS-MAST", "MAST-tiny random init"]
TASKS = ["synth_keywords", "synth_languages"]


@pytest.mark.slow
def test_demo_runs_every_step_and_a_rerun_reuses_finished_work(tmp_path, ray_address):
    workdir = tmp_path / "demo"
    # both runs join the session's Ray, as `mast demo` joins a cluster named by RAY_ADDRESS
    env = {**os.environ, "RAY_ADDRESS": ray_address}
    command = [
        sys.executable,
        "-m",
        "pipelines",
        "demo",
        "--workdir",
        str(workdir),
        "--keyword-speakers",
        "4",
        "--clips-per-word",
        "4",
        "--language-speakers",
        "3",
        "--clips-per-speaker",
        "2",
        "--steps",
        "6",
        "--batch-size",  # 6 steps in one epoch of the synthetic clips: no stream restart
        "8",
        "--trials",
        "2",
    ]
    first = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    for number in range(1, 7):
        assert f"[demo {number}/6]" in first.stdout
    assert "mlflow ui --backend-store-uri sqlite:///" in first.stdout

    with open(workdir / "report" / "results.csv") as handle:
        rows = {row["model"]: row for row in csv.DictReader(handle)}
    assert sorted(rows) == sorted(ROWS)
    for row in rows.values():
        for task in TASKS:
            assert 0.0 <= float(row[task]) <= 100.0
    for row in ROWS:
        assert f"| {row} |" in first.stdout

    result = json.loads((workdir / "demo_result.json").read_text())
    assert set(result["timings"]) == {"synthesis", "ingest", "pretraining", "sweeps"}
    assert len(result["summaries"]) == 4
    _, features = load_encoder(result["encoders"]["mast_tiny"])
    _, random_features = load_encoder(result["encoders"]["mast_tiny-random"])
    assert features == random_features and features.mean != 0.0  # the baseline uses the pretrained stats

    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    pretrain_runs = client.search_runs([client.get_experiment_by_name("mast-demo-pretrain").experiment_id])
    assert [run.info.status for run in pretrain_runs] == ["FINISHED"]
    sweep_runs = client.search_runs([client.get_experiment_by_name("mast-demo").experiment_id])
    parents = [run for run in sweep_runs if "mlflow.parentRunId" not in run.data.tags]
    assert len(parents) == 4 and len(sweep_runs) == 4 + 4 * 2  # four sweeps of two trials each

    second = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "reusing the pretrained mast_tiny" in second.stdout
    assert "[pretrain] step" not in second.stdout + second.stderr
    assert len(client.search_runs([client.get_experiment_by_name("mast-demo-pretrain").experiment_id])) == 1
    assert len(client.search_runs([client.get_experiment_by_name("mast-demo").experiment_id])) == len(sweep_runs)
    for row in ROWS:
        assert f"| {row} |" in second.stdout
