"""Linear-evaluation sweeps with real Ray Tune and a real MLflow store, on fixture shards."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from mlflow import MlflowClient

from fixtures.layouts import write_layout
from mast_core.checkpoint import save_encoder
from mast_core.mast import mast_tiny
from pipelines.data.ingest import IngestSettings, ingest
from pipelines.evaluation.embeddings import load_embeddings
from pipelines.evaluation.spaces import load_space
from pipelines.evaluation.sweep import run_sweep, split_rounds
from pipelines.evaluation.tasks import load_task

QUIET = lambda line: None  # noqa: E731
SPACE = """num_samples: 3
scheduler: {type: asha, grace_period: 1, reduction_factor: 2}
space:
  lr: {loguniform: [1.0e-3, 1.0e-1]}
  batch_size: {choice: [8, 16]}
  max_epochs: 4
  patience: 2
"""


@pytest.fixture(scope="module")
def setup(ray_local, tmp_path_factory):
    base = tmp_path_factory.mktemp("sweep")
    tasks = {}
    for dataset, body in (
        ("speech_commands", "splits: {train: train, validation: validation, test: test}\nframes_per_clip: 98\n"),
        ("us8k", "folds: 10\nframes_per_clip: 200\n"),
    ):
        write_layout(dataset, base / dataset, corrupt=False)
        ingest(dataset, base / dataset, base / f"{dataset}-shards", settings=IngestSettings(shard_mb=0.05), progress=QUIET)
        path = base / f"fx_{dataset}.yaml"
        path.write_text(f"name: fx_{dataset}\ndataset: {dataset}\nshards: {base / f'{dataset}-shards'}\n{body}")
        tasks[dataset] = load_task(path)
    (base / "space.yaml").write_text(SPACE)
    torch.manual_seed(0)
    encoder = save_encoder(mast_tiny(max_frames=200), base / "encoder")
    return base, tasks, load_space("any", base / "space.yaml"), encoder


def children(tracking: str, parent: str) -> list:
    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name("mast-sweeps")
    return client.search_runs([experiment.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")


def test_split_task_sweep_logs_parent_and_children(setup, tmp_path):
    base, tasks, space, encoder = setup
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    summary = run_sweep(tasks["speech_commands"], encoder, space, storage=tmp_path / "tune", tracking_uri=tracking, progress=QUIET)
    assert summary["trials"] == 3 and 0.0 <= summary["test_accuracy"] <= 1.0
    parent = MlflowClient(tracking).get_run(summary["parent_run_id"])
    assert parent.data.tags["task"] == "fx_speech_commands" and parent.data.tags["protocol"] == "linear"
    assert "test_accuracy" in parent.data.metrics and "best.lr" in parent.data.params
    kids = children(tracking, summary["parent_run_id"])
    assert len(kids) == 3 and all("val_accuracy" in kid.data.metrics for kid in kids)

    # resuming the finished sweep runs no trial again
    again = run_sweep(tasks["speech_commands"], encoder, space, storage=tmp_path / "tune", tracking_uri=tracking,
                      resume=True, progress=QUIET)
    assert again["trials"] == 3 and again["embeddings_cached"]
    assert len(children(tracking, summary["parent_run_id"])) == 3


def test_fold_task_scores_the_mean_over_folds(setup, tmp_path):
    base, tasks, space, encoder = setup
    summary = run_sweep(tasks["us8k"], encoder, space, storage=tmp_path / "tune", tracking_uri=f"sqlite:///{tmp_path / 'm.db'}",
                        progress=QUIET)
    assert len(summary["test_scores"]) == 10
    assert summary["test_accuracy"] == pytest.approx(sum(summary["test_scores"]) / 10)


def test_the_test_split_never_reaches_selection(setup, tmp_path):
    """Poison the cached test embeddings with NaN: every trial still reports a finite accuracy."""
    base, tasks, space, encoder = setup
    task = tasks["speech_commands"]
    cache = next((base / "speech_commands-shards" / "embeddings").glob("*.parquet"))
    table = pq.read_table(cache)
    is_test = [split == "test" for split in table.column("split").to_pylist()]
    poisoned = [([float("nan")] * len(row)) if test else row for row, test in zip(table.column("embedding").to_pylist(), is_test)]
    pq.write_table(table.set_column(table.schema.get_field_index("embedding"), "embedding",
                                    pa.array(poisoned, pa.list_(pa.float32()))), cache)
    selection, tests = split_rounds(task, load_embeddings(cache))
    assert all(torch.isfinite(part[0]).all() for part in selection[0].values())
    assert torch.isnan(tests[0][0]).all()
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    summary = run_sweep(task, encoder, space, storage=tmp_path / "tune", tracking_uri=tracking, progress=QUIET)
    for kid in children(tracking, summary["parent_run_id"]):
        value = kid.data.metrics["val_accuracy"]
        assert value == value and 0.0 <= value <= 1.0  # finite: no NaN test row was trained or scored on


def test_report_renders_the_table_from_mlflow(setup, tmp_path, capsys):
    from pipelines.cli import main
    from pipelines.evaluation.report import collect

    base, tasks, space, encoder = setup
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for task in (tasks["us8k"], tasks["speech_commands"]):
        run_sweep(task, encoder, space, storage=tmp_path / "tune", tracking_uri=tracking, label="MAST random", progress=QUIET)
    table = collect(tracking, "mast-sweeps")
    assert list(table) == ["MAST random"] and set(table["MAST random"]) == {"fx_us8k", "fx_speech_commands"}
    main(["report", "--tracking-uri", tracking, "--out", str(tmp_path / "report")])
    printed = capsys.readouterr().out
    assert "| model | fx_speech_commands | fx_us8k |" in printed
    row = next(line for line in printed.splitlines() if line.startswith("| MAST random"))
    assert "±" in row.split("|")[3] and "±" not in row.split("|")[2]  # only the fold task has a std
    assert {p.name for p in (tmp_path / "report").iterdir()} == {"results.md", "results.csv", "results.png"}


SLOW_TRIALS = 6  # room for a slow poller: the kill must land after two trials and before the last
SLOW_SPACE = f"num_samples: {SLOW_TRIALS}\n" + """scheduler: {type: fifo}
resources: {cpu: 4}          # one trial at a time, so the sweep is interrupted between trials
space:
  lr: {loguniform: [1.0e-3, 1.0e-1]}
  batch_size: 4
  max_epochs: 25
  patience: 25
"""


@pytest.mark.slow
def test_an_interrupted_sweep_resumes_without_rerunning_finished_trials(setup, tmp_path):
    """Kill `mast sweep` (SIGKILL, like a lost driver) after two trials, then `--resume`."""
    import os
    import signal
    import subprocess
    import sys
    import time

    base, tasks, _, encoder = setup
    task = tasks["speech_commands"]
    (tmp_path / "space.yaml").write_text(SLOW_SPACE)
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = [sys.executable, "-m", "pipelines", "sweep", str(base / "fx_speech_commands.yaml"), "--checkpoint", str(encoder),
               "--space", str(tmp_path / "space.yaml"), "--storage", str(tmp_path / "tune"), "--tracking-uri", tracking]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                               env={**os.environ, "RAY_ADDRESS": ""})
    finished: dict[str, int] = {}
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.5)
            finished = {path.parent.name: len(path.read_text().splitlines())
                        for path in (tmp_path / "tune").glob("*/*/result.json")
                        if '"done": true' in path.read_text()}
            if len(finished) >= 2:
                break
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    assert 2 <= len(finished) < SLOW_TRIALS, f"the sweep was not caught midway: {len(finished)} trials had finished"

    summary = run_sweep(task, encoder, load_space("any", tmp_path / "space.yaml"), storage=tmp_path / "tune",
                        tracking_uri=tracking, resume=True, progress=QUIET)
    assert summary["trials"] == SLOW_TRIALS
    results = {path.parent.name: len(path.read_text().splitlines()) for path in (tmp_path / "tune").glob("*/*/result.json")}
    assert len(results) == SLOW_TRIALS
    for name, lines in finished.items():  # a finished trial was not run again: no new results
        assert results[name] == lines, name
