"""Rendering in forked workers: the acoustic scene of each clip, the job runner and the noise bank.

espeak-ng keeps hidden state between utterances, so clips are rendered in fixed-size jobs
(:data:`JOB_CLIPS`), each in a process freshly forked from a parent that has initialised espeak
but never spoken, and espeak's and libc's generators are reseeded per job: the output does not
depend on the number of workers.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from pipelines.data.synth.dsp import (
    NOISE_KINDS,
    coloured_noise,
    fan_noise,
    fft_convolve,
    impulses,
    mains_hum,
    microphone,
    resample,
    rms,
    room_response,
    running_water,
    trim,
)
from pipelines.data.synth.espeak import ACCENTS, VARIANTS, Espeak, espeak
from pipelines.data.synth.instruments import Instrument, play_note, record_note
from pipelines.data.synth.plans import ClipSpec, Speaker
from pipelines.data.synth.settings import BABBLE_STREAMS, BANK_SECONDS, JOB_CLIPS, LANGUAGES, SAMPLE_RATE, SENTENCES, SynthError

# Set in the parent before workers are forked; the workers read it (copy-on-write, no pickling).
_CONTEXT: dict[str, Any] = {}


def _speak(engine: Espeak, speaker: Speaker, text: str, rng: np.random.Generator, punctuate: bool) -> np.ndarray:
    """The dry utterance at 16 kHz, with per-clip pitch, rate and shift jitter."""
    if punctuate:  # a keyword said as a statement, an exclamation or a question
        text += str(rng.choice(["", ".", "!", "?"], p=[0.4, 0.3, 0.15, 0.15]))
    raw = engine.say(
        speaker.voice,
        text,
        rate=int(np.clip(speaker.rate * np.exp(rng.normal(0, 0.08)), 80, 400)),
        pitch=int(np.clip(speaker.pitch + rng.normal(0, 6), 0, 100)),
        range_=int(np.clip(speaker.range + rng.normal(0, 8), 0, 100)),
        wordgap=speaker.wordgap,
    )
    dry = trim(raw)
    if dry.size == 0:
        raise SynthError(f"espeak-ng gave silence for {text!r} with voice {speaker.voice!r}")
    shift = speaker.shift * np.exp(rng.normal(0, 0.02))
    return resample(dry, engine.sample_rate * shift)


def _background(n: int, speaker: Speaker, rng: np.random.Generator, bank: dict[str, np.ndarray]) -> np.ndarray:
    """Unit-RMS background: the speaker's usual environment from the bank, fresh coloured noise
    and sometimes a few impulsive events."""
    kind = NOISE_KINDS[int(rng.choice(len(NOISE_KINDS), p=np.asarray(speaker.noise) / sum(speaker.noise)))]
    source = bank[kind]
    start = int(rng.integers(0, source.size - n)) if source.size > n else 0
    y = np.resize(source[start : start + n], n).astype(np.float64)
    y = y / max(rms(y), 1e-9) + rng.uniform(0, 1.0) * coloured_noise(n, rng.uniform(-0.5, 2.0), rng)
    if rng.random() < 0.2:
        y += impulses(n, rng, int(rng.integers(1, 4))) * rng.uniform(2, 8) * rms(y)
    return y / max(rms(y), 1e-9)


def render(dry: np.ndarray, n: int, speaker: Speaker, rng: np.random.Generator, bank: dict[str, np.ndarray]) -> np.ndarray:
    """Place an utterance in an ``n``-sample scene and record it: room, noise, microphone, level.

    Returns int16 samples. Every sample carries at least a noise floor (-74..-62 dBFS), so no
    clip has digital silence anywhere.
    """
    if dry.size > n:  # longer than the clip: a random window of it, faded at the cut
        start = int(rng.integers(0, dry.size - n + 1))
        dry = dry[start : start + n].copy()
        fade = np.linspace(0, 1, 80, dtype=np.float32)
        dry[:80] *= fade
        dry[-80:] *= fade[::-1]
    offset = int(rng.integers(0, n - dry.size + 1))
    scene = np.zeros(n)
    scene[offset : offset + dry.size] = dry
    rt60 = float(np.clip(speaker.rt60 * np.exp(rng.normal(0, 0.15)), 0.05, 1.5))
    wet = fft_convolve(scene, room_response(rt60, speaker.drr_db + rng.normal(0, 2), rng))
    speech_level = rms(wet[offset : offset + dry.size])
    snr = speaker.snr_db + rng.normal(0, 4)
    mix = wet + _background(n, speaker, rng, bank) * speech_level * 10 ** (-snr / 20)
    eq = np.asarray(speaker.eq_db) + rng.normal(0, 1.0, len(speaker.eq_db))
    mix = microphone(mix, eq, speaker.highpass, speaker.lowpass)
    mix *= 10 ** ((speaker.level_db + rng.normal(0, 3)) / 20) / max(rms(mix), 1e-12)
    peak = float(np.abs(mix).max())
    if peak > 0.95:
        mix *= 0.95 / peak
    mix += rng.standard_normal(n) * 10 ** (rng.uniform(-74, -62) / 20)
    return np.clip(np.round(mix * 32767), -32768, 32767).astype(np.int16)


def _write_clip(path: Path, samples: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, SAMPLE_RATE, subtype="PCM_16")


def _render_job(job: tuple[int, list[ClipSpec]]) -> list[tuple[str, float]]:
    """Render and write one job's clips (in a forked worker); returns (relative path, seconds)."""
    number, specs = job
    root, speakers, bank, punctuate = (_CONTEXT[k] for k in ("root", "speakers", "bank", "punctuate"))
    engine = espeak()
    engine.seed(number + 7919 * _CONTEXT["seed"])
    written = []
    for spec in specs:
        rng = np.random.default_rng(list(spec.key))
        speaker = speakers[spec.speaker]
        dry = _speak(engine, speaker, spec.text, rng, punctuate)
        n = int(round(spec.seconds * SAMPLE_RATE))
        samples = render(dry, n, speaker, rng, bank)
        _write_clip(root / spec.rel, samples)
        written.append((spec.rel, n / SAMPLE_RATE))
    return written


def _render_notes(job: tuple[int, list[ClipSpec]]) -> list[tuple[str, float]]:
    """Play, record and write one job's notes (in a forked worker); returns (relative path, seconds)."""
    _, specs = job
    root, instruments = _CONTEXT["root"], _CONTEXT["speakers"]
    written = []
    for spec in specs:
        rng = np.random.default_rng(list(spec.key))
        instrument = instruments[spec.speaker]
        pitch, velocity = (int(part) for part in spec.text.rsplit("-", 2)[1:])
        samples = record_note(play_note(instrument.params, pitch, velocity, rng), instrument, rng)
        _write_clip(root / spec.rel, samples)
        written.append((spec.rel, samples.size / SAMPLE_RATE))
    return written


def _babble_stream(job: tuple[int, int]) -> np.ndarray:
    """One talker of the babble recording: random voices and languages, back to back."""
    number, seed = job
    engine = espeak()
    engine.seed(seed * 104729 + number)
    rng = np.random.default_rng([seed, 9, number])
    n = int(BANK_SECONDS * SAMPLE_RATE)
    out = np.zeros(n + SAMPLE_RATE * 8)
    position = int(rng.integers(0, SAMPLE_RATE))
    while position < n:
        language = LANGUAGES[int(rng.integers(len(LANGUAGES)))]
        text = SENTENCES[int(rng.integers(len(SENTENCES)))][language]
        raw = engine.say(
            f"{rng.choice(ACCENTS[language])}+{rng.choice(VARIANTS)}",
            text,
            rate=int(rng.integers(130, 260)),
            pitch=int(rng.integers(10, 90)),
            range_=int(rng.integers(20, 90)),
        )
        dry = resample(trim(raw), engine.sample_rate * float(np.exp(rng.uniform(-0.15, 0.15))))
        dry = dry[: out.size - position] * 10 ** (rng.uniform(-6, 0) / 20) / max(rms(dry), 1e-9)
        out[position : position + dry.size] += dry
        position += dry.size + int(rng.uniform(0.05, 0.6) * SAMPLE_RATE)
    return out[:n].astype(np.float32)


def _call(item: tuple[Callable, int, Any]) -> tuple[int, Any]:
    function, index, job = item
    return index, function(job)


def _run_jobs(function: Callable, jobs: list, workers: int, done: Callable[[Any], None]) -> list:
    """Run ``function`` on each job, each in a freshly forked process; results in job order.

    ``maxtasksperchild=1`` makes the pool fork a new worker from this (the parent) process for
    every job, so each job starts from the parent's pristine espeak-ng state.
    """
    try:
        context = multiprocessing.get_context("fork")
    except ValueError:
        raise SynthError("mast synth needs the 'fork' start method (Linux or macOS)") from None
    results: list[Any] = [None] * len(jobs)
    with context.Pool(min(workers, max(1, len(jobs))), maxtasksperchild=1) as pool:
        for index, value in pool.imap_unordered(_call, [(function, i, job) for i, job in enumerate(jobs)]):
            results[index] = value
            done(value)
    return results


def render_clips(
    task: str,
    folder: Path,
    speakers: list[Speaker] | list[Instrument],
    clips: list[ClipSpec],
    bank: dict[str, np.ndarray],
    seed: int,
    workers: int,
    done: Callable[[list], None],
) -> list[tuple[str, float]]:
    """Render and write every clip of a task under ``folder``, in forked jobs of JOB_CLIPS clips.

    Returns (relative path, seconds) per clip, in clip order; ``done`` is called with each job's
    list as it finishes. The espeak-ng of this process must be initialised before (see
    :func:`espeak`), so that every worker is forked with it.
    """
    _CONTEXT.clear()
    _CONTEXT.update(root=folder, speakers=speakers, bank=bank, punctuate=task == "keywords", seed=seed)
    jobs = [(i, clips[start : start + JOB_CLIPS]) for i, start in enumerate(range(0, len(clips), JOB_CLIPS))]
    try:
        render_job = _render_notes if task == "instruments" else _render_job
        return [item for result in _run_jobs(render_job, jobs, workers, done) for item in result]
    finally:
        _CONTEXT.clear()


def noise_bank(seed: int, task_id: int, workers: int) -> dict[str, np.ndarray]:
    """The background recordings of a dataset, BANK_SECONDS each, unit RMS (babble via espeak)."""
    n = int(BANK_SECONDS * SAMPLE_RATE)
    streams = _run_jobs(_babble_stream, [(i, seed * 10 + task_id) for i in range(BABBLE_STREAMS)], workers, lambda _: None)
    rng = np.random.default_rng([seed, task_id, 5])
    bank = {
        "white_noise": coloured_noise(n, 0.0, rng),
        "pink_noise": coloured_noise(n, 1.0, rng),
        "brown_noise": coloured_noise(n, 2.0, rng),
        "mains_hum": mains_hum(n, rng),
        "fan": fan_noise(n, rng),
        "running_water": running_water(n, rng),
        "babble": np.sum(streams, axis=0),
    }
    return {kind: (x / max(rms(x), 1e-9)).astype(np.float32) for kind, x in bank.items()}


def write_bank(folder: Path, bank: dict[str, np.ndarray], rng: np.random.Generator) -> None:
    """The bank as 16-bit recordings, each at a random level (-30 to -18 dB) over a faint noise floor."""
    folder.mkdir(parents=True, exist_ok=True)
    for kind, x in bank.items():
        level = x * 10 ** (rng.uniform(-30, -18) / 20)
        level = level * min(1.0, 0.95 / max(float(np.abs(level).max()), 1e-9))
        level = level + rng.standard_normal(level.size) * 10 ** (-70 / 20)
        sf.write(folder / f"{kind}.wav", np.clip(np.round(level * 32767), -32768, 32767).astype(np.int16), SAMPLE_RATE, subtype="PCM_16")
