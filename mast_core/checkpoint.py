"""Encoder checkpoints: safetensors weights plus a JSON config. Nothing is ever unpickled.

An exported encoder is a folder::

    encoder.safetensors   # the encoder's state_dict
    config.json           # {"format_version", "arch", "model": {...}, "features": {...}}

Example::

    save_encoder(model, "exports/mast-s", features=FeatureSettings(mean=-4.27, std=4.57))
    model, features = load_encoder("exports/mast-s")
    model, features = load_encoder("runs:/0a1b.../encoder")     # an MLflow run's logged encoder

Sources: :func:`load_encoder` takes an exported folder (or a file inside one) or a URI that a
registered resolver fetches (:func:`register_uri_resolver`). This library knows no remote store:
``import pipelines`` registers MLflow's URIs (``runs:/<run id>/encoder``,
``models:/<name>/<version>``, ``mlflow-artifacts:/...``) and exported folders in object stores
(``s3://bucket/runs/NAME/encoder``, ``gs://``, ..., fetched once into a local cache).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .features import AUDIOSET_MEAN, AUDIOSET_STD, NUM_MEL_BINS, SAMPLE_RATE
from .registry import UnknownArchitecture, encoder_class

FORMAT_VERSION = 1
WEIGHTS_FILE = "encoder.safetensors"
CONFIG_FILE = "config.json"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file and the offending keys."""


@dataclass(frozen=True)
class FeatureSettings:
    """How to turn audio into the encoder's input: log-mel settings and normalisation stats."""

    sample_rate: int = SAMPLE_RATE
    num_mel_bins: int = NUM_MEL_BINS
    mean: float = AUDIOSET_MEAN
    std: float = AUDIOSET_STD

    @classmethod
    def from_dict(cls, data: dict, source: str = "features") -> FeatureSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CheckpointError(f"{source}: unknown feature settings {unknown}; expected a subset of {sorted(known)}")
        return cls(**data)


def build_encoder(arch: str, config: dict) -> nn.Module:
    """Instantiate an encoder from its architecture name and constructor arguments."""
    try:
        cls = encoder_class(arch)
    except UnknownArchitecture as error:
        raise CheckpointError(str(error)) from None
    try:
        return cls(**config)
    except TypeError as error:
        raise CheckpointError(f"bad {arch} config {config}: {error}") from error


def save_encoder(encoder: nn.Module, directory: str | Path, features: FeatureSettings | None = None) -> Path:
    """Write ``encoder.safetensors`` and ``config.json`` into ``directory``; returns the folder."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().contiguous().cpu() for name, tensor in encoder.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE))
    config = {
        "format_version": FORMAT_VERSION,
        "arch": encoder.arch,
        "model": encoder.config(),
        "features": asdict(features or FeatureSettings()),
    }
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return directory


def read_config(directory: str | Path) -> dict:
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: not found; an exported encoder folder holds {WEIGHTS_FILE} and {CONFIG_FILE}")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path}: not valid JSON ({error})") from error
    for key in ("format_version", "arch", "model"):
        if key not in config:
            raise CheckpointError(f"{path}: missing key {key!r}")
    if config["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format_version {config['format_version']} is not supported (expected {FORMAT_VERSION})")
    return config


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise :class:`CheckpointError` naming every missing, unexpected or mis-shaped key."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [
        f"{name}: checkpoint {tuple(state[name].shape)} vs model {tuple(expected[name].shape)}"
        for name in sorted(set(expected) & set(state))
        if state[name].shape != expected[name].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    if mismatched:
        problems.append("shape mismatches: " + "; ".join(mismatched))
    if problems:
        raise CheckpointError(f"{source}: " + " | ".join(problems))


# Remote checkpoints are fetched by resolvers that an application registers per URI prefix:
# ``pipelines`` registers MLflow's (``runs:/``, ``models:/``, ``mlflow-artifacts:/``), so this
# library never imports MLflow. A resolver returns a local folder at or above the export.
UriResolver = Callable[[str, "str | None"], Path]
_RESOLVERS: dict[str, UriResolver] = {}


def register_uri_resolver(prefixes: tuple[str, ...], resolver: UriResolver) -> None:
    """Route sources starting with any of ``prefixes`` to ``resolver(source, tracking_uri)``.

    Example::

        register_uri_resolver(("runs:/", "models:/"), download_from_mlflow)
    """
    for prefix in prefixes:
        _RESOLVERS[prefix] = resolver


def uri_resolver(source: object) -> UriResolver | None:
    """The registered resolver for ``source``, or None for a local path."""
    if not isinstance(source, str):
        return None
    return next((fn for prefix, fn in _RESOLVERS.items() if source.startswith(prefix)), None)


def find_encoder_folder(root: str | Path, max_depth: int = 3) -> Path:
    """``root`` if it holds ``config.json`` + ``encoder.safetensors``, else the one folder below it that does.

    MLflow models logged by ``mast export --mlflow`` keep the encoder under ``artifacts/encoder``;
    this finds it, so ``models:/<name>/<version>`` works like ``runs:/<id>/encoder``.
    """
    root = Path(root)

    def is_export(folder: Path) -> bool:
        return (folder / CONFIG_FILE).is_file() and (folder / WEIGHTS_FILE).is_file()

    if is_export(root):
        return root
    found = []
    for depth in range(1, max_depth + 1):
        found = sorted(folder for folder in root.glob("/".join("*" * depth)) if folder.is_dir() and is_export(folder))
        if found:
            break
    if len(found) == 1:
        return found[0]
    if found:
        raise CheckpointError(f"{root}: holds several exported encoders ({', '.join(str(f) for f in found)}); name one")
    raise CheckpointError(f"{root}: not an exported encoder folder (no {CONFIG_FILE} + {WEIGHTS_FILE} in it or below it)")


def resolve_checkpoint(source: str | Path, tracking_uri: str | None = None) -> Path:
    """Local folder of an exported encoder given a folder, a file in it, or an MLflow URI.

    A URI with a registered resolver (:func:`register_uri_resolver`; ``import pipelines`` adds
    MLflow's ``runs:/``, ``models:/`` and ``mlflow-artifacts:/``) is fetched by it, with
    ``tracking_uri`` passed on. A bare run id is not guessed here (``mast embed`` and
    ``mast export`` accept one).

    Example::

        folder = resolve_checkpoint("runs:/0a1b2c.../encoder", tracking_uri="sqlite:///mlflow.db")
        folder = resolve_checkpoint("exports/mast-s/encoder.safetensors")   # -> exports/mast-s
    """
    resolver = uri_resolver(source)
    if resolver is not None:
        return find_encoder_folder(resolver(str(source), tracking_uri))
    if isinstance(source, str) and ":/" in source and not Path(source).exists():
        known = ", ".join(prefix + "..." for prefix in _RESOLVERS) or "none registered"
        raise CheckpointError(
            f"{source}: not a local folder, and no resolver handles this URI (known: {known}; "
            "`import pipelines` registers MLflow's runs:/, models:/ and mlflow-artifacts:/, and s3://, gs://, ...)"
        )
    path = Path(source)
    if path.is_file():
        if path.name not in (WEIGHTS_FILE, CONFIG_FILE):
            raise CheckpointError(f"{path}: is a file; expected an exported encoder folder ({WEIGHTS_FILE} + {CONFIG_FILE})")
        path = path.parent
    if not path.is_dir():
        raise CheckpointError(
            f"{path}: checkpoint folder not found (expected a folder with {WEIGHTS_FILE} + {CONFIG_FILE}, or an MLflow URI)"
        )
    return path


def load_encoder(
    source: str | Path, map_location: str | torch.device = "cpu", *, tracking_uri: str | None = None
) -> tuple[nn.Module, FeatureSettings]:
    """Rebuild an exported encoder and its feature settings; the model is returned in eval mode.

    ``source`` is an exported folder, a file in one, or an MLflow URI (see
    :func:`resolve_checkpoint`). Only safetensors and JSON are read: nothing is unpickled.

    Example::

        model, features = load_encoder("exports/mast-s")
        model, features = load_encoder("runs:/0a1b2c.../encoder", tracking_uri="http://mlflow:5000")
        features.sample_rate, features.mean, features.std     # 16000, the encoder's stats
    """
    directory = resolve_checkpoint(source, tracking_uri)
    config = read_config(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{weights}: not found")
    model = build_encoder(config["arch"], config["model"])
    state = load_file(str(weights), device=str(map_location))
    check_state_dict(model, state, str(weights))
    model.load_state_dict(state)
    features = FeatureSettings.from_dict(config.get("features", {}), source=str(directory / CONFIG_FILE))
    return model.to(map_location).eval(), features


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a foreign state dict (``.safetensors``, or a ``.pth``/``.pt``/``.bin`` file) safely.

    Pickle files are opened with ``weights_only=True``; a ``{"model": ...}`` or
    ``{"state_dict": ...}`` wrapper (as training scripts write) is unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: not found")
    if path.suffix == ".safetensors":
        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or unsafe files
        raise CheckpointError(f"{path}: cannot be read as a weights-only checkpoint ({error})") from error
    for wrapper in ("model", "state_dict", "model_state"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: does not hold a flat state dict of tensors")
    return state
