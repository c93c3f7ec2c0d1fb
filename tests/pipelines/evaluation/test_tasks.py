import pytest

from pipelines.common.config import ConfigError
from pipelines.data.layouts import DATASETS
from pipelines.evaluation.tasks import load_task, task_names

PAPER_TASKS = ["iemocap", "nsynth", "sc_v1", "sc_v2_12", "sc_v2_35", "us8k", "voxceleb1", "voxforge"]


def test_registry_ships_the_eight_benchmarks():
    assert task_names() == PAPER_TASKS
    for name in PAPER_TASKS:
        task = load_task(name)
        assert task.dataset in DATASETS
        assert task.ingest.startswith(f"mast ingest {task.dataset} ")
        assert f"--out {task.shards}" in task.ingest


@pytest.mark.parametrize("name, folds", [("us8k", 10), ("iemocap", 5)])
def test_fold_rounds_keep_test_apart(name, folds):
    task = load_task(name)
    assert task.rounds == list(range(1, folds + 1))
    tested = []
    for fold in task.rounds:
        roles = task.selection(fold)
        train, validation, test = (set(roles[r]["folds"]) for r in ("train", "validation", "test"))
        assert test == {fold} and len(validation) == 1
        assert not (test & train) and not (test & validation) and not (train & validation)
        assert train | validation | test == set(range(1, folds + 1))
        tested += list(test)
    assert sorted(tested) == list(range(1, folds + 1))  # every fold is a test fold once


def test_split_tasks():
    task = load_task("sc_v2_12")
    assert task.rounds == [None]
    assert task.selection() == {"train": {"splits": ["train"]}, "validation": {"splits": ["validation"]}, "test": {"splits": ["test"]}}
    with pytest.raises(ConfigError, match="fixed splits"):
        task.selection(1)


def test_bad_task_files(tmp_path):
    with pytest.raises(ConfigError, match="unknown task 'sc_v3'"):
        load_task("sc_v3")
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\ndataset: folder\nshards: data/mine\nframes_per_clip: 100\n")
    with pytest.raises(ConfigError, match="either splits or folds"):
        load_task(path)
    path.write_text("name: mine\ndataset: folder\nshards: d\nframes_per_clip: 100\nfolds: 2\n")
    with pytest.raises(ConfigError, match="at least 3"):
        load_task(path)
    path.write_text("name: other\ndataset: folder\nshards: d\nframes_per_clip: 100\nfolds: 4\n")
    with pytest.raises(ConfigError, match="differs from the file name"):
        load_task(path)
    path.write_text("name: mine\ndataset: folder\nshards: d\nframes_per_clip: 100\nfolds: 4\nclasses: 3\n")
    with pytest.raises(ConfigError, match="unknown key classes"):
        load_task(path)
