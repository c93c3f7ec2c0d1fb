"""Audio I/O: decode any file soundfile reads, check it, resample to 16 kHz mono, store as FLAC.

Every problem with a clip raises :class:`AudioError` whose ``reason`` is a short, stable phrase
("empty file", "truncated", "unreadable", "non-finite samples", "silent", "too long") and whose
message says what was found, so an ingest can skip the clip and report why.

Example::

    wave = read_audio("clip.mp3")                 # float32 (N,) at 16 kHz, mono
    flac = encode_flac(wave)                      # bytes, 16-bit FLAC
    same = decode_audio(flac)                     # equal to ``wave`` within 16-bit quantisation
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from .features import SAMPLE_RATE

# Below this peak a clip carries no signal (-100 dBFS): digital silence or a dead channel.
SILENCE_PEAK = 1e-5


class AudioError(ValueError):
    """A clip that cannot be used; ``reason`` is a short category, the message has the details."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def _open(source: str | Path | bytes) -> tuple[BinaryIO | str, str]:
    if isinstance(source, (bytes, bytearray)):
        if len(source) == 0:
            raise AudioError("empty file", "0 bytes")
        return io.BytesIO(source), "<bytes>"
    path = str(source)
    if not os.path.exists(path):
        raise AudioError("missing file", path)
    if os.path.getsize(path) == 0:
        raise AudioError("empty file", f"{path} has 0 bytes")
    return path, path


def _declared_data_mismatch(extra_info: str) -> str | None:
    """libsndfile notes "data : 32000 (should be 15978)" when a WAV ends before its data chunk."""
    for line in extra_info.splitlines():
        if line.strip().startswith("data") and "should be" in line:
            return f"header declares more audio than the file holds ({line.strip()})"
    return None


def read_audio(
    source: str | Path | bytes,
    *,
    start: float = 0.0,
    duration: float | None = None,
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float | None = None,
    reject_silence: bool = True,
) -> torch.Tensor:
    """Decode ``source`` (a path or encoded bytes) to float32 mono at ``sample_rate``.

    ``start``/``duration`` (seconds) select part of the file. Channels are averaged. Raises
    :class:`AudioError` for empty, unreadable or truncated files, non-finite samples, silence
    (peak below -100 dBFS, when ``reject_silence``) and files longer than ``max_seconds``.
    """
    handle, name = _open(source)
    try:
        info = sf.info(handle)
    except (sf.LibsndfileError, RuntimeError, TypeError) as error:
        raise AudioError("unreadable", f"{name}: {error}") from None
    if isinstance(handle, io.BytesIO):
        handle.seek(0)
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError("empty file", f"{name} holds no audio frames")
    declared = _declared_data_mismatch(info.extra_info)
    if declared:
        raise AudioError("truncated", f"{name}: {declared}")
    seconds = info.frames / info.samplerate
    if max_seconds is not None and seconds > max_seconds:
        raise AudioError("too long", f"{name} lasts {seconds:.1f} s, more than the {max_seconds:g} s limit")
    first = int(round(start * info.samplerate))
    wanted = info.frames - first if duration is None else int(round(duration * info.samplerate))
    if first < 0 or wanted <= 0 or first + wanted > info.frames:
        raise AudioError("out of range", f"{name}: [{start:g} s, +{duration} s] is outside its {seconds:.2f} s")
    try:
        data, _ = sf.read(handle, start=first, frames=wanted, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as error:
        raise AudioError("corrupt data", f"{name}: {error}") from None
    if data.shape[0] < wanted:
        raise AudioError("truncated", f"{name}: header promises {wanted} frames from {start:g} s, only {data.shape[0]} could be read")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.isfinite(mono).all():
        raise AudioError("non-finite samples", f"{name} contains NaN or infinite samples")
    peak = float(np.abs(mono).max())
    if reject_silence and peak < SILENCE_PEAK:
        raise AudioError("silent", f"{name}: peak {peak:.2e} is below -100 dBFS")
    wave = torch.from_numpy(np.ascontiguousarray(mono))
    if info.samplerate != sample_rate:
        wave = AF.resample(wave, info.samplerate, sample_rate)
    return wave


class AudioReader:
    """Random access to a file's samples, mono at ``sample_rate``, a span at a time: a long
    recording is read window by window (:meth:`mast_core.embed.Embedder.embed_long`) instead of
    decoded whole. Spans at another rate than the file's are resampled with a margin of the
    file's samples on each side, so they match the whole file resampled up to float rounding.

    Example::

        reader = AudioReader("hour.flac", 16_000)
        reader.num_samples, reader(160_000, 16_000)     # samples 10 s to 11 s, float32
    """

    MARGIN = 1024  # file samples on each side of a resampled span (the sinc kernel's reach is far less)

    def __init__(self, source: str | Path | bytes, sample_rate: int = SAMPLE_RATE) -> None:
        handle, self.name = _open(source)
        try:
            self.file = sf.SoundFile(handle)
        except (sf.LibsndfileError, RuntimeError, TypeError) as error:
            raise AudioError("unreadable", f"{self.name}: {error}") from None
        self.rate, self.target, self.frames = self.file.samplerate, int(sample_rate), self.file.frames
        if self.frames <= 0 or self.rate <= 0:
            raise AudioError("empty file", f"{self.name} holds no audio frames")
        declared = _declared_data_mismatch(self.file.extra_info)
        if declared:
            raise AudioError("truncated", f"{self.name}: {declared}")
        self.num_samples = self.frames if self.rate == self.target else math.ceil(self.frames * self.target / self.rate)
        self.step = self.rate // math.gcd(self.rate, self.target)  # file samples per aligned resampling start

    @property
    def seconds(self) -> float:
        return self.frames / self.rate

    def _read(self, first: int, count: int) -> np.ndarray:
        try:
            self.file.seek(first)
            data = self.file.read(count, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as error:
            raise AudioError("corrupt data", f"{self.name}: {error}") from None
        if data.shape[0] < min(count, self.frames - first):
            raise AudioError("truncated", f"{self.name}: only {data.shape[0]} of {count} frames readable from frame {first}")
        mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
        if not np.isfinite(mono).all():
            raise AudioError("non-finite samples", f"{self.name} contains NaN or infinite samples")
        return np.ascontiguousarray(mono)

    def __call__(self, start: int, count: int) -> torch.Tensor:
        """Samples ``[start, start + count)`` at ``sample_rate`` (fewer at the end of the file)."""
        if self.rate == self.target:
            return torch.from_numpy(self._read(start, min(count, self.frames - start)))
        # an aligned start: output sample k of the span is sample first * target / rate + k of the whole
        first = max(0, (math.floor(start * self.rate / self.target) - self.MARGIN) // self.step * self.step)
        last = min(self.frames, math.ceil((start + count) * self.rate / self.target) + self.MARGIN)
        wave = AF.resample(torch.from_numpy(self._read(first, last - first)), self.rate, self.target)
        offset = start - first * self.target // self.rate
        return wave[offset : offset + min(count, self.num_samples - start)]

    def close(self) -> None:
        self.file.close()


def encode_flac(wave: torch.Tensor | np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """16-bit FLAC bytes of a mono float waveform in [-1, 1] (values beyond are clipped)."""
    samples = wave.detach().cpu().numpy() if isinstance(wave, torch.Tensor) else np.asarray(wave)
    if samples.ndim != 1:
        raise ValueError(f"encode_flac takes a mono (num_samples,) waveform, got shape {samples.shape}")
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(samples, -1.0, 1.0), sample_rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def decode_audio(data: bytes, dtype: str = "float32") -> torch.Tensor:
    """Decode stored FLAC/WAV bytes (already 16 kHz mono) to a tensor, without checks: float32 in
    [-1, 1), or ``dtype="int16"`` PCM (exact for the 16-bit FLAC that ingest writes)."""
    samples, _ = sf.read(io.BytesIO(data), dtype=dtype, always_2d=False)
    if samples.ndim == 2:
        samples = samples.mean(axis=1).round().astype(samples.dtype) if dtype == "int16" else samples.mean(axis=1)
    return torch.from_numpy(samples)


def quantisation_step(bits: int = 16) -> float:
    """Largest error of storing a float waveform as ``bits``-bit PCM (one step)."""
    return math.ldexp(1.0, -(bits - 1))
