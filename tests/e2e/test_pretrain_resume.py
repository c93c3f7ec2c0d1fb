"""Stop a `mast pretrain` job (Ctrl-C) and run the same command again: it continues, data included."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from mlflow import MlflowClient

from fixtures import REPO_ROOT
from fixtures.pretrain import RESUME_STEPS, resume_settings, tiny_settings
from mast_core.checkpoint import load_encoder
from pipelines.pretrain.state import read_trace

ROOT = REPO_ROOT
# Interrupt once Train has registered the step-4 checkpoint. The workers cannot be far ahead then: a
# worker's second unconsumed report blocks it, and Train takes one report per poll (every 2 s), so
# they are at step 8 at most, and the reports of steps 6, 8 and 10 each wait for a later poll.
TOTAL, EVERY, STOP_AFTER = RESUME_STEPS, 2, 4


@pytest.mark.slow
def test_stopped_job_continues_from_its_checkpoint_when_rerun(ray_address, train_registry, resume_reference, tmp_path):
    """The rerun restores the newest registered checkpoint, weights, optimiser, scheduler and key
    queue included: the state hash the loop computes after loading equals the one it saved; and it
    continues the data where it stopped: every step trains the clips (and views) an uninterrupted
    run of the same settings trains (``resume_reference``), so the final weights are the same bit for bit."""
    damaged = resume_reference["damaged"]
    settings = tiny_settings(
        damaged, tmp_path, "resume", **resume_settings(damaged), **{"run.data_trace": tmp_path / "trace-resume", "run.log_every": 1}
    )
    command = [sys.executable, "-m", "pipelines", "pretrain", "--config", str(ROOT / "configs/pretrain/tiny_cpu.yaml")]
    command += ["--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    for setting in settings:
        command += ["--set", setting]
    # the jobs join the session's Ray (a `ray job submit` user's setup) instead of starting one each;
    # the interrupted one polls at Train's own interval (the suite shortens it), which keeps the
    # margin described above; the runs that are not interrupted need no margin
    env = {**os.environ, "RAY_ADDRESS": ray_address}
    run_dir = tmp_path / "runs" / "resume"
    first = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**env, "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "2"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 300
    # Ctrl-C once Train has registered the step-4 checkpoint (its own record, not a folder on disk)
    while first.poll() is None and (train_registry(run_dir).get("latest") or {}).get("step", 0) < STOP_AFTER:
        assert time.monotonic() < deadline, "no checkpoint registered within 300 s"
        time.sleep(0.1)
    first.send_signal(signal.SIGINT)  # what Ctrl-C does
    output, _ = first.communicate(timeout=120)
    assert "finished at step" not in output, "the first run was meant to be interrupted:\n" + output[-3000:]
    newest = train_registry(run_dir)["latest"]  # what a rerun must start from
    assert newest["step"] >= STOP_AFTER and newest["step"] % EVERY == 0
    saved = json.loads((newest["folder"] / "progress.json").read_text())
    assert saved["step"] == newest["step"] and saved["state_hash"] == newest["state_hash"]
    # the optimiser decays the weight matrices only (mast_core.optim): norms, biases, position tables at 0
    groups = torch.load(newest["folder"] / "training_state.pt", weights_only=True)["optimizer"]["param_groups"]
    assert [group["weight_decay"] for group in groups] == [0.05, 0.0]
    assert groups[1]["names"] and all(
        name.endswith(("bias", "norm.weight")) or ".rel_pos_" in name or "norm" in name for name in groups[1]["names"]
    )
    assert any(".rel_pos_time" in name for name in groups[1]["names"]) and not any(name.endswith("bias") for name in groups[0]["names"])

    second = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    log = second.stdout + second.stderr
    assert "(resumed)" in log  # the same MLflow run
    assert f"resumed from step {newest['step']} " in log  # the newest checkpoint, not an older one
    assert f"finished at step {TOTAL}" in log
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("mast-pretrain").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    tags = runs[0].data.tags
    assert tags["mast.resumed_from_step"] == str(newest["step"])
    # weights, optimiser moments, scheduler, key queue, RNG and data position as they were saved
    assert tags["mast.resumed_state_hash"] == newest["state_hash"]
    steps = sorted(m.step for m in client.get_metric_history(runs[0].info.run_id, "loss"))
    assert steps == list(range(1, TOTAL + 1))

    # the uninterrupted run of the same settings: the same clips in every step, the same weights bit for bit
    expected, got = read_trace(resume_reference["trace"]), read_trace(tmp_path / "trace-resume")
    assert sorted(expected) == [0, 1] and sorted(expected[0]) == list(range(1, TOTAL + 1)) and got == expected
    weights = [load_encoder(export)[0].state_dict() for export in (tmp_path / "runs" / "resume" / "encoder", resume_reference["export"])]
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[1])
