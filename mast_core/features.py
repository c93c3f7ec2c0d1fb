"""Log-mel filterbank features, their normalisation, and dataset statistics.

The models take a ``(B, 128, T)`` batch: 128 mel bins (rows) by ``T`` frames (columns) of a
16 kHz waveform, 25 ms windows every 10 ms. The features are exactly the AST recipe,
``torchaudio.compliance.kaldi.fbank(wave - wave.mean(), htk_compat=True, use_energy=False,
window_type='hanning', num_mel_bins=128, dither=0.0, frame_shift=10)``, transposed to
mel-bins-first, but computed for a whole batch in one pass (and on the GPU if the waveforms are
there): kaldi's function handles one clip at a time, which makes feature extraction, not the
model, the bottleneck of pretraining.

Example::

    waves = torch.randn(64, 160_000)                    # 64 ten-second clips at 16 kHz
    specs = log_mel(waves)                              # (64, 128, 998)
    stats = compute_stats(specs)                        # FeatureStats(mean=..., std=..., ...)
    model_input = normalize(specs, stats.mean, stats.std)    # (64, 128, 998), what the encoders take
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torchaudio.compliance import kaldi

SAMPLE_RATE = 16000
NUM_MEL_BINS = 128
# AudioSet statistics used by AST, for checkpoints trained with them.
AUDIOSET_MEAN = -4.2677393
AUDIOSET_STD = 4.5689974

FRAME_LENGTH_MS = 25.0
FRAME_SHIFT_MS = 10.0
PREEMPHASIS = 0.97
# Kaldi's defaults for the mel bank edges: 20 Hz up to Nyquist, no VTLN warping.
_LOW_FREQ = 20.0
_HIGH_FREQ = 0.0
_VTLN_LOW = 100.0
_VTLN_HIGH = -500.0
# Kaldi floors filterbank energies at float32 machine epsilon before the log (whatever the dtype).
_LOG_FLOOR = torch.finfo(torch.float32).eps


def _window_geometry(sample_rate: int) -> tuple[int, int, int]:
    """Window length, hop and FFT size in samples, computed the way kaldi does.

    The exact expression ``int(rate * ms * 0.001)`` matters: it decides rounding for rates where
    25 ms is not a whole number of samples (22.05 kHz -> 551), so we stay identical to kaldi.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    window = int(sample_rate * FRAME_LENGTH_MS * 0.001)
    hop = int(sample_rate * FRAME_SHIFT_MS * 0.001)
    if window < 2 or hop < 1:
        raise ValueError(f"sample_rate {sample_rate} Hz is too low for a 25 ms window and 10 ms hop")
    fft_size = 2 ** (window - 1).bit_length()  # next power of two, as kaldi's round_to_power_of_two
    return window, hop, fft_size


def num_frames(num_samples: int, sample_rate: int = SAMPLE_RATE) -> int:
    """Number of log-mel frames for ``num_samples`` samples (kaldi ``snip_edges``: whole windows only).

    Example::

        num_frames(16_000)    # 98  (1 s)
        num_frames(160_000)   # 998 (10 s)
        num_frames(300)       # 0   (shorter than one 25 ms window)
    """
    window, hop, _ = _window_geometry(sample_rate)
    if num_samples < window:
        return 0
    return 1 + (num_samples - window) // hop


@functools.lru_cache(maxsize=32)
def _mel_banks(num_mel_bins: int, fft_size: int, sample_rate: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Kaldi's triangular mel filters, ``(num_mel_bins, fft_size // 2 + 1)``, cached per device/dtype.

    Cached because building them on the host and copying to the GPU on every batch would cost
    more than the filterbank product itself. Callers must not modify the returned tensor.
    """
    banks, _ = kaldi.get_mel_banks(num_mel_bins, fft_size, float(sample_rate), _LOW_FREQ, _HIGH_FREQ, _VTLN_LOW, _VTLN_HIGH, 1.0)
    # kaldi's banks stop below Nyquist; the extra zero column lines them up with the rfft bins.
    banks = F.pad(banks, (0, 1))
    return banks.to(device=device, dtype=dtype)


@functools.lru_cache(maxsize=32)
def _hann_window(length: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # Kaldi's "hanning" is the symmetric Hann window (periodic=False), unlike torch.stft's default.
    return torch.hann_window(length, periodic=False, device=device, dtype=dtype)


def log_mel(waveform: torch.Tensor, sample_rate: int = SAMPLE_RATE, num_mel_bins: int = NUM_MEL_BINS) -> torch.Tensor:
    """Kaldi-compatible log-mel filterbank of one clip ``(N,)`` or a batch ``(B, N)``.

    Returns ``(num_mel_bins, T)`` or ``(B, num_mel_bins, T)``: mel bins first, frames second,
    the layout of the model's input image. ``T = num_frames(N, sample_rate)``. Per clip the result
    equals ``kaldi.fbank(wave - wave.mean(), htk_compat=True, sample_frequency=sample_rate,
    use_energy=False, window_type='hanning', num_mel_bins=num_mel_bins, dither=0.0,
    frame_shift=10).T``, but the whole batch is computed at once, on the waveform's device.

    The models expect 16 kHz input: other rates are accepted (window and hop in samples scale with
    the rate, so frames still span 25 ms / 10 ms), but the mel bins then cover a different
    frequency range and the features no longer match what a 16 kHz-trained model saw. Resample
    to 16 kHz instead wherever a pretrained model is involved.

    Values are natural-log mel power (not normalised); see :func:`normalize`. Half-precision input
    is computed in float32 (the FFT and the log need the range); float64 stays float64.

    Example::

        spec = log_mel(torch.randn(16_000))                      # (128, 98)
        batch = log_mel(torch.randn(8, 160_000, device="cuda"))  # (8, 128, 998) on the GPU
    """
    if not isinstance(waveform, torch.Tensor):
        raise TypeError(f"waveform must be a torch.Tensor, got {type(waveform).__name__}")
    if waveform.dim() not in (1, 2):
        raise ValueError(f"waveform must be (num_samples,) or (batch, num_samples), got shape {tuple(waveform.shape)}")
    if not waveform.is_floating_point():
        raise TypeError(f"waveform must be floating point (e.g. float32 in [-1, 1]), got {waveform.dtype}")
    if num_mel_bins <= 3:
        raise ValueError(f"num_mel_bins must be greater than 3 (kaldi's limit), got {num_mel_bins}")
    window, hop, fft_size = _window_geometry(sample_rate)
    num_samples = waveform.shape[-1]
    if num_samples < window:
        raise ValueError(
            f"clip of {num_samples} samples is shorter than one {FRAME_LENGTH_MS:g} ms analysis window "
            f"({window} samples at {sample_rate} Hz); pad or drop clips this short"
        )

    single = waveform.dim() == 1
    wave = waveform.unsqueeze(0) if single else waveform
    if wave.dtype not in (torch.float32, torch.float64):
        wave = wave.float()
    frames = num_frames(num_samples, sample_rate)
    rows = _rows_per_pass(wave, frames, fft_size)
    if wave.shape[0] <= rows:
        spec = _log_mel_rows(wave, sample_rate, num_mel_bins, window, hop, fft_size)
        return spec[0] if single else spec
    spec = wave.new_empty(wave.shape[0], num_mel_bins, frames)
    for start in range(0, wave.shape[0], rows):
        spec[start : start + rows] = _log_mel_rows(wave[start : start + rows], sample_rate, num_mel_bins, window, hop, fft_size)
    return spec


# On the CPU a batch goes through the FFT a few clips at a time. A whole batch's FFT buffers (65 MB
# each for 32 ten-second clips) lie above glibc's mmap threshold (32 MB at most), so every batch
# mapped fresh pages and took a page fault per 4 KB: a third of the time went to the kernel. Buffers
# of about 4 MB stay in the heap and reuse its pages: 1.9-2.1x faster per batch (benchmarks/log_mel.py)
# and the same values (each clip's frames, FFT and mel product do not depend on the other clips). A
# GPU takes the batch whole.
_CPU_PASS_BYTES = 4 << 20


def _rows_per_pass(wave: torch.Tensor, frames: int, fft_size: int) -> int:
    if wave.device.type != "cpu":
        return wave.shape[0]
    return max(1, _CPU_PASS_BYTES // max(1, frames * fft_size * wave.element_size()))


def _log_mel_rows(wave: torch.Tensor, sample_rate: int, num_mel_bins: int, window: int, hop: int, fft_size: int) -> torch.Tensor:
    """:func:`log_mel` of a float batch ``(B, N)`` in one pass."""
    # The AST recipe removes the clip mean before kaldi; kaldi then removes each frame's mean too.
    wave = wave - wave.mean(dim=-1, keepdim=True)
    frames = wave.unfold(-1, window, hop)  # (B, T, window), a strided view: no copy yet
    centred = frames - frames.mean(dim=-1, keepdim=True)
    # Work inside one zero-filled FFT-sized buffer: its tail is the zero padding, and writing the
    # intermediate steps into it (out=, in place) keeps the number of frame-sized tensors low,
    # which is what bounds speed and memory for long batches.
    padded = wave.new_zeros(*centred.shape[:-1], fft_size)
    emphasised = padded[..., :window]
    # Pre-emphasis y[j] = x[j] - 0.97 * x[j-1], with kaldi's edge rule x[-1] = x[0]. The product is
    # rounded before the subtraction exactly as kaldi does: a fused form differs by up to 5e-4 in
    # the lowest mel bin, where pre-emphasis cancels almost all the energy.
    torch.mul(centred[..., :-1], PREEMPHASIS, out=emphasised[..., 1:])
    torch.mul(centred[..., :1], PREEMPHASIS, out=emphasised[..., :1])
    torch.sub(centred, emphasised, out=emphasised)
    del centred
    emphasised.mul_(_hann_window(window, padded.device, padded.dtype))
    spectrum = torch.view_as_real(torch.fft.rfft(padded))  # (B, T, fft_size // 2 + 1, 2)
    del padded, emphasised
    power = spectrum.square_().sum(dim=-1)
    del spectrum
    banks = _mel_banks(num_mel_bins, fft_size, sample_rate, power.device, power.dtype)
    # (n_mels, F) @ (B, F, T) -> (B, n_mels, T): the model's layout, contiguous, no transpose copy.
    spec = torch.matmul(banks, power.transpose(-1, -2))
    return spec.clamp_min_(_LOG_FLOOR).log_()


def normalize(spec: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """Scale a log-mel to the model's input range: ``(spec - mean) / (2 * std)`` (the AST convention).

    Example::

        x = normalize(log_mel(wave), AUDIOSET_MEAN, AUDIOSET_STD)
    """
    if not std > 0:
        raise ValueError(f"std must be positive, got {std}")
    return (spec - mean) / (2.0 * std)


def denormalize(spec: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """Inverse of :func:`normalize`: back to natural-log mel power.

    Example::

        assert torch.allclose(denormalize(normalize(s, m, sd), m, sd), s, atol=1e-5)
    """
    if not std > 0:
        raise ValueError(f"std must be positive, got {std}")
    return spec * (2.0 * std) + mean


@dataclass(frozen=True)
class FeatureStats:
    """Mean and (population) standard deviation of log-mel values over a dataset.

    ``num_frames`` is how many spectrogram frames went into them, kept so readers can judge how
    representative the statistics are. Stored next to the shards as JSON via :meth:`to_dict`.

    Example::

        stats = FeatureStats.from_dict(json.loads(path.read_text()))
        x = normalize(spec, stats.mean, stats.std)
    """

    mean: float
    std: float
    num_frames: int

    def to_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "std": self.std, "num_frames": self.num_frames}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureStats:
        expected = {"mean", "std", "num_frames"}
        missing = expected - set(data)
        if missing:
            raise ValueError(f"feature stats missing key(s) {sorted(missing)}; expected keys {sorted(expected)}")
        unknown = set(data) - expected
        if unknown:
            raise ValueError(f"feature stats have unknown key(s) {sorted(unknown)}; expected keys {sorted(expected)}")
        stats = cls(mean=float(data["mean"]), std=float(data["std"]), num_frames=int(data["num_frames"]))
        if not (math.isfinite(stats.mean) and math.isfinite(stats.std) and stats.std > 0):
            raise ValueError(f"feature stats need a finite mean and a finite positive std, got {stats}")
        if stats.num_frames < 0:
            raise ValueError(f"feature stats num_frames must be >= 0, got {stats.num_frames}")
        return stats


def compute_stats(specs: Iterable[torch.Tensor]) -> FeatureStats:
    """Mean and population std of every value of every log-mel in ``specs``, in one streaming pass.

    Each item is ``(n_mels, T)`` or ``(B, n_mels, T)``; ``T`` may vary between items, ``n_mels`` may
    not. Only running totals are kept (float64, merged chunk by chunk with Chan et al.'s parallel
    update rather than raw sums of squares, which cancel badly when the mean is large next to the
    std), so a generator over a whole dataset never has more than one item in memory.

    Example::

        stats = compute_stats(log_mel(wave) for wave in read_waves(files))
    """
    count = 0
    mean = 0.0
    sum_sq_dev = 0.0  # running sum of squared deviations from the running mean (Welford's M2)
    frames = 0
    mel_bins: int | None = None
    for index, spec in enumerate(specs):
        if spec.dim() not in (2, 3):
            raise ValueError(f"item {index}: expected (n_mels, T) or (B, n_mels, T), got shape {tuple(spec.shape)}")
        if mel_bins is None:
            mel_bins = spec.shape[-2]
        elif spec.shape[-2] != mel_bins:
            raise ValueError(f"item {index} has {spec.shape[-2]} mel bins, earlier items had {mel_bins}")
        values = spec.detach().to(torch.float64)
        chunk_count = values.numel()
        if chunk_count == 0:
            continue
        chunk_mean = values.mean().item()
        chunk_sum_sq_dev = (values - chunk_mean).square().sum().item()
        total = count + chunk_count
        delta = chunk_mean - mean
        mean += delta * chunk_count / total
        sum_sq_dev += chunk_sum_sq_dev + delta * delta * count * chunk_count / total
        count = total
        frames += chunk_count // mel_bins
    if count == 0:
        raise ValueError("compute_stats got no spectrogram values: the iterable was empty (or every item was empty)")
    return FeatureStats(mean=mean, std=math.sqrt(sum_sq_dev / count), num_frames=frames)


def merge_stats(parts: Iterable[FeatureStats]) -> FeatureStats:
    """Combine statistics computed on disjoint sets of clips (with the same mel bins), exactly.

    Each part is weighted by its ``num_frames`` (values = frames x mel bins), with the same
    parallel update as :func:`compute_stats`, so shards can be summarised independently.
    """
    count, mean, sum_sq_dev = 0, 0.0, 0.0
    for part in parts:
        if part.num_frames == 0:
            continue
        total = count + part.num_frames
        delta = part.mean - mean
        mean += delta * part.num_frames / total
        sum_sq_dev += part.std**2 * part.num_frames + delta * delta * count * part.num_frames / total
        count = total
    if count == 0:
        raise ValueError("merge_stats got no statistics with frames")
    return FeatureStats(mean=mean, std=math.sqrt(sum_sq_dev / count), num_frames=count)
