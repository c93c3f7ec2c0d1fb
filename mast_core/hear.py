"""HEAR 2021 API (Holistic Evaluation of Audio Representations) for exported MAST / AST encoders.

The three functions the HEAR harness (``hear-eval-kit``) calls, over :class:`mast_core.embed.Embedder`:

Example::

    from mast_core import hear

    model = hear.load_model("exports/mast-s")          # or "runs:/<run id>/encoder"
    audio = torch.rand(8, 4 * model.sample_rate) * 2 - 1   # (n_sounds, n_samples), mono, [-1, 1]
    scene = hear.get_scene_embeddings(audio, model)                  # (8, model.scene_embedding_size)
    frames, ms = hear.get_timestamp_embeddings(audio, model)         # (8, 5, D), (8, 5) milliseconds

Conventions (HEAR's, and where this module is stricter):

- ``audio`` is float ``(n_sounds, n_samples)`` in [-1, 1] at ``model.sample_rate`` (16 kHz),
  any length (very short sounds are zero-padded to one 0.175 s patch, long ones are embedded in
  windows, see :mod:`mast_core.embed`), batched internally (``batch_size`` windows per call).
- HEAR audio is mono: a ``(n_sounds, channels, n_samples)`` tensor is refused with an error
  (downmix first). HEAR passes no sample rate, so none can be checked unless the caller says it:
  ``sample_rate=`` (an extension) refuses any rate other than ``model.sample_rate`` rather than
  resampling silently.
- Timestamps are the centres of the output tokens in **milliseconds**: one every 800 ms for MAST
  (its last stage pools time 8x), 100 ms for AST. That is coarser than the 50 ms hop HEAR suggests
  for event detection: it is the encoder's own resolution, not interpolated.
- Results are returned on the device of ``audio``; computation happens on the model's device.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from .checkpoint import load_encoder
from .embed import Embedder

__all__ = ["HearModel", "get_scene_embeddings", "get_timestamp_embeddings", "load_model"]


class HearModel(nn.Module):
    """An encoder wrapped for HEAR: has ``sample_rate``, ``scene_embedding_size``, ``timestamp_embedding_size``.

    Example::

        model = HearModel(Embedder(*load_encoder("exports/mast-s")))
        model.scene_embedding_size      # 768 for MAST-S
    """

    def __init__(self, embedder: Embedder) -> None:
        super().__init__()
        self.embedder = embedder
        self.encoder = embedder.model  # registered, so .to(device) and .parameters() work
        self.sample_rate = embedder.sample_rate
        self.scene_embedding_size = embedder.embedding_size
        self.timestamp_embedding_size = embedder.embedding_size

    def to(self, *args, **kwargs) -> HearModel:
        super().to(*args, **kwargs)
        self.embedder.device = next(self.encoder.parameters()).device
        return self

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Scene embeddings; the same as :func:`get_scene_embeddings`."""
        return get_scene_embeddings(audio, self)


def load_model(
    model_file_path: str | Path = "",
    *,
    device: str | torch.device | None = None,
    batch_size: int = 16,
    tracking_uri: str | None = None,
) -> HearModel:
    """Load an exported encoder folder or an MLflow URI (``runs:/<id>/encoder``) as a HEAR model.

    ``device`` defaults to CUDA when available. There is no built-in default checkpoint.

    Example::

        model = load_model("exports/mast-s", device="cpu")
    """
    if not str(model_file_path):
        raise ValueError("mast_core.hear.load_model needs model_file_path: an exported encoder folder or an MLflow URI")
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    model, features = load_encoder(model_file_path, map_location=device, tracking_uri=tracking_uri)
    return HearModel(Embedder(model, features, batch_size=batch_size, device=device))


def _check_audio(audio: torch.Tensor | np.ndarray, model: HearModel, sample_rate: int | None) -> torch.Tensor:
    if not isinstance(model, HearModel):
        raise TypeError(f"model must come from mast_core.hear.load_model, got {type(model).__name__}")
    if sample_rate is not None and int(sample_rate) != model.sample_rate:
        raise ValueError(
            f"audio at {sample_rate} Hz: this model takes {model.sample_rate} Hz. HEAR audio is not resampled "
            f"here; use torchaudio.functional.resample(audio, {sample_rate}, {model.sample_rate}) first"
        )
    audio = torch.as_tensor(audio)
    if audio.dim() == 3:
        raise ValueError(
            f"audio of shape {tuple(audio.shape)} has a channel axis; HEAR audio is mono (n_sounds, n_samples): "
            "downmix first, e.g. audio.mean(1)"
        )
    if audio.dim() != 2:
        raise ValueError(
            f"audio must be (n_sounds, n_samples), got shape {tuple(audio.shape)}"
            + ("; for one sound use audio[None]" if audio.dim() == 1 else "")
        )
    if not audio.is_floating_point():
        raise TypeError(f"audio must be float in [-1, 1], got {audio.dtype}")
    if audio.shape[0] and audio.shape[1] == 0:
        raise ValueError("audio has 0 samples per sound")
    return audio


def get_scene_embeddings(audio: torch.Tensor, model: HearModel, *, sample_rate: int | None = None) -> torch.Tensor:
    """``(n_sounds, model.scene_embedding_size)`` float32: one embedding per sound.

    Example::

        scene = get_scene_embeddings(torch.zeros(2, 16_000), model)     # (2, D)
    """
    audio = _check_audio(audio, model, sample_rate)
    clip = model.embedder.embed(list(audio)).clip
    return clip.to(audio.device)


def get_timestamp_embeddings(audio: torch.Tensor, model: HearModel, *, sample_rate: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(embeddings (n_sounds, n_timestamps, D), timestamps (n_sounds, n_timestamps))``, float32.

    Timestamps are the centres of each embedding's time span, in milliseconds.

    Example::

        frames, ms = get_timestamp_embeddings(torch.zeros(2, 32_000), model)
        ms[0]            # MAST: tensor([  87.5,  887.5, 1687.5])
    """
    audio = _check_audio(audio, model, sample_rate)
    frames, seconds = model.embedder.embed(list(audio), frames=True).stacked_frames()
    return frames.to(audio.device), (seconds * 1000.0).to(audio.device)
