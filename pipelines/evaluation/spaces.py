"""Ray Tune search spaces from ``tune_spaces/<task>.yaml`` (linear protocol) and
``tune_spaces/finetune/<task>.yaml`` (fine-tune protocol), validated before a sweep starts.

    protocol: linear              # or finetune; must match `mast sweep --protocol`
    num_samples: 8
    seed: 0                       # the random search's seed: the same file samples the same configs
    metric: val_accuracy          # always maximised; selection never sees the test split
    scheduler: {type: asha, grace_period: 5, reduction_factor: 2}
    resources: {cpu: 1}
    space:
      lr: {loguniform: [1.0e-4, 1.0e-1]}
      weight_decay: {loguniform: [1.0e-6, 1.0e-2]}
      batch_size: {choice: [64, 128, 256]}
      dropout: {uniform: [0.0, 0.5]}
      max_epochs: 50              # a plain value is fixed for every trial

Only the hyperparameters the protocol knows may appear (``PROBE_KEYS`` for ``linear``,
``FINETUNE_KEYS`` for ``finetune``), so a typo fails at load time instead of being ignored by
every trial. For ``finetune``, ``resources`` are per Train worker and ``workers`` sets how many
workers each trial's ``TorchTrainer`` runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

from mast_core.finetune import FinetuneSettings
from pipelines.common.config import ConfigError, load_config
from pipelines.common.resources import config_dir

SPACE_DIR = config_dir("tune_spaces")
PROBE_KEYS = ("lr", "weight_decay", "batch_size", "max_epochs", "patience", "dropout")
FINETUNE_KEYS = tuple(f.name for f in fields(FinetuneSettings) if f.name != "seed")
PROTOCOL_KEYS = {"linear": PROBE_KEYS, "finetune": FINETUNE_KEYS}
SAMPLERS = ("loguniform", "uniform", "choice", "randint")


@dataclass
class SchedulerSpec:
    type: str = "asha"
    grace_period: int = 5
    reduction_factor: int = 2

    def validate(self) -> None:
        if self.type not in ("asha", "fifo"):
            raise ConfigError(f"type: 'asha' or 'fifo', got {self.type!r}")
        if self.grace_period < 1 or self.reduction_factor < 2:
            raise ConfigError("grace_period >= 1 and reduction_factor >= 2")


@dataclass
class TuneSpace:
    space: dict
    protocol: Literal["linear", "finetune"] = "linear"
    num_samples: int = 8
    seed: int = 0
    metric: str = "val_accuracy"
    scheduler: SchedulerSpec = field(default_factory=SchedulerSpec)
    resources: dict[str, float] = field(default_factory=lambda: {"cpu": 1.0})
    workers: int = 1

    def validate(self) -> None:
        if self.num_samples < 1:
            raise ConfigError(f"num_samples: must be >= 1, got {self.num_samples}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed: an integer >= 0, got {self.seed!r}")
        if self.metric != "val_accuracy":
            raise ConfigError(f"metric: selection uses 'val_accuracy' (validation split only), got {self.metric!r}")
        allowed = PROTOCOL_KEYS[self.protocol]
        unknown = sorted(set(self.space) - set(allowed))
        if unknown:
            raise ConfigError(f"space.{unknown[0]}: not a hyperparameter of the {self.protocol} protocol; allowed: {list(allowed)}")
        for key, spec in self.space.items():
            _check_sampler(f"space.{key}", spec)
        unknown = sorted(set(self.resources) - {"cpu", "gpu"})
        if unknown:
            raise ConfigError(f"resources.{unknown[0]}: only cpu and gpu")
        if self.workers < 1 or (self.workers > 1 and self.protocol == "linear"):
            raise ConfigError(f"workers: >= 1, and only the finetune protocol runs several, got {self.workers}")

    def tune_space(self) -> dict:
        """The space as Ray Tune sampling objects (fixed values stay plain)."""
        from ray import tune

        samplers = {"loguniform": tune.loguniform, "uniform": tune.uniform, "randint": tune.randint}
        out = {}
        for key, spec in self.space.items():
            if isinstance(spec, dict):
                ((kind, values),) = spec.items()
                out[key] = tune.choice(values) if kind == "choice" else samplers[kind](*values)
            else:
                out[key] = spec
        return out


def _check_sampler(key: str, spec) -> None:
    if not isinstance(spec, dict):
        if not isinstance(spec, (int, float)) or isinstance(spec, bool):
            raise ConfigError(f"{key}: a number or one of {{{', '.join(SAMPLERS)}: ...}}, got {spec!r}")
        return
    if len(spec) != 1 or next(iter(spec)) not in SAMPLERS:
        raise ConfigError(f"{key}: exactly one of {list(SAMPLERS)}, got {spec!r}")
    ((kind, values),) = spec.items()
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{key}.{kind}: expected a non-empty list, got {values!r}")
    if kind == "choice":
        return
    if len(values) != 2 or not all(isinstance(v, (int, float)) for v in values) or not values[0] < values[1]:
        raise ConfigError(f"{key}.{kind}: expected [low, high] with low < high, got {values!r}")
    if kind == "loguniform" and values[0] <= 0:
        raise ConfigError(f"{key}.loguniform: bounds must be positive, got {values!r}")


def default_space_path(task: str, protocol: str = "linear") -> Path:
    return SPACE_DIR / f"{task}.yaml" if protocol == "linear" else SPACE_DIR / protocol / f"{task}.yaml"


def load_space(task: str, path: str | Path | None = None, protocol: str = "linear") -> TuneSpace:
    """The protocol's default space of ``task``, or the file given with ``--space``; the file's
    ``protocol`` must be the one asked for."""
    path = Path(path) if path is not None else default_space_path(task, protocol)
    if not path.is_file():
        expected = default_space_path(task, protocol)
        raise ConfigError(f"{path}: search space not found (expected {expected} or --space FILE)")
    try:
        space = load_config(TuneSpace, path)
    except ConfigError as error:
        message = str(error)
        raise ConfigError(message if message.startswith(str(path)) else f"{path}: {message}") from None
    if space.protocol != protocol:
        raise ConfigError(
            f"{path}: protocol is {space.protocol!r} but the sweep asks for {protocol!r} "
            f"(set `protocol: {protocol}` in the file or pass --protocol {space.protocol})"
        )
    return space
