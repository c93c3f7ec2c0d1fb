"""Stop a `mast pretrain` job (Ctrl-C) and run the same command again: it continues."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from fixtures import REPO_ROOT

ROOT = REPO_ROOT


def make_shards(base: Path) -> Path:
    code = (
        "import sys; from pathlib import Path\n"
        "from fixtures.layouts import write_layout\n"
        "from pipelines.data.ingest import ingest, IngestSettings\n"
        "from pipelines.common.runtime import init_ray\n"
        "base = Path(sys.argv[1]); write_layout('speech_commands', base / 'sc', corrupt=False); init_ray(4)\n"
        "ingest('speech_commands', base / 'sc', base / 'shards', settings=IngestSettings(shard_mb=0.05), progress=lambda l: None)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(base)], cwd=ROOT, check=True, capture_output=True, timeout=300)
    return base / "shards"


@pytest.mark.slow
def test_stopped_job_continues_from_its_checkpoint_when_rerun(tmp_path):
    shards = make_shards(tmp_path)
    command = [
        sys.executable, "-m", "pipelines", "pretrain", "--config", str(ROOT / "configs/pretrain/tiny_cpu.yaml"),
        "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--set", "run.name=resume", "--set", f"run.storage={tmp_path / 'runs'}", "--set", "run.checkpoint_every=2",
        "--set", "run.log_every=1", "--set", "optim.total_steps=40", "--set", "optim.batch_size=4",
        "--set", "data.frames_per_clip=98", "--set", "objective.queue_size=64",
        "--set", f"data.sources=[{{path: '{shards}', weight: 4, splits: [train]}}]",
    ]
    first = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    checkpoints = tmp_path / "runs" / "resume"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(checkpoints.glob("checkpoint_*"))) < 3:
        time.sleep(0.5)
    time.sleep(3)  # let Train register the newest checkpoint (it polls every 2 s)
    first.send_signal(signal.SIGINT)  # what Ctrl-C does
    output, _ = first.communicate(timeout=120)
    assert "finished at step" not in output, "the first run was meant to be interrupted"

    second = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    log = second.stdout + second.stderr
    assert "(resumed)" in log  # the same MLflow run
    resumed_from = int(log.split("resumed from step ")[1].split()[0])
    # a checkpoint step, not a fresh start; which one depends on how far Train had
    # registered the newest checkpoint when the signal arrived (slower on a loaded machine)
    assert resumed_from >= 2 and resumed_from % 2 == 0
    assert "finished at step 40" in log
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("mast-pretrain").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    steps = sorted(m.step for m in client.get_metric_history(runs[0].info.run_id, "loss"))
    assert steps == list(range(1, 41))
