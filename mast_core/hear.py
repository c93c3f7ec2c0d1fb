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
- Timestamps are in **milliseconds**, every ``hop_ms`` (default 50, the hop HEAR asks for event
  detection and transcription) from 0 to the sound's end. The encoder's own tokens are coarser
  (one every 800 ms for MAST, whose last stage pools time 8x; 100 ms for AST): each timestamp's
  embedding is the linear interpolation between the two tokens whose centres surround it (the
  first / last token before the first / after the last centre). ``hop_ms=None`` returns the
  tokens themselves at their centres.
- Sounds longer than 4 encoder windows are embedded window by window
  (:meth:`mast_core.embed.Embedder.embed_long`): memory beyond the input does not grow with length.
- Results are returned on the device of ``audio``; computation happens on the model's device.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from .checkpoint import load_encoder
from .embed import Embedder, Embeddings

__all__ = ["HearModel", "get_scene_embeddings", "get_timestamp_embeddings", "load_model"]


class HearModel(nn.Module):
    """An encoder wrapped for HEAR: has ``sample_rate``, ``scene_embedding_size``, ``timestamp_embedding_size``.

    Example::

        model = HearModel(Embedder(*load_encoder("exports/mast-s")))
        model.scene_embedding_size      # 768 for MAST-S
    """

    def __init__(self, embedder: Embedder, hop_ms: float | None = 50.0) -> None:
        super().__init__()
        if hop_ms is not None and not hop_ms > 0:
            raise ValueError(f"hop_ms must be positive (or None for the encoder's own tokens), got {hop_ms}")
        self.embedder = embedder
        self.hop_ms = hop_ms
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
    hop_ms: float | None = 50.0,
) -> HearModel:
    """Load an exported encoder folder or an MLflow URI (``runs:/<id>/encoder``) as a HEAR model.

    ``device`` defaults to CUDA when available. There is no built-in default checkpoint.
    ``hop_ms``: the spacing of timestamp embeddings (None: the encoder's own tokens).

    Example::

        model = load_model("exports/mast-s", device="cpu")
    """
    if not str(model_file_path):
        raise ValueError("mast_core.hear.load_model needs model_file_path: an exported encoder folder or an MLflow URI")
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    model, features = load_encoder(model_file_path, map_location=device, tracking_uri=tracking_uri)
    return HearModel(Embedder(model, features, batch_size=batch_size, device=device), hop_ms=hop_ms)


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
    return _embed(audio, model, frames=False).clip.to(audio.device)


def get_timestamp_embeddings(audio: torch.Tensor, model: HearModel, *, sample_rate: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(embeddings (n_sounds, n_timestamps, D), timestamps (n_sounds, n_timestamps))``, float32.

    Timestamps are the centres of each embedding's time span, in milliseconds.

    Example::

        frames, ms = get_timestamp_embeddings(torch.zeros(2, 32_000), model)
        ms[0]            # MAST: tensor([  87.5,  887.5, 1687.5])
    """
    audio = _check_audio(audio, model, sample_rate)
    frames, seconds = _embed(audio, model, frames=True).stacked_frames()
    if model.hop_ms is not None and len(audio):
        grid = torch.arange(0.0, audio.shape[1] / model.sample_rate * 1000.0, model.hop_ms, dtype=torch.float64)
        grid_frames = frames.new_empty(len(audio), len(grid), frames.shape[2])
        for row, (tokens, centres) in enumerate(zip(frames, seconds)):
            for start in range(0, len(grid), 4096):  # a slice at a time: no full-size temporaries
                grid_frames[row, start : start + 4096] = interpolate(tokens, centres * 1000.0, grid[start : start + 4096])
        frames = grid_frames
        seconds = grid.float().expand(len(audio), -1) / 1000.0
    return frames.to(audio.device), (seconds * 1000.0).to(audio.device)


def _embed(audio: torch.Tensor, model: HearModel, frames: bool):
    """Short sounds batched together; long ones (more than 4 windows) window by window, one at a time."""
    embedder = model.embedder
    if audio.shape[1] <= 4 * embedder.window_frames * embedder.frame_hop or not len(audio):
        return embedder.embed(list(audio), frames=frames)
    parts = [
        embedder.embed_long(lambda start, count, sound=sound: sound[start : start + count], sound.numel(), frames=frames) for sound in audio
    ]
    return Embeddings(
        torch.cat([part.clip for part in parts]),
        [part.frames[0] for part in parts] if frames else None,
        [part.timestamps[0] for part in parts] if frames else None,
    )


def interpolate(tokens: torch.Tensor, centres_ms: torch.Tensor, grid_ms: torch.Tensor) -> torch.Tensor:
    """Token embeddings ``(T, D)`` at their centres, linearly interpolated onto ``grid_ms``
    ``(G,)``: ``(G, D)``. Before the first centre and after the last, the end tokens."""
    centres = centres_ms.to(torch.float64)
    upper = (
        torch.searchsorted(centres, grid_ms).clamp(1, len(centres) - 1) if len(centres) > 1 else torch.zeros_like(grid_ms, dtype=torch.long)
    )
    lower = (upper - 1).clamp(min=0)
    span = (centres[upper] - centres[lower]).clamp(min=1e-9)
    weight = ((grid_ms - centres[lower]) / span).clamp(0.0, 1.0)[:, None].to(tokens.dtype)
    if len(centres) == 1:
        weight = torch.zeros_like(weight)
    return tokens[lower] * (1 - weight) + tokens[upper] * weight
