"""Encoder checkpoints: safetensors weights plus a JSON config. Nothing is ever unpickled.

An exported encoder is a folder::

    encoder.safetensors   # the encoder's state_dict
    config.json           # {"format_version", "arch", "model": {...}, "features": {...}}

Example::

    save_encoder(model, "exports/mast-s", features=FeatureSettings(mean=-4.27, std=4.57))
    model, features = load_encoder("exports/mast-s")
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .ast import AST
from .features import AUDIOSET_MEAN, AUDIOSET_STD, NUM_MEL_BINS, SAMPLE_RATE
from .mast import MAST

FORMAT_VERSION = 1
WEIGHTS_FILE = "encoder.safetensors"
CONFIG_FILE = "config.json"
ENCODERS: dict[str, type[nn.Module]] = {MAST.arch: MAST, AST.arch: AST}


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
    def from_dict(cls, data: dict, source: str = "features") -> "FeatureSettings":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CheckpointError(f"{source}: unknown feature settings {unknown}; expected a subset of {sorted(known)}")
        return cls(**data)


def build_encoder(arch: str, config: dict) -> nn.Module:
    """Instantiate an encoder from its architecture name and constructor arguments."""
    if arch not in ENCODERS:
        raise CheckpointError(f"unknown encoder architecture {arch!r}; known: {sorted(ENCODERS)}")
    try:
        return ENCODERS[arch](**config)
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


def load_encoder(directory: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, FeatureSettings]:
    """Rebuild an exported encoder and its feature settings; the model is returned in eval mode."""
    directory = Path(directory)
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
