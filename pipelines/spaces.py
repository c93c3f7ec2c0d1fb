"""Ray Tune search spaces from ``tune_spaces/<task>.yaml``, validated before a sweep starts.

    num_samples: 8
    metric: val_accuracy          # always maximised; selection never sees the test split
    scheduler: {type: asha, grace_period: 5, reduction_factor: 2}
    resources: {cpu: 1}
    space:
      lr: {loguniform: [1.0e-4, 1.0e-1]}
      weight_decay: {loguniform: [1.0e-6, 1.0e-2]}
      batch_size: {choice: [64, 128, 256]}
      dropout: {uniform: [0.0, 0.5]}
      max_epochs: 50              # a plain value is fixed for every trial

Only the hyperparameters the protocol knows may appear (``PROBE_KEYS`` for ``linear``), so a
typo fails at load time instead of being ignored by every trial.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .config import ConfigError, load_config

SPACE_DIR = Path(__file__).resolve().parents[1] / "tune_spaces"
PROBE_KEYS = ("lr", "weight_decay", "batch_size", "max_epochs", "patience", "dropout")
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
    num_samples: int = 8
    metric: str = "val_accuracy"
    scheduler: SchedulerSpec = field(default_factory=SchedulerSpec)
    resources: dict[str, float] = field(default_factory=lambda: {"cpu": 1.0})

    def validate(self) -> None:
        if self.num_samples < 1:
            raise ConfigError(f"num_samples: must be >= 1, got {self.num_samples}")
        if self.metric != "val_accuracy":
            raise ConfigError(f"metric: selection uses 'val_accuracy' (validation split only), got {self.metric!r}")
        unknown = sorted(set(self.space) - set(PROBE_KEYS))
        if unknown:
            raise ConfigError(f"space.{unknown[0]}: not a hyperparameter of the linear protocol; allowed: {list(PROBE_KEYS)}")
        for key, spec in self.space.items():
            _check_sampler(f"space.{key}", spec)
        unknown = sorted(set(self.resources) - {"cpu", "gpu"})
        if unknown:
            raise ConfigError(f"resources.{unknown[0]}: only cpu and gpu")

    def tune_space(self) -> dict:
        """The space as Ray Tune sampling objects (fixed values stay plain)."""
        from ray import tune

        samplers = {"loguniform": tune.loguniform, "uniform": tune.uniform, "randint": tune.randint}
        out = {}
        for key, spec in self.space.items():
            if isinstance(spec, dict):
                (kind, values), = spec.items()
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
    (kind, values), = spec.items()
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{key}.{kind}: expected a non-empty list, got {values!r}")
    if kind == "choice":
        return
    if len(values) != 2 or not all(isinstance(v, (int, float)) for v in values) or not values[0] < values[1]:
        raise ConfigError(f"{key}.{kind}: expected [low, high] with low < high, got {values!r}")
    if kind == "loguniform" and values[0] <= 0:
        raise ConfigError(f"{key}.loguniform: bounds must be positive, got {values!r}")


def load_space(task: str, path: str | Path | None = None) -> TuneSpace:
    """``tune_spaces/<task>.yaml``, or the file given with ``--space``."""
    path = Path(path) if path is not None else SPACE_DIR / f"{task}.yaml"
    if not path.is_file():
        raise ConfigError(f"{path}: search space not found (expected tune_spaces/{task}.yaml or --space FILE)")
    return load_config(TuneSpace, path)
