"""Signal processing (numpy, seeded): resampling, background noises, rooms and microphones.

Every function is deterministic given its ``np.random.Generator``; sizes of the FFTs are rounded
up to 2^a 3^b 5^c (:func:`fast_length`).
"""

from __future__ import annotations

import math

import numpy as np

from pipelines.data.synth.settings import SAMPLE_RATE

# The background recordings of a noise bank (and a speaker's preference over them).
NOISE_KINDS = ("white_noise", "pink_noise", "brown_noise", "mains_hum", "fan", "running_water", "babble")


def fast_length(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n: sizes the FFT is fast on."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p = p35
            while p < n:
                p *= 2
            best = min(best, p)
            p35 *= 3
        p5 *= 5
    return best


def rms(x: np.ndarray) -> float:
    """The root mean square of ``x`` (0 when empty)."""
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def trim(x: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    """Cut the leading and trailing near-silence espeak-ng adds around an utterance."""
    loud = np.flatnonzero(np.abs(x) > threshold * max(float(np.abs(x).max()), 1e-9))
    return x[max(0, loud[0] - 80) : loud[-1] + 80] if loud.size else x[:0]


def resample(x: np.ndarray, source_rate: float, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling by FFT. A ``source_rate`` other than the true one shifts pitch,
    formants and tempo together: declaring 22,050 Hz audio as 23,000 Hz makes a smaller voice."""
    pad = 256
    n = fast_length(x.size + 2 * pad)
    m = max(1, int(round(n * target_rate / source_rate)))
    spectrum = np.fft.rfft(np.pad(x, (pad, n - x.size - pad)))
    bins = m // 2 + 1
    spectrum = spectrum[:bins] if bins <= spectrum.size else np.pad(spectrum, (0, bins - spectrum.size))
    y = np.fft.irfft(spectrum, m) * (m / n)
    start = int(round(pad * target_rate / source_rate))
    return y[start : start + int(round(x.size * target_rate / source_rate))].astype(np.float32)


def coloured_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with power ~ 1 / f^exponent (0 white, 1 pink, 2 brown, < 0 blue), unit RMS."""
    size = fast_length(n)
    spectrum = np.fft.rfft(rng.standard_normal(size))
    freqs = np.maximum(np.fft.rfftfreq(size, 1 / SAMPLE_RATE), 20.0)
    y = np.fft.irfft(spectrum * freqs ** (-exponent / 2), size)[:n]
    return (y / max(rms(y), 1e-12)).astype(np.float32)


def _lowpass(x: np.ndarray, cutoff: float, order: int = 2) -> np.ndarray:
    size = fast_length(x.size)
    freqs = np.fft.rfftfreq(size, 1 / SAMPLE_RATE)
    gain = 1 / np.sqrt(1 + (freqs / cutoff) ** (2 * order))
    return np.fft.irfft(np.fft.rfft(x, size) * gain, size)[: x.size]


def mains_hum(n: int, rng: np.random.Generator) -> np.ndarray:
    """50 or 60 Hz hum with buzzy odd harmonics, a slow wobble and a little hiss; unit RMS."""
    t = np.arange(n) / SAMPLE_RATE
    f0 = rng.choice([50.0, 60.0]) * rng.uniform(0.997, 1.003)
    y = np.zeros(n)
    for k in range(1, 16):
        amp = rng.uniform(0.2, 1.0) / k ** rng.uniform(0.6, 1.4) * (1.0 if k % 2 else rng.uniform(0.1, 0.6))
        y += amp * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi))
    y *= 1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.05, 0.5) * t)
    y = y / rms(y) + rng.uniform(0.05, 0.3) * coloured_noise(n, 1.0, rng)
    return (y / rms(y)).astype(np.float32)


def fan_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Low rumble with a blade-pass tone and slow modulation; unit RMS."""
    t = np.arange(n) / SAMPLE_RATE
    y = _lowpass(coloured_noise(n, rng.uniform(0.5, 1.5), rng), rng.uniform(300, 2000))
    blade = rng.uniform(20, 140)
    y = y / rms(y) + rng.uniform(0.1, 0.6) * sum(np.sin(2 * np.pi * k * blade * t) / k for k in range(1, 5))
    y *= 1 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.1, 2.0) * t)
    return (y / rms(y)).astype(np.float32)


def running_water(n: int, rng: np.random.Generator) -> np.ndarray:
    """Bright noise with fast random bubbling of the level; unit RMS."""
    y = coloured_noise(n, rng.uniform(-0.6, 0.4), rng)
    flutter = np.abs(_lowpass(rng.standard_normal(n), rng.uniform(8, 40))) + 0.2
    y = y * flutter
    return (y / rms(y)).astype(np.float32)


def impulses(n: int, rng: np.random.Generator, count: int) -> np.ndarray:
    """A few short decaying bursts (knocks, clicks, a dropped object); RMS over the clip is small."""
    y = np.zeros(n, np.float32)
    for _ in range(count):
        length = int(rng.uniform(0.005, 0.08) * SAMPLE_RATE)
        start = int(rng.integers(0, max(1, n - length)))
        burst = _lowpass(rng.standard_normal(length), rng.uniform(500, 7000)) * np.exp(-np.arange(length) / (length / 5))
        y[start : start + length] += (burst / max(float(np.abs(burst).max()), 1e-9) * rng.uniform(0.3, 1.0)).astype(np.float32)
    return y


def room_response(rt60: float, drr_db: float, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room impulse response: the direct path, then exponentially decaying noise.

    ``rt60``: seconds for the tail to fall by 60 dB; high frequencies decay faster (a darker
    copy of the tail with twice the RT60 is mixed in). ``drr_db``: direct-to-reverberant energy.
    """
    n = int(min(1.2 * rt60, 1.0) * SAMPLE_RATE) + 1
    t = np.arange(n) / SAMPLE_RATE
    predelay = int(rng.uniform(0.002, 0.015) * SAMPLE_RATE)
    bright = rng.standard_normal(n) * np.exp(-6.908 * t / (0.6 * rt60))
    dark = _lowpass(rng.standard_normal(n), 1500.0) * np.exp(-6.908 * t / rt60)
    tail = bright + 2.0 * dark
    tail[:predelay] = 0.0
    tail *= math.sqrt(10 ** (-drr_db / 10) / max(float(np.sum(tail**2)), 1e-12))
    tail[0] = 1.0
    return tail


def fft_convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``x`` convolved with ``h``, cut to the length of ``x``."""
    size = fast_length(x.size + h.size - 1)
    return np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(h, size), size)[: x.size]


def microphone(x: np.ndarray, eq_db: np.ndarray, highpass: float, lowpass: float) -> np.ndarray:
    """A microphone / channel response: a smooth EQ curve plus high and low cut."""
    size = fast_length(x.size)
    freqs = np.fft.rfftfreq(size, 1 / SAMPLE_RATE)
    points = np.geomspace(80, 7500, eq_db.size)
    gain_db = np.interp(np.log(np.maximum(freqs, 1.0)), np.log(points), eq_db)
    gain = 10 ** (gain_db / 20) / np.sqrt(1 + (highpass / np.maximum(freqs, 1.0)) ** 4) / np.sqrt(1 + (freqs / lowpass) ** 8)
    return np.fft.irfft(np.fft.rfft(x, size) * gain, size)[: x.size]
