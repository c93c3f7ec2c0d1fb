"""Who says or plays what: the speakers and instruments of each task and the clips of each layout.

Everything here is drawn from generators seeded by the settings alone, so a plan is the same in
any process. Speakers are disjoint across train, validation and test, and so are the voice
variants they are built on; instruments are disjoint across splits, as in NSynth.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipelines.data.layouts import NSYNTH_FAMILIES  # the family order of the NSynth reader (instrument_family index)
from pipelines.data.synth.dsp import NOISE_KINDS
from pipelines.data.synth.espeak import ACCENTS, VARIANTS
from pipelines.data.synth.instruments import (
    FAMILIES,
    NOTE_SECONDS,
    NSYNTH_FOLDERS,
    NSYNTH_SOURCES,
    NSYNTH_VELOCITIES,
    Instrument,
)
from pipelines.data.synth.settings import (
    INSTRUMENT_SPLITS,
    KEYWORD_SPLITS,
    KEYWORDS,
    LANGUAGE_SPLITS,
    LANGUAGES,
    SENTENCES,
    SPLITS,
    TASKS,
    SynthSettings,
)
from pipelines.data.synth.timbres import instrument_params


@dataclass(frozen=True)
class Speaker:
    id: str
    split: str
    language: str
    accent: str  # espeak-ng language voice
    variant: str  # espeak-ng voice variant
    pitch: int  # espeak-ng pitch 0..100
    range: int  # espeak-ng pitch range 0..100
    rate: int  # words per minute
    wordgap: int  # extra pause between words, 10 ms units
    shift: float  # vocal-tract / pitch shift by resampling (> 1: smaller, higher voice)
    level_db: float  # clip RMS, dBFS
    snr_db: float  # speech-to-background ratio
    rt60: float  # room reverberation time, s
    drr_db: float  # direct-to-reverberant ratio
    eq_db: tuple[float, ...]
    highpass: float
    lowpass: float
    noise: tuple[float, ...]  # preference for each background in NOISE_KINDS

    @property
    def voice(self) -> str:
        return f"{self.accent}+{self.variant}"


@dataclass(frozen=True)
class ClipSpec:
    rel: str  # path relative to the dataset folder
    speaker: int  # index into the task's speakers
    text: str
    seconds: float  # clip length
    key: tuple[int, ...]  # seeds the clip's randomness


def _speaker_hash(seed: int, task: str, index: int, taken: set[str]) -> str:
    """A speaker id as in Speech Commands (8 hex digits), unique within the task."""
    salt = 0
    while True:
        value = hashlib.sha1(f"{seed}/{task}/{index}/{salt}".encode()).hexdigest()[:8]
        if value not in taken:
            taken.add(value)
            return value
        salt += 1


def split_counts(total: int, fractions: dict[str, float]) -> dict[str, int]:
    """How many of ``total`` go to each split: validation and test at least one each."""
    held = {s: max(1, round(total * fractions[s])) for s in ("validation", "test")}
    return {"train": total - sum(held.values()), **held}


def _variant_pools(rng: np.random.Generator, fractions: dict[str, float]) -> dict[str, list[str]]:
    """The voice variants of each split: a random partition, in proportion to the split."""
    order = [VARIANTS[i] for i in rng.permutation(len(VARIANTS))]
    held = {split: max(1, round(len(VARIANTS) * fractions[split])) for split in ("validation", "test")}
    return {
        "validation": order[: held["validation"]],
        "test": order[held["validation"] : held["validation"] + held["test"]],
        "train": order[held["validation"] + held["test"] :],
    }


def _draw_speaker(
    id_: str, split: str, language: str, variants: Sequence[str], rate_range: tuple[float, float], r: np.random.Generator
) -> Speaker:
    """One speaker's voice, room, noise and microphone, drawn from the speaker's own generator."""
    return Speaker(
        id=id_,
        split=split,
        language=language,
        accent=str(r.choice(ACCENTS[language])),
        variant=str(r.choice(variants)),
        pitch=int(r.integers(10, 91)),
        range=int(r.integers(15, 96)),
        rate=int(r.uniform(*rate_range)),
        wordgap=int(r.choice([0, 0, 0, 1, 2, 4])),
        shift=float(np.exp(r.uniform(np.log(0.85), np.log(1.18)))),
        level_db=float(r.uniform(-38, -16)),
        snr_db=float(r.uniform(5, 40)),
        rt60=float(np.exp(r.uniform(np.log(0.1), np.log(0.8)))),
        drr_db=float(r.uniform(0, 15)),
        eq_db=tuple(float(v) for v in r.normal(0, 4.0, 8)),
        highpass=float(np.exp(r.uniform(np.log(40), np.log(300)))),
        lowpass=float(r.uniform(3400, 7800) if r.random() < 0.35 else 9000.0),
        noise=tuple(float(v) for v in r.dirichlet(np.full(len(NOISE_KINDS), 0.5))),
    )


def make_speakers(
    task: str, languages: Sequence[str], per_language: int, seed: int, fractions: dict[str, float], rate_range: tuple[float, float]
) -> list[Speaker]:
    """``per_language`` speakers of each language, split by ``fractions``.

    Voice variants are partitioned between the splits first, so a test speaker is never built
    on a variant heard in training; accents are shared (they are the language's dialects).
    """
    task_id = TASKS.index(task)
    rng = np.random.default_rng([seed, task_id, 0])
    counts = split_counts(per_language, fractions)
    pools = _variant_pools(rng, fractions)
    speakers: list[Speaker] = []
    taken: set[str] = set()
    for language in languages:
        for split in SPLITS:
            for _ in range(counts[split]):
                index = len(speakers)
                r = np.random.default_rng([seed, task_id, 1, index])
                speakers.append(_draw_speaker(_speaker_hash(seed, task, index, taken), split, language, pools[split], rate_range, r))
    return speakers


def keyword_plan(settings: SynthSettings) -> tuple[list[Speaker], list[ClipSpec]]:
    """Speakers and clips of the keyword set: clip k of word w is said by speaker (k + w) mod S."""
    speakers = make_speakers("keywords", ["en"], settings.keyword_speakers, settings.seed, KEYWORD_SPLITS, (80, 150))
    clips: list[ClipSpec] = []
    for w, word in enumerate(KEYWORDS):
        said: Counter[int] = Counter()
        for k in range(settings.clips_per_word):
            s = (k + w) % len(speakers)
            rel = f"{word}/{speakers[s].id}_nohash_{said[s]}.wav"
            said[s] += 1
            clips.append(ClipSpec(rel, s, word, 1.0, (settings.seed, 0, 2, w, k)))
    return speakers, clips


def language_plan(settings: SynthSettings) -> tuple[list[Speaker], list[ClipSpec]]:
    """Speakers and clips of the language set: each speaker reads ``clips_per_speaker`` prompts.

    A prompt is a sentence followed by a second one (read on, as from a prompt sheet), so that
    speech fills most of the 2 to 4 s clip; the clip length is drawn independently of the
    language and the text, and a prompt longer than the clip is cut to a random window of it.
    """
    speakers = make_speakers("languages", LANGUAGES, settings.language_speakers, settings.seed, LANGUAGE_SPLITS, (110, 200))
    clips: list[ClipSpec] = []
    for s, speaker in enumerate(speakers):
        r = np.random.default_rng([settings.seed, 1, 3, s])
        chosen = sorted(r.choice(settings.sentences, settings.clips_per_speaker, replace=False).tolist())
        for sentence in chosen:
            seconds = round(float(r.uniform(2.0, 4.0)), 3)
            then = int(r.integers(settings.sentences - 1)) if settings.sentences > 1 else 0
            then += then >= sentence and settings.sentences > 1  # any other sentence
            text = SENTENCES[sentence][speaker.language]
            if settings.sentences > 1:
                text += " " + SENTENCES[then][speaker.language]
            rel = f"audio/{speaker.id}/wav/s{sentence:02d}.wav"
            clips.append(ClipSpec(rel, s, text, seconds, (settings.seed, 1, 4, s, sentence)))
    return speakers, clips


def make_instruments(settings: SynthSettings) -> list[Instrument]:
    """``instruments_per_family`` instruments of every family, split 70/15/15 within the family."""
    counts = split_counts(settings.instruments_per_family, INSTRUMENT_SPLITS)
    instruments: list[Instrument] = []
    for family in NSYNTH_FAMILIES:
        for split in SPLITS:
            for _ in range(counts[split]):
                index = len(instruments)
                r = np.random.default_rng([settings.seed, 2, 1, index])
                source = NSYNTH_SOURCES[int(r.choice(FAMILIES[family][2]))]
                number = sum(1 for i in instruments if i.family == family and i.source == source)
                instruments.append(
                    Instrument(f"{family}_{source}_{number:03d}", index, family, source, split, instrument_params(family, source, r))
                )
    return instruments


def instrument_plan(settings: SynthSettings) -> tuple[list[Instrument], list[ClipSpec]]:
    """Each instrument plays ``notes_per_instrument`` distinct (pitch, velocity) notes in its range."""
    instruments = make_instruments(settings)
    clips: list[ClipSpec] = []
    for instrument in instruments:
        low, high = FAMILIES[instrument.family][:2]
        r = np.random.default_rng([settings.seed, 2, 2, instrument.index])
        pairs = [(pitch, velocity) for pitch in range(low, high + 1) for velocity in NSYNTH_VELOCITIES]
        for choice in sorted(r.choice(len(pairs), settings.notes_per_instrument, replace=False).tolist()):
            pitch, velocity = pairs[choice]
            note = f"{instrument.name}-{pitch:03d}-{velocity:03d}"
            rel = f"{NSYNTH_FOLDERS[instrument.split]}/audio/{note}.wav"
            clips.append(ClipSpec(rel, instrument.index, note, NOTE_SECONDS, (settings.seed, 2, 3, instrument.index, choice)))
    return instruments, clips


PLAN_OF_TASK = {"keywords": keyword_plan, "languages": language_plan, "instruments": instrument_plan}
