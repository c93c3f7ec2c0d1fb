"""Downstream task registry: one YAML file per benchmark under ``configs/tasks/``.

A task names its ingested shards, the layout they must come from, the clip length and how clips
are assigned to train / validation / test: by split (``splits: {train: train, ...}``) or by
cross-validation fold (``folds: N``). With folds, round ``k`` tests on fold ``k``, selects
hyperparameters on fold ``k % N + 1`` and trains on the rest; the task's score is the mean over
the ``N`` rounds. Adding a task is a YAML file plus shards, no code.

A relative ``shards:`` path is taken from the data root: ``--data-root`` of ``mast sweep``, else
``$MAST_DATA_ROOT``, else the working directory. On a cluster, ``MAST_DATA_ROOT=s3://bucket``
makes ``shards: data/sc_v2_12`` read ``s3://bucket/data/sc_v2_12``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipelines.common import storage
from pipelines.common.config import ConfigError, load_config
from pipelines.common.resources import config_dir

TASK_DIR = config_dir("configs", "tasks")
ROLES = ("train", "validation", "test")


@dataclass
class TaskConfig:
    name: str
    dataset: str
    shards: str
    frames_per_clip: int
    description: str = ""
    ingest: str = ""
    metric: str = "accuracy"
    splits: dict[str, str] | None = None
    folds: int | None = None

    def validate(self) -> None:
        if (self.splits is None) == (self.folds is None):
            raise ConfigError(f"task {self.name}: give either splits or folds")
        if self.splits is not None and set(self.splits) != set(ROLES):
            raise ConfigError(f"splits: needs exactly the roles {list(ROLES)}, got {sorted(self.splits)}")
        if self.folds is not None and self.folds < 3:
            raise ConfigError(f"folds: needs at least 3 (train, validation and test folds), got {self.folds}")
        if self.frames_per_clip < 16:
            raise ConfigError(f"frames_per_clip: must be >= 16, got {self.frames_per_clip}")
        if self.metric != "accuracy":
            raise ConfigError(f"metric: only 'accuracy' is implemented, got {self.metric!r}")

    @property
    def rounds(self) -> list[int | None]:
        """Evaluation rounds: one per fold, or a single round (None) for split-based tasks."""
        return list(range(1, self.folds + 1)) if self.folds else [None]

    def selection(self, fold: int | None = None) -> dict[str, dict]:
        """For each role, which rows it takes: ``{"splits": [...]}`` or ``{"folds": [...]}``.

        The test rows of a round never appear in its train or validation rows.
        """
        if self.splits is not None:
            if fold is not None:
                raise ConfigError(f"task {self.name} has fixed splits, not folds")
            return {role: {"splits": [self.splits[role]]} for role in ROLES}
        if fold is None or not 1 <= fold <= self.folds:
            raise ConfigError(f"task {self.name}: fold must be in 1..{self.folds}, got {fold}")
        validation = fold % self.folds + 1
        train = [k for k in range(1, self.folds + 1) if k not in (fold, validation)]
        return {"train": {"folds": train}, "validation": {"folds": [validation]}, "test": {"folds": [fold]}}


def task_names(directory: Path = TASK_DIR) -> list[str]:
    return sorted(path.stem for path in directory.glob("*.yaml"))


def load_task(name_or_path: str | Path, directory: Path = TASK_DIR, data_root: str | None = None) -> TaskConfig:
    """A task by registry name (``sc_v2_12``) or by the path of its YAML file; a relative
    ``shards:`` is joined to ``data_root`` (default ``$MAST_DATA_ROOT``, else the working directory)."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = directory / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ConfigError(f"unknown task {name_or_path!r}; known: {task_names(directory)}")
    task = load_config(TaskConfig, path)
    if task.name != path.stem:
        raise ConfigError(f"{path}: name {task.name!r} differs from the file name {path.stem!r}")
    root = data_root or os.environ.get("MAST_DATA_ROOT")
    if root and not storage.is_uri(task.shards) and not os.path.isabs(task.shards):
        task.shards = storage.join(root, task.shards)
    return task
