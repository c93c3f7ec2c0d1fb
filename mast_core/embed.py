"""Embed audio with a trained encoder: one vector per clip, and time-stamped vectors per clip.

:class:`Embedder` turns mono waveforms (float in [-1, 1] at the encoder's sample rate, any
length) into embeddings the way the encoder was trained: Kaldi log-mel
(:func:`mast_core.features.log_mel`), normalised with the encoder's own statistics
(:class:`~mast_core.checkpoint.FeatureSettings`), right-padded batches with ``lengths``.

Example::

    from mast_core import Embedder, load_encoder

    embedder = Embedder(*load_encoder("exports/mast-s"))          # or Embedder.from_checkpoint(...)
    out = embedder.embed([wave_10s, wave_1s], frames=True)       # 1-D float tensors or arrays, 16 kHz
    out.clip                    # (2, 768) clip embeddings
    out.frames[0].shape         # (13, 768): last-stage tokens averaged over frequency
    out.timestamps[0]           # (13,) seconds: 0.0875, 0.8875, 1.6875, ... (MAST: one every 0.8 s)

    wave = read_clip("song.mp3", embedder.sample_rate)           # decoded, downmixed, resampled

What goes in:

- **Short clips.** A clip shorter than one patch (``patch_size`` = 16 frames, 0.175 s) is
  right-padded with zeros to 16 frames, as the downstream pipeline does; 0.1 s works.
- **Long clips.** A clip is cut into windows of ``window_frames`` log-mel frames (default: the
  encoder's ``max_frames``, the length it was built for, rounded down to a whole number of
  output tokens: 960 frames = 9.6 s for MAST, 1020 for AST). A remainder shorter than half a
  window joins the last window, so windows hold 0.5 to 1.5 ``window_frames`` and a clip of up
  to 1.5 windows (14.4 s for MAST) is embedded whole. The clip embedding is the mean of the
  window embeddings weighted by their frames (for MAST, whose embedding is a token mean, this
  is close to the mean over all tokens); frame embeddings are the windows' tokens in order.
  Window starts are multiples of the token stride, so the timestamps of every window lie on the
  clip's one time grid. Memory is bounded by ``batch_size`` windows, whatever the clip length.
- **Channels.** Waveforms must be mono ``(num_samples,)``; :func:`read_clip` averages a file's
  channels, the array API refuses 2-D input (it cannot know which axis is time).
- **Sample rate.** ``embed(..., sample_rate=44_100)`` resamples with
  ``torchaudio.functional.resample``; :func:`read_clip` resamples files.

What comes out:

- ``clip``: ``(B, D)`` float32 on the CPU; the encoder's own clip embedding (MAST: mean of the
  valid last-stage tokens; AST: the cls token).
- ``frames``: per clip ``(T_i, D)``, the last-stage tokens averaged over the frequency axis.
- ``timestamps``: per clip ``(T_i,)`` seconds, the centre of each token's time span. Token ``k``
  sits on patch column ``k * s`` (``s`` = 8 for MAST's three stride-2 poolings, 1 for AST), i.e.
  frames ``[10 k s, 10 k s + 15]``: its centre is ``(k * s * 10 * hop + (15 * hop + window) / 2) /
  sample_rate`` = ``0.8 k + 0.0875`` s for MAST, ``0.1 k + 0.0875`` s for AST.

Determinism: the same call gives the same result, and a clip's embeddings depend on the other
clips of the call only through float32 rounding. Log-mel is computed one clip at a time (a
batched pass reduces the clip mean in a batch-size-dependent order, which moves features by
~1e-5), and each window is padded to a length that depends on its own frames only (the next
multiple of ``2 ** (floor(log2(frames)) - 3)``: at most 12.5 % padding), then batched only with
windows of the same padded length. What remains is the encoder's kernels: for short windows the
CPU attention and matrix kernels pick a different summation order for a different batch size,
which moves embeddings by a few float32 ulps (measured: at most 3e-6 on unit-scale embeddings,
MAST-S, 0.1-1 s clips). With ``batch_size=1`` every window runs alone, with a shape fixed by its
own length, so a clip's embeddings are bitwise independent of the other clips (slower: batching
gives 2-10x on CPU).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF

from .audio import read_audio
from .checkpoint import FeatureSettings, load_encoder
from .contracts import Encoder
from .features import _window_geometry, log_mel, normalize

__all__ = ["Embedder", "Embeddings", "embed", "read_clip", "token_stride"]

Waveform = torch.Tensor | np.ndarray


@dataclass
class Embeddings:
    """Result of :meth:`Embedder.embed`.

    ``clip`` is ``(B, D)``; ``frames`` and ``timestamps`` (seconds) are lists with one
    ``(T_i, D)`` / ``(T_i,)`` tensor per clip, or None when frames were not asked for.
    """

    clip: torch.Tensor
    frames: list[torch.Tensor] | None = None
    timestamps: list[torch.Tensor] | None = None

    def stacked_frames(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, T, D)`` frames and ``(B, T)`` timestamps; every clip must have the same ``T``.

        Example::

            frames, seconds = embedder.embed(waves_of_equal_length, frames=True).stacked_frames()
        """
        if self.frames is None or self.timestamps is None:
            raise ValueError("these embeddings hold no frames: call embed(..., frames=True)")
        counts = sorted({f.shape[0] for f in self.frames})
        if len(counts) > 1:
            raise ValueError(f"clips have different numbers of frame embeddings {counts}; stack needs equal lengths")
        dim = self.clip.shape[1]
        if not self.frames:
            return torch.zeros(0, 0, dim), torch.zeros(0, 0)
        return torch.stack(self.frames), torch.stack(self.timestamps)


def token_stride(model: Encoder) -> int:
    """Log-mel frames between two consecutive output tokens along time (:attr:`Encoder.token_stride`).

    MAST: ``patch_stride`` times the Q strides of its pooling blocks (10 * 2 * 2 * 2 = 80 frames,
    0.8 s); AST: ``patch_stride`` (10 frames, 0.1 s).

    Example::

        token_stride(mast_small())    # 80
    """
    return model.token_stride


def bucket_frames(frames: int) -> int:
    """Padded length of a window of ``frames`` frames: a function of its own length only.

    The next multiple of ``2 ** (floor(log2(frames)) - 3)``, at most 12.5 % more frames.
    """
    quantum = 2 ** max(0, frames.bit_length() - 1 - 3)
    return -(-frames // quantum) * quantum


def read_clip(path: str | Path, sample_rate: int) -> torch.Tensor:
    """Decode an audio file to float32 mono ``(num_samples,)`` at ``sample_rate``.

    Channels are averaged (stereo is downmixed) and other rates are resampled with
    ``torchaudio.functional.resample``. Silent files are kept (silence has an embedding).
    Raises :class:`mast_core.audio.AudioError` (with a short ``reason``) for files that cannot
    be decoded.

    Example::

        wave = read_clip("take.flac", 16_000)
    """
    return read_audio(path, sample_rate=sample_rate, reject_silence=False)


class Embedder:
    """Clip and frame embeddings of mono waveforms with an encoder and its feature settings.

    Args:
        model: an :class:`~mast_core.contracts.Encoder` (as returned by :func:`mast_core.load_encoder`).
        features: the encoder's :class:`FeatureSettings` (sample rate, mel bins, mean, std).
        batch_size: windows per encoder call (bounds memory; 1 makes results bitwise independent
            of the other clips, see the module docstring).
        window_frames: longest window in log-mel frames before a clip is cut (see the module
            docstring); default: the encoder's ``max_frames``, rounded down to the token stride.
        device: where to run; default: where the model's parameters are.

    Example::

        embedder = Embedder.from_checkpoint("exports/mast-s", device="cuda")
        clip = embedder.embed(torch.rand(4, 160_000) * 2 - 1).clip     # (4, 768)
    """

    def __init__(
        self,
        model: Encoder,
        features: FeatureSettings,
        *,
        batch_size: int = 16,
        window_frames: int | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model.to(self.device).eval()
        self.features = features
        self.batch_size = batch_size
        self.stride = model.token_stride
        self.patch_size = model.patch_size
        if model.num_mel_bins != features.num_mel_bins:
            raise ValueError(f"encoder takes {model.num_mel_bins} mel bins but its feature settings say {features.num_mel_bins}")
        requested = window_frames if window_frames is not None else model.max_frames
        self.window_frames = requested // self.stride * self.stride
        smallest = max(self.stride, 2 * self.patch_size)
        if self.window_frames < smallest:
            raise ValueError(f"window_frames {requested} is too short: at least {smallest} frames for this encoder")
        self.frame_window, self.frame_hop, _ = _window_geometry(features.sample_rate)

    @classmethod
    def from_checkpoint(
        cls, source: str | Path, *, device: str | torch.device = "cpu", tracking_uri: str | None = None, **kwargs
    ) -> Embedder:
        """Load an exported encoder (folder or MLflow URI, see :func:`mast_core.load_encoder`).

        Example::

            embedder = Embedder.from_checkpoint("runs:/0a1b.../encoder", tracking_uri="sqlite:///mlflow.db")
        """
        model, features = load_encoder(source, map_location=device, tracking_uri=tracking_uri)
        return cls(model, features, device=device, **kwargs)

    # -- geometry ---------------------------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        return self.features.sample_rate

    @property
    def embedding_size(self) -> int:
        return int(self.model.embed_dim)

    @property
    def min_samples(self) -> int:
        """Samples of the shortest input the encoder takes (one patch); shorter clips are zero-padded."""
        return self.frame_window + (self.patch_size - 1) * self.frame_hop

    @property
    def frame_hop_seconds(self) -> float:
        """Time between two frame embeddings (0.8 s for MAST, 0.1 s for AST at 16 kHz)."""
        return self.stride * self.frame_hop / self.sample_rate

    def timestamps(self, num_tokens: int) -> torch.Tensor:
        """Centres (seconds) of the first ``num_tokens`` output tokens of a clip."""
        return self.model.timestamps(num_tokens, self.sample_rate)

    def windows(self, num_frames: int) -> list[tuple[int, int]]:
        """``(start, frames)`` of the windows a clip of ``num_frames`` frames is cut into."""
        size = self.window_frames
        if num_frames <= size:
            return [(0, num_frames)]
        count = num_frames // size
        remainder = num_frames - count * size
        spans = [(i * size, size) for i in range(count)]
        if remainder >= size // 2:
            spans.append((count * size, remainder))
        elif remainder:
            start, frames = spans[-1]
            spans[-1] = (start, frames + remainder)
        return spans

    # -- embedding --------------------------------------------------------------------------

    def _prepare(self, index: int, wave: Waveform, sample_rate: int) -> torch.Tensor:
        tensor = torch.as_tensor(wave)
        if tensor.dim() != 1:
            hint = " (downmix channels first, e.g. wave.mean(0))" if tensor.dim() == 2 else ""
            raise ValueError(f"clip {index}: expected a mono (num_samples,) waveform, got shape {tuple(tensor.shape)}{hint}")
        if not tensor.is_floating_point():
            raise TypeError(f"clip {index}: expected float samples in [-1, 1], got {tensor.dtype} (scale integer PCM first)")
        if tensor.numel() == 0:
            raise ValueError(f"clip {index}: empty waveform (0 samples)")
        tensor = tensor.to(self.device, torch.float32)
        if not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"clip {index}: contains NaN or infinite samples")
        if sample_rate != self.sample_rate:
            tensor = AF.resample(tensor, sample_rate, self.sample_rate)
        if tensor.numel() < self.min_samples:
            tensor = torch.nn.functional.pad(tensor, (0, self.min_samples - tensor.numel()))
        return tensor

    def spectrogram(self, wave: Waveform, *, sample_rate: int | None = None, index: int = 0) -> torch.Tensor:
        """The encoder's input for one clip: normalised log-mel ``(mel, T)`` on the embedder's device.

        Checks, resamples and pads ``wave`` as :meth:`embed` does (``index`` only names the clip in
        errors). Features are computed one clip at a time (see the module docstring), so this can
        run in worker threads while the encoder runs (``mast embed`` does), with the same result.

        Example::

            specs = [embedder.spectrogram(w) for w in waves]
            out = embedder.embed_spectrograms(specs)      # == embedder.embed(waves)
        """
        rate = self.sample_rate if sample_rate is None else int(sample_rate)
        with torch.no_grad():
            wave = self._prepare(index, wave, rate)
            spec = log_mel(wave[None], self.sample_rate, self.features.num_mel_bins)[0]
            return normalize(spec, self.features.mean, self.features.std)

    def _encode(self, spec: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Clip embeddings (B, D), frequency-averaged tokens (B, T, D) and valid tokens (B,)."""
        out = self.model.forward_tokens(spec, lengths)
        return out.clip, out.frames(), out.lengths

    def embed(
        self, waves: Sequence[Waveform] | torch.Tensor | np.ndarray, *, sample_rate: int | None = None, frames: bool = False
    ) -> Embeddings:
        """Embed mono waveforms: a sequence of 1-D tensors/arrays, or a ``(B, N)`` tensor/array.

        ``sample_rate`` (default: the encoder's) is the rate of ``waves``; other rates are
        resampled. ``frames=True`` also returns frame embeddings and their timestamps.

        Example::

            out = embedder.embed([torch.randn(16_000) * 0.1, np.zeros(4_000, np.float32)])
            out.clip.shape           # (2, D)
        """
        if isinstance(waves, (torch.Tensor, np.ndarray)) and waves.ndim != 2:
            raise ValueError(
                f"a tensor of clips must be (batch, num_samples), got shape {tuple(waves.shape)}; "
                "pass a list for clips of different lengths"
            )
        specs = [self.spectrogram(wave, sample_rate=sample_rate, index=index) for index, wave in enumerate(waves)]
        return self.embed_spectrograms(specs, frames=frames)

    def embed_spectrograms(self, specs: Sequence[torch.Tensor], *, frames: bool = False) -> Embeddings:
        """Embed clips given as :meth:`spectrogram` outputs (normalised log-mel ``(mel, T)``, T >= 16)."""
        for index, spec in enumerate(specs):
            if spec.dim() != 2 or spec.shape[0] != self.features.num_mel_bins or spec.shape[1] < self.patch_size:
                raise ValueError(
                    f"clip {index}: expected features ({self.features.num_mel_bins}, >= {self.patch_size} frames), "
                    f"got shape {tuple(spec.shape)}"
                )
        with torch.no_grad():
            return self._embed_features([spec.to(self.device) for spec in specs], frames)

    def _embed_features(self, specs: list[torch.Tensor], want_frames: bool) -> Embeddings:
        # every window of every clip, grouped by padded length; each group runs in fixed order
        windows = [(clip, start, size) for clip, spec in enumerate(specs) for start, size in self.windows(spec.shape[1])]
        groups: dict[int, list[int]] = {}
        for number, (_, _, size) in enumerate(windows):
            groups.setdefault(bucket_frames(size), []).append(number)
        clip_out: list[torch.Tensor | None] = [None] * len(windows)
        frame_out: list[torch.Tensor | None] = [None] * len(windows)
        mel = self.features.num_mel_bins
        for padded, members in sorted(groups.items()):
            for first in range(0, len(members), self.batch_size):
                chunk = members[first : first + self.batch_size]
                batch = specs[0].new_zeros(len(chunk), mel, padded)
                for row, number in enumerate(chunk):
                    clip, start, size = windows[number]
                    batch[row, :, :size] = specs[clip][:, start : start + size]
                lengths = torch.tensor([windows[n][2] for n in chunk], device=self.device)
                clip_emb, frame_emb, valid = self._encode(batch, lengths)
                clip_emb, frame_emb, valid = clip_emb.float().cpu(), frame_emb.float().cpu(), valid.cpu()
                for row, number in enumerate(chunk):
                    clip_out[number] = clip_emb[row]
                    frame_out[number] = frame_emb[row, : int(valid[row])]

        dim = self.embedding_size
        clips, all_frames, all_times = [], [], []
        number = 0
        for spec in specs:
            spans = self.windows(spec.shape[1])
            parts = list(range(number, number + len(spans)))
            number += len(spans)
            if len(parts) == 1:
                clips.append(clip_out[parts[0]])
            else:
                weights = torch.tensor([float(size) for _, size in spans])
                stacked = torch.stack([clip_out[p] for p in parts])
                clips.append((stacked * weights[:, None]).sum(0) / weights.sum())
            if want_frames:
                tokens = torch.cat([frame_out[p] for p in parts])
                all_frames.append(tokens)
                all_times.append(self.timestamps(tokens.shape[0]))
        clip_tensor = torch.stack(clips) if clips else torch.zeros(0, dim)
        if not want_frames:
            return Embeddings(clip_tensor)
        return Embeddings(clip_tensor, all_frames, all_times)

    def embed_long(self, read: Callable[[int, int], torch.Tensor], num_samples: int, *, frames: bool = False) -> Embeddings:
        """One clip of any length, read window by window: memory is bounded by ``batch_size``
        windows (plus the frame embeddings, when asked), not by the clip's length.

        ``read(start, count)`` returns up to ``count`` float samples from sample ``start`` of the
        clip, mono at the embedder's rate; ``num_samples`` is the clip's length. The result equals
        :meth:`embed` of the whole clip up to float rounding (each log-mel frame depends on its own
        25 ms of samples only; a test compares the two).

        Example::

            out = embedder.embed_long(lambda start, count: wave[start : start + count], len(wave))
        """
        if num_samples <= 0:
            raise ValueError(f"empty clip ({num_samples} samples)")
        total = max(num_samples, self.min_samples)  # shorter clips are zero-padded, as embed() does
        spans = self.windows(1 + (total - self.frame_window) // self.frame_hop)
        clip_sum, weight, tokens = None, 0.0, []
        with torch.no_grad():
            for first in range(0, len(spans), self.batch_size):
                # consecutive windows of one padded length share an encoder call, as in embed()
                for padded, members in itertools.groupby(spans[first : first + self.batch_size], key=lambda span: bucket_frames(span[1])):
                    members = list(members)
                    batch = torch.zeros(len(members), self.features.num_mel_bins, padded, device=self.device)
                    for row, (start, size) in enumerate(members):
                        batch[row, :, :size] = self._window_spectrogram(read, start, size)
                    lengths = torch.tensor([size for _, size in members], device=self.device)
                    clip_emb, frame_emb, valid = (
                        t.float().cpu() if t.is_floating_point() else t.cpu() for t in self._encode(batch, lengths)
                    )
                    for row, (_, size) in enumerate(members):
                        part = clip_emb[row] * float(size)
                        clip_sum = part if clip_sum is None else clip_sum + part
                        weight += float(size)
                        if frames:
                            tokens.append(frame_emb[row, : int(valid[row])])
        clip = clip_emb[0] if len(spans) == 1 else clip_sum / weight
        if not frames:
            return Embeddings(clip[None])
        stacked = torch.cat(tokens)
        return Embeddings(clip[None], [stacked], [self.timestamps(stacked.shape[0])])

    def _window_spectrogram(self, read: Callable[[int, int], torch.Tensor], start: int, size: int) -> torch.Tensor:
        """The normalised log-mel of frames ``[start, start + size)`` of a clip, from its samples alone."""
        count = (size - 1) * self.frame_hop + self.frame_window
        wave = torch.as_tensor(read(start * self.frame_hop, count))
        if wave.dim() != 1 or not wave.is_floating_point():
            raise ValueError(f"read() must return mono float samples, got {wave.dtype} of shape {tuple(wave.shape)}")
        wave = wave.to(self.device, torch.float32)
        if not bool(torch.isfinite(wave).all()):
            raise ValueError(f"samples {start * self.frame_hop}-{start * self.frame_hop + count}: NaN or infinite values")
        if wave.numel() < count:  # the end of a clip shorter than one patch: zero-padded
            wave = torch.nn.functional.pad(wave, (0, count - wave.numel()))
        spec = log_mel(wave[None], self.sample_rate, self.features.num_mel_bins)[0]
        return normalize(spec, self.features.mean, self.features.std)

    def embed_files(self, paths: Sequence[str | Path], *, frames: bool = False) -> Embeddings:
        """Embed audio files (any format soundfile reads; downmixed, resampled).

        Raises :class:`mast_core.audio.AudioError` naming the first file that cannot be decoded;
        ``mast embed`` skips and reports such files instead.

        Example::

            out = embedder.embed_files(["a.wav", "b.flac"])
        """
        return self.embed([read_clip(path, self.sample_rate) for path in paths], frames=frames)


def embed(
    model: Encoder,
    features: FeatureSettings,
    waves: Sequence[Waveform] | torch.Tensor | np.ndarray,
    *,
    sample_rate: int | None = None,
    frames: bool = False,
    batch_size: int = 16,
    window_frames: int | None = None,
) -> Embeddings:
    """One-call form of :class:`Embedder`: ``embed(*load_encoder(path), waves)``.

    Example::

        model, features = load_encoder("exports/mast-s")
        clip = embed(model, features, [wave]).clip       # (1, 768)
    """
    embedder = Embedder(model, features, batch_size=batch_size, window_frames=window_frames)
    return embedder.embed(waves, sample_rate=sample_rate, frames=frames)
