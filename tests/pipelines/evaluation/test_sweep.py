"""Linear-evaluation sweeps with real Ray Tune and a real MLflow store, on fixture shards."""

import json
import math
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from mlflow import MlflowClient

from fixtures.damage import damaged_copy, truncate
from fixtures.layouts import write_layout
from fixtures.services import mlflow_store, mlflow_uris_kept
from mast_core.checkpoint import save_encoder
from mast_core.mast import mast_tiny
from mast_core.probe import ProbeSettings, fit_linear_probe
from pipelines.common.config import ConfigError
from pipelines.data.ingest import IngestSettings, ingest
from pipelines.data.stream import DataConfigError
from pipelines.evaluation.embeddings import cache_path, embed_task, load_embeddings, skipped_clips
from pipelines.evaluation.spaces import load_space
from pipelines.evaluation.sweep import role_rows, run_sweep, split_rounds
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

TASK_BODIES = {
    "speech_commands": "splits: {train: train, validation: validation, test: test}\nframes_per_clip: 98\n",
    "us8k": "folds: 10\nframes_per_clip: 200\n",
}


def write_task(folder: Path, dataset: str, shards: Path):
    path = folder / f"fx_{dataset}.yaml"
    path.write_text(f"name: fx_{dataset}\ndataset: {dataset}\nshards: {shards}\n{TASK_BODIES[dataset]}")
    return load_task(path)


@pytest.fixture(scope="module")
def setup(ray_local, tmp_path_factory):
    base = tmp_path_factory.mktemp("sweep")
    tasks = {}
    for dataset in TASK_BODIES:
        write_layout(dataset, base / dataset, corrupt=False)
        ingest(dataset, base / dataset, base / f"{dataset}-shards", settings=IngestSettings(shard_mb=0.05), progress=QUIET)
        tasks[dataset] = write_task(base, dataset, base / f"{dataset}-shards")
    (base / "space.yaml").write_text(SPACE)
    torch.manual_seed(0)
    encoder = save_encoder(mast_tiny(max_frames=200), base / "encoder")
    return base, tasks, load_space("any", base / "space.yaml"), encoder


def children(tracking: str, parent: str) -> list:
    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name("mast-sweeps")
    return client.search_runs([experiment.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")


@pytest.fixture(scope="module")
def swept(setup, tmp_path_factory):
    """One store holding a sweep of each task, as `mast sweep` leaves it for `mast report`: the fold
    task (us8k, 10 rounds), then the split task (speech commands), both labelled "MAST random"."""
    _, tasks, space, encoder = setup
    where = tmp_path_factory.mktemp("swept")
    tracking = mlflow_store(where / "mlflow.db")
    with mlflow_uris_kept():  # set up before the per-test guard: Tune's MLflow callback must not leak the store's URI
        summaries = {
            name: run_sweep(tasks[name], encoder, space, storage=where / "tune", tracking_uri=tracking, label="MAST random", progress=QUIET)
            for name in ("us8k", "speech_commands")
        }
    return {"tracking": tracking, "storage": where / "tune", "summaries": summaries}


def test_split_task_sweep_logs_parent_and_children(setup, swept):
    _, tasks, space, encoder = setup
    tracking, summary = swept["tracking"], swept["summaries"]["speech_commands"]
    assert summary["trials"] == 3 and 0.0 <= summary["test_accuracy"] <= 1.0
    parent = MlflowClient(tracking).get_run(summary["parent_run_id"])
    assert parent.data.tags["task"] == "fx_speech_commands" and parent.data.tags["protocol"] == "linear"
    assert "test_accuracy" in parent.data.metrics and "best.lr" in parent.data.params
    kids = children(tracking, summary["parent_run_id"])
    assert len(kids) == 3 and all("val_accuracy" in kid.data.metrics for kid in kids)

    # resuming the finished sweep runs no trial again
    again = run_sweep(
        tasks["speech_commands"],
        encoder,
        space,
        storage=swept["storage"],
        tracking_uri=tracking,
        resume=True,
        label="MAST random",
        progress=QUIET,
    )
    assert again["trials"] == 3 and again["embeddings_cached"]
    assert len(children(tracking, summary["parent_run_id"])) == 3


def test_clips_that_no_longer_decode_are_skipped_and_counted_and_a_broken_shard_fails_at_start(setup, tmp_path):
    base, tasks, space, encoder = setup
    shards = base / "speech_commands-shards"
    damaged = damaged_copy(shards, tmp_path / "damaged", split=None, per_shard=1, shards_hit=3)
    assert len(damaged) == 3
    task = write_task(tmp_path, "speech_commands", tmp_path / "damaged")
    tracking = mlflow_store(tmp_path / "mlflow.db")
    lines: list[str] = []
    summary = run_sweep(task, encoder, space, storage=tmp_path / "tune", tracking_uri=tracking, progress=lines.append)
    assert summary["trials"] == 3 and summary["skipped_clips"] == 3
    assert MlflowClient(tracking).get_run(summary["parent_run_id"]).data.metrics["skipped_clips"] == 3
    cache = cache_path(task.shards, encoder, task.frames_per_clip)
    assert sorted(item["id"] for item in skipped_clips(cache)) == sorted(damaged)
    kept = load_embeddings(cache)["id"]
    total = sum(shard["rows"] for shard in json.loads((shards / "manifest.json").read_text())["shards"])
    assert len(kept) == total - 3 and not set(damaged) & set(kept)  # the rest embedded, the damaged left out
    assert any("skipped clip" in line and damaged[0] in line for line in lines)

    # a shard cut short or gone fails the sweep before any Ray or MLflow work, naming the file
    listed = [shard["file"] for shard in json.loads((shards / "manifest.json").read_text())["shards"] if shard["rows"]]
    for name, damage in (("truncated", truncate), ("missing", Path.unlink)):
        copy = tmp_path / f"{name}-shards"
        shutil.copytree(shards, copy, ignore=shutil.ignore_patterns("embeddings"))
        damage(copy / listed[1])
        broken = write_task(copy, "speech_commands", copy)
        store = tmp_path / f"{name}.db"
        with pytest.raises(ConfigError, match=f"task fx_speech_commands: {re.escape(str(copy / listed[1]))}: .*(truncated|missing)"):
            run_sweep(broken, encoder, space, storage=tmp_path / f"tune-{name}", tracking_uri=f"sqlite:///{store}", progress=QUIET)
        assert not store.exists() and not (tmp_path / f"tune-{name}").exists()


def test_a_shard_lost_during_the_embedding_pass_stops_it_naming_the_file(setup, tmp_path):
    """The shard goes after the start check (as the pass begins): the pass stops with one error
    naming it and caches nothing; restored, the same call embeds every clip."""
    base, tasks, space, encoder = setup
    copy = tmp_path / "shards"
    shutil.copytree(base / "speech_commands-shards", copy, ignore=shutil.ignore_patterns("embeddings"))
    listed = [shard["file"] for shard in json.loads((copy / "manifest.json").read_text())["shards"] if shard["rows"]]
    victim, kept = copy / listed[2], tmp_path / "kept.parquet"

    def lose_it_as_the_pass_begins(line: str) -> None:
        if line.startswith("[embed] embedding"):  # printed once the footers were checked
            shutil.move(victim, kept)

    with pytest.raises(
        DataConfigError, match=rf"{re.escape(str(victim))}: shard listed in its manifest.json but missing.*nothing was cached"
    ):
        embed_task(copy, encoder, 98, progress=lose_it_as_the_pass_begins)
    assert not (copy / "embeddings").exists() or not list((copy / "embeddings").glob("*.parquet"))
    shutil.move(kept, victim)
    cache, cached = embed_task(copy, encoder, 98, progress=QUIET)
    assert not cached and len(load_embeddings(cache)["id"]) == sum(
        shard["rows"] for shard in json.loads((copy / "manifest.json").read_text())["shards"]
    )


def history(tracking: str, run_id: str, key: str) -> list[float]:
    return [m.value for m in sorted(MlflowClient(tracking).get_metric_history(run_id, key), key=lambda m: m.step)]


def probe_of(params: dict) -> ProbeSettings:
    """The probe settings of a trial, from the params MLflow logged for it."""
    return ProbeSettings(
        lr=float(params["lr"]), batch_size=int(params["batch_size"]), max_epochs=int(params["max_epochs"]), patience=int(params["patience"])
    )


def test_fold_task_scores_the_mean_over_folds(setup, swept):
    _, tasks, _, encoder = setup
    task = tasks["us8k"]
    tracking, summary = swept["tracking"], swept["summaries"]["us8k"]
    assert len(summary["test_scores"]) == 10

    # The rounds' test sets partition the rows: each clip is tested exactly once, in its own fold's
    # round, and never trained or selected on in that round.
    data = load_embeddings(cache_path(task.shards, encoder, task.frames_per_clip))
    folds = data["fold"]
    assert set(folds.tolist()) == set(range(1, 11))
    selection, tests = split_rounds(task, data)
    tested = torch.zeros(len(folds), dtype=torch.long)
    roles_of = []
    for fold, (test_x, _) in zip(task.rounds, tests):
        roles = {role: role_rows(data, chosen) for role, chosen in task.selection(fold).items()}
        assert torch.equal(roles["test"], (folds == fold).nonzero().squeeze(1))
        assert torch.equal(test_x, data["embedding"][roles["test"]])
        in_round = torch.cat(list(roles.values()))
        assert len(in_round) == len(folds) and len(set(in_round.tolist())) == len(folds)  # disjoint roles, every row
        tested[roles["test"]] += 1
        roles_of.append(roles)
    assert tested.tolist() == [1] * len(folds)

    # The mean over folds, recomputed here: the best config refitted on each round, scored on its
    # fold, against the parent run's logged score; each trial's logged running mean of validation
    # accuracy against probes fitted here with the params MLflow logged for it.
    client = MlflowClient(tracking)
    parent = client.get_run(summary["parent_run_id"])
    best = probe_of({key.removeprefix("best."): value for key, value in parent.data.params.items() if key.startswith("best.")})
    x, y = data["embedding"], data["label"]
    num_classes = len(json.loads((Path(task.shards) / "manifest.json").read_text())["vocabulary"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the trials, so the refits are bitwise the same
    try:
        scores = []
        for roles in roles_of:
            probe = fit_linear_probe(
                x[roles["train"]], y[roles["train"]], x[roles["validation"]], y[roles["validation"]], best, num_classes=num_classes
            )
            scores.append(probe.accuracy(x[roles["test"]], y[roles["test"]]))
        assert summary["test_scores"] == pytest.approx(scores, abs=1e-9)
        assert parent.data.metrics["test_accuracy"] == pytest.approx(sum(scores) / 10, abs=1e-9)
        kids = children(tracking, summary["parent_run_id"])
        assert len(kids) == 3
        for kid in kids:
            logged = history(tracking, kid.info.run_id, "val_accuracy")
            assert 1 <= len(logged) <= 10  # ASHA may stop a trial after any round
            settings = probe_of(kid.data.params)
            per_round = [
                fit_linear_probe(
                    x[r["train"]], y[r["train"]], x[r["validation"]], y[r["validation"]], settings, num_classes=num_classes
                ).val_accuracy
                for r in roles_of[: len(logged)]
            ]
            running = [sum(per_round[: k + 1]) / (k + 1) for k in range(len(per_round))]
            assert logged == pytest.approx(running, abs=1e-9), kid.data.params
            # one step per report, numbered as Tune counts them (the x axis of the curve in MLflow)
            steps = sorted(m.step for m in MlflowClient(tracking).get_metric_history(kid.info.run_id, "val_accuracy"))
            assert steps == list(range(1, len(logged) + 1))
            assert history(tracking, kid.info.run_id, "train_clips") == [len(r["train"]) for r in roles_of[: len(logged)]]
            assert history(tracking, kid.info.run_id, "val_clips") == [len(r["validation"]) for r in roles_of[: len(logged)]]
    finally:
        torch.set_num_threads(threads)


def test_the_test_split_never_reaches_selection(setup, tmp_path):
    """Poison the test rows' embeddings with NaN, in a copy of the shards with a cache of its own:
    every trial trains and selects on exactly the train and validation clips, and nothing it
    computes is NaN (accuracy is an argmax, so the clip counts and the loss are what show a leak)."""
    base, _, space, encoder = setup
    shards = tmp_path / "shards"
    shutil.copytree(base / "speech_commands-shards", shards, ignore=shutil.ignore_patterns("embeddings"))
    task = write_task(tmp_path, "speech_commands", shards)
    manifest = json.loads((shards / "manifest.json").read_text())
    cache, cached = embed_task(shards, encoder, task.frames_per_clip, progress=QUIET)
    assert not cached and Path(cache).parent == shards / "embeddings"
    table = pq.read_table(cache)
    is_test = [split == "test" for split in table.column("split").to_pylist()]
    assert sum(is_test) == manifest["splits"]["test"] > 0
    poisoned = [([float("nan")] * len(row)) if test else row for row, test in zip(table.column("embedding").to_pylist(), is_test)]
    pq.write_table(
        table.set_column(table.schema.get_field_index("embedding"), "embedding", pa.array(poisoned, pa.list_(pa.float32()))), cache
    )
    selection, tests = split_rounds(task, load_embeddings(cache))
    assert all(torch.isfinite(part[0]).all() for part in selection[0].values())
    assert torch.isnan(tests[0][0]).all()
    tracking = mlflow_store(tmp_path / "mlflow.db")
    summary = run_sweep(task, encoder, space, storage=tmp_path / "tune", tracking_uri=tracking, progress=QUIET)
    assert summary["embeddings_cached"]  # the sweep read the poisoned cache
    kids = children(tracking, summary["parent_run_id"])
    assert len(kids) == 3
    for kid in kids:
        run = kid.info.run_id
        losses = history(tracking, run, "train_loss")
        assert losses and all(math.isfinite(loss) for loss in losses), losses  # a NaN row trained on makes the loss NaN
        assert set(history(tracking, run, "train_clips")) == {manifest["splits"]["train"]}
        assert set(history(tracking, run, "val_clips")) == {manifest["splits"]["validation"]}
        assert all(0.0 <= value <= 1.0 for value in history(tracking, run, "val_accuracy"))


def test_report_renders_the_table_from_mlflow(swept, tmp_path, capsys):
    from pipelines.cli import main
    from pipelines.evaluation.report import collect

    tracking = swept["tracking"]
    sampled = [
        sorted((kid.data.params["lr"], kid.data.params["batch_size"]) for kid in children(tracking, summary["parent_run_id"]))
        for summary in swept["summaries"].values()
    ]
    # one seeded space samples the same configs whatever the task (and on every rerun)
    assert sampled[0] == sampled[1] and len(set(sampled[0])) == 3, sampled
    table = collect(tracking, "mast-sweeps")
    assert list(table) == ["MAST random"] and set(table["MAST random"]) == {"fx_us8k", "fx_speech_commands"}
    main(["report", "--tracking-uri", tracking, "--out", str(tmp_path / "report")])
    printed = capsys.readouterr().out
    assert "| model | fx_speech_commands | fx_us8k |" in printed
    row = next(line for line in printed.splitlines() if line.startswith("| MAST random"))
    assert "±" in row.split("|")[3] and "±" not in row.split("|")[2]  # only the fold task has a std
    for cell in row.split("|")[2:4]:  # each cell: accuracy [95 % interval over the test clips]
        accuracy, interval = cell.split("[")[0], cell.split("[")[1].split("]")[0]
        low, high = (float(x) for x in interval.split(","))
        assert low <= float(accuracy) <= high
        # the bootstrap has spread unless every test clip was right or every one wrong
        assert (high - low > 0) == (0 < float(accuracy) < 100), cell
    chance = next(line for line in printed.splitlines() if line.startswith("| chance"))
    assert all(0 < float(value) < 100 for value in chance.strip("| ").split(" | ")[1:])
    with open(tmp_path / "report" / "results.csv") as handle:
        header = handle.readline().strip().split(",")
    assert {"fx_us8k_ci_low", "fx_us8k_ci_high", "fx_us8k_chance"} <= set(header)
    assert {p.name for p in (tmp_path / "report").iterdir()} == {"results.md", "results.csv", "results.png"}


SLOW_TRIALS = 8


def finished_trials(tune_dir) -> dict[str, int]:
    """Trial folder -> result lines, for the trials whose last result says done."""
    results = {path.parent.name: path.read_text() for path in tune_dir.glob("*/*/result.json")}
    return {name: len(text.splitlines()) for name, text in results.items() if '"done": true' in text}


SLOW_SPACE = (
    f"num_samples: {SLOW_TRIALS}\n"
    + """scheduler: {type: fifo}
resources: {cpu: 4}          # one trial at a time, so the sweep is interrupted between trials
space:
  lr: {loguniform: [1.0e-3, 1.0e-1]}
  batch_size: 4
  max_epochs: 120            # about 2 s a trial: Tune copies the results to the storage folder
  patience: 120              # a few seconds late, and the sweep must still be midway by then
"""
)


@pytest.mark.slow
def test_an_interrupted_sweep_resumes_without_rerunning_finished_trials(setup, tmp_path, ray_address):
    """Kill `mast sweep` (SIGKILL, like a lost driver) as it reports its second finished trial, then `--resume`."""
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time

    base, tasks, _, encoder = setup
    task = tasks["speech_commands"]
    (tmp_path / "space.yaml").write_text(SLOW_SPACE)
    tracking = mlflow_store(tmp_path / "mlflow.db")
    command = [
        sys.executable,
        "-m",
        "pipelines",
        "sweep",
        str(base / "fx_speech_commands.yaml"),
        "--checkpoint",
        str(encoder),
        "--space",
        str(tmp_path / "space.yaml"),
        "--storage",
        str(tmp_path / "tune"),
        "--tracking-uri",
        tracking,
    ]
    # the sweep joins the session's Ray; its progress lines, unbuffered, say when a trial has finished
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
        env={**os.environ, "RAY_ADDRESS": ray_address, "PYTHONUNBUFFERED": "1"},
    )
    lines = []
    watchdog = threading.Timer(240, os.killpg, (process.pid, signal.SIGKILL))  # a hung sweep ends the read below
    watchdog.start()
    try:
        for line in process.stdout:  # blocks until the sweep prints; ends when it exits
            lines.append(line)
            if line.startswith(f"[sweep] trial 2/{SLOW_TRIALS} done"):
                break
        # The storage folder gets the trials' results when Tune next saves the experiment, up to a
        # few seconds after the callbacks hear of them: trials that finish in between (2 s each,
        # one at a time) are more finished trials, and with 8 some are still left for the resume
        while process.poll() is None and len(finished_trials(tmp_path / "tune")) < 2:
            time.sleep(0.02)
    finally:
        watchdog.cancel()
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finished = finished_trials(tmp_path / "tune")
    print(f"\n[figure] {len(finished)} of {SLOW_TRIALS} trials had finished at the kill")
    assert 2 <= len(finished) < SLOW_TRIALS, f"the sweep was not caught midway: {len(finished)} trials had finished\n" + "".join(lines)

    summary = run_sweep(
        task,
        encoder,
        load_space("any", tmp_path / "space.yaml"),
        storage=tmp_path / "tune",
        tracking_uri=tracking,
        resume=True,
        progress=QUIET,
    )
    assert summary["trials"] == SLOW_TRIALS
    results = {path.parent.name: len(path.read_text().splitlines()) for path in (tmp_path / "tune").glob("*/*/result.json")}
    assert len(results) == SLOW_TRIALS
    for name, lines in finished.items():  # a finished trial was not run again: no new results
        assert results[name] == lines, name
