"""Instruments of the NSynth layout: additive and modal synthesis of the 11 families, numpy only.

An instrument is a fixed set of timbre parameters drawn from its family's physics, loosely
(:mod:`pipelines.data.synth.timbres`). :func:`play_note` plays one note dry: plucked and struck
partials with their own decays, piano inharmonicity, bar modes, drawbars, formants, vibrato,
filter sweeps, breath / bow / hammer noise; :func:`record_note` records it in a small room.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipelines.data.synth.dsp import coloured_noise, fast_length, fft_convolve, microphone, rms, room_response
from pipelines.data.synth.settings import SAMPLE_RATE

NSYNTH_SOURCES = ("acoustic", "electronic", "synthetic")
NSYNTH_FOLDERS = {"train": "nsynth-train", "validation": "nsynth-valid", "test": "nsynth-test"}
NSYNTH_VELOCITIES = (25, 50, 75, 100, 127)
# family -> (lowest, highest MIDI pitch, the sources it comes in): the ranges of the real instruments
FAMILIES = {
    "bass": (28, 60, (0, 1, 2)), "brass": (40, 82, (0, 2)), "flute": (60, 96, (0, 2)), "guitar": (40, 84, (0, 1)),
    "keyboard": (28, 96, (0, 1, 2)), "mallet": (48, 96, (0, 1)), "organ": (36, 96, (1,)), "reed": (45, 88, (0, 2)),
    "string": (36, 96, (0,)), "synth_lead": (40, 96, (2,)), "vocal": (48, 79, (0, 2)),
}  # fmt: skip
NOTE_SECONDS, NOTE_OFF = 4.0, 3.0  # NSynth: 4 s clips, the key held for 3 s


@dataclass(frozen=True)
class Instrument:
    """One synthetic instrument: a family, a source and fixed timbre parameters."""

    name: str  # NSynth instrument_str, e.g. guitar_acoustic_003
    index: int  # NSynth instrument id
    family: str
    source: str
    split: str
    params: dict[str, Any] = field(hash=False, compare=False)


# ---------------------------------------------------------------------------------------------
# Playing and recording a note
# ---------------------------------------------------------------------------------------------


def _adsr(t: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    attack = np.clip(t / max(p["attack"], 1e-3), 0, 1)
    held = p["sustain"] + (1 - p["sustain"]) * np.exp(-np.maximum(t - p["attack"], 0) / p["decay"])
    release = np.exp(-np.maximum(t - NOTE_OFF, 0) / p["release"])
    return attack * held * release


def _series(p: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Frequency ratios of the partials to f0 and their gains before the spectral tilt."""
    if p["ratios"] is not None:
        ratios = np.asarray(p["ratios"], dtype=np.float64)
        gains = np.asarray(p.get("gains", np.ones(ratios.size)))
    else:
        k = np.arange(1, p["partials"] + 1, dtype=np.float64)
        ratios = k * np.sqrt(1 + p["inharmonic"] * k**2)
        gains = np.where(k % 2 == 0, p["even"], 1.0)
        if p["pluck"]:
            gains = gains * np.abs(np.sin(np.pi * k * p["pluck"])) + 0.02
    return ratios, gains


def _partials(
    p: dict[str, Any],
    ratios: np.ndarray,
    gains: np.ndarray,
    tilt: float,
    f0: float,
    v: float,
    t: np.ndarray,
    phase: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """The sum of the partials, each with its body gain, own decay and the filter sweep."""
    n = t.size
    cutoff = None
    if p["filter"] is not None:
        start, end, tau = p["filter"]
        cutoff = end + (start * (0.5 + v) - end) * np.exp(-t / tau)
    y = np.zeros(n)
    amplitudes = []
    for ratio, gain in zip(ratios, gains):
        frequency = ratio * f0
        body = p["baseline_db"] + sum(g * math.exp(-0.5 * (math.log2(frequency / fc) / w) ** 2) for fc, w, g in p["body"])
        amplitudes.append(gain * ratio ** (-tilt) * 10 ** (body / 20) if frequency < 7600 else 0.0)
    loudest = max(amplitudes)
    for index, (ratio, amplitude) in enumerate(zip(ratios, amplitudes)):
        if amplitude < 1e-3 * loudest:  # below -60 dB of the loudest partial: inaudible, skipped
            continue
        length = n
        if math.isfinite(p["tau"]):
            tau = p["tau"] / (1 + p["tau_slope"] * index) * (440 / f0) ** 0.3
            length = min(n, int(tau * 9.3 * SAMPLE_RATE) + 1)  # until it has decayed by 80 dB
        partial = np.sin(ratio * phase[:length] + rng.uniform(0, 2 * np.pi))
        if math.isfinite(p["tau"]):
            partial *= np.exp(-t[:length] / tau)
        if cutoff is not None:
            partial *= 1 / np.sqrt(1 + (ratio * f0 / cutoff[:length]) ** 4)
        y[:length] += amplitude * partial
    return y


def _noise(p: dict[str, Any], t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The instrument's noise (hammer, breath, bow): a band of Gaussian noise at its level."""
    n = t.size
    noise = rng.standard_normal(n)
    size = fast_length(n)
    freqs = np.maximum(np.fft.rfftfreq(size, 1 / SAMPLE_RATE), 1.0)
    shape = np.exp(-0.5 * (np.log2(freqs / p["noise_hz"]) / p["noise_oct"]) ** 2)
    noise = np.fft.irfft(np.fft.rfft(noise, size) * shape, size)[:n]
    envelope = np.exp(-t / p["noise_tau"]) if math.isfinite(p["noise_tau"]) else _adsr(t, p)
    return 3 * p["noise"] * noise / max(rms(noise), 1e-9) * envelope


def play_note(p: dict[str, Any], pitch: int, velocity: int, rng: np.random.Generator) -> np.ndarray:
    """One note, dry, at 16 kHz: partials with their own decays, body resonances, vibrato,
    a filter sweep where the instrument has one, and its noise (hammer, breath, bow)."""
    n = int(NOTE_SECONDS * SAMPLE_RATE)
    t = np.arange(n, dtype=np.float64) / SAMPLE_RATE
    f0 = 440.0 * 2 ** ((pitch - 69) / 12) * (1 + rng.normal(0, p["tuning"]))
    v = velocity / 127
    ramp = np.clip((t - p["vib_delay"]) / 0.3, 0, 1)
    wobble = p["vib_depth"] * ramp * np.sin(2 * np.pi * p["vib_rate"] * t + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * f0 * np.cumsum(1 + wobble) / SAMPLE_RATE
    tilt = p["tilt"] * (1 - p["bright_velocity"] * (v - 0.5))
    ratios, gains = _series(p)
    y = _partials(p, ratios, gains, tilt, f0, v, t, phase, rng)
    for detune in p["detune"][1:]:  # unison voices of synths: the same partials, slightly off pitch
        y += sum(
            gains[i] * ratios[i] ** (-tilt) * np.sin(ratios[i] * phase * (1 + detune) + rng.uniform(0, 2 * np.pi))
            for i in range(min(len(ratios), 12))
            if ratios[i] * f0 < 7600
        )
    if p["tremolo"]:
        y *= 1 + p["tremolo"] * np.sin(2 * np.pi * rng.uniform(4, 7) * t)
    if p["drive"]:
        y = np.tanh(p["drive"] * y / max(float(np.abs(y).max()), 1e-9))
    y *= _adsr(t, p)
    y /= max(rms(y[: int(NOTE_OFF * SAMPLE_RATE)]), 1e-9)
    if p["noise"]:
        y += _noise(p, t, rng)
    return (y * v**1.5).astype(np.float32)


def record_note(dry: np.ndarray, instrument: Instrument, rng: np.random.Generator) -> np.ndarray:
    """A studio recording of a note: small room, microphone, a faint noise floor; int16."""
    p = instrument.params
    n = dry.size
    onset = int(rng.uniform(0, 0.01) * SAMPLE_RATE)
    x = np.concatenate([np.zeros(onset), dry[: n - onset]])
    x = fft_convolve(x, room_response(p["rt60"] * np.exp(rng.normal(0, 0.1)), p["drr_db"], rng))
    x = microphone(x, np.asarray(p["eq_db"]), 30.0, 9000.0)
    x *= 10 ** ((p["level_db"] + rng.normal(0, 1.5)) / 20)  # the note is unit RMS at full velocity
    peak = float(np.abs(x).max())
    if peak > 0.95:
        x *= 0.95 / peak
    x += coloured_noise(n, rng.uniform(0, 1.5), rng) * 10 ** (rng.uniform(-80, -68) / 20)  # >= 3 LSB RMS
    return np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)
