"""`mast synth OUT`: realistic offline speech datasets, written in the published layouts.

The datasets are read by ``pipelines.data.layouts`` and ``mast ingest`` unchanged, so the demo and the
tests can run the whole method without downloading anything:

* ``OUT/speech_commands_synth/``: keyword spotting in the Speech Commands V2 layout, i.e. the 35
  V2 words as ``<word>/<speaker>_nohash_<n>.wav`` (1 s, 16 kHz mono, 16-bit), plus
  ``validation_list.txt``, ``testing_list.txt`` and ``_background_noise_/`` (long noise
  recordings, cut into the ``_silence_`` class by the 12-class reader).
* ``OUT/voxforge_synth/``: spoken language identification (de, en, es, fr, it, ru) in the
  VoxForge manifest layout: ``voxforge.csv`` (``path,language,split`` plus ``speaker``,
  ``sentence`` and ``text``) and ``audio/<speaker>/wav/s<sentence>.wav`` clips of 2 to 4 s, each
  a prompt of two sentences read on (cut to the clip). Every language speaks the same fixed
  sentences (:data:`SENTENCES`), so the text cannot give the label away.
* ``OUT/nsynth_synth/`` (optional, ``--tasks ...,instruments``): instrument families in the
  NSynth layout, ``nsynth-{train,valid,test}/examples.json`` + ``audio/<note_str>.wav`` (4 s, the
  key held 3 s), played by additive / modal models of the 11 families (plucked and struck partials
  with their own decays, piano inharmonicity, bar modes, drawbars, formants, vibrato, filter
  sweeps, breath / bow / hammer noise) and recorded in a small room. Instruments are disjoint
  across splits, as in NSynth.

Speech comes from espeak-ng (the ``espeakng-loader`` wheel ships the library and its voice data),
driven through ctypes and synthesised to memory. A *speaker* is a fixed combination of accent,
voice variant (m1..m8, f1..f5, klatt, named variants), base pitch, pitch range, speaking rate,
a vocal-tract shift (resampling, which moves pitch and formants together), a microphone
response, a room and a noise environment. Speakers are disjoint across train, validation and
test, and so are the voice variants they are built on.

Each clip then goes through a small acoustic simulation (numpy, seeded per clip): per-clip
pitch, rate and shift jitter, random placement in the clip, a synthetic room impulse response
(exponentially decaying noise with a random RT60 and direct-to-reverberant ratio, FFT
convolution), background noise at a random SNR (coloured noise, mains hum, fan, running water,
babble built from other synthesised speech, impulsive events), a microphone response (random
EQ, low and high cut), level jitter and a noise floor, so that no clip ever holds a run of
digital silence (a model must not be able to cheat on silence).

Determinism: the same settings give the same bytes, in any process and whatever ``--workers``
is. espeak-ng keeps hidden state between utterances, so clips are rendered in fixed-size jobs, each
in a process freshly forked from a parent that has initialised espeak but never spoken; its
random generator (breath noise; seeded from the clock at initialisation) is reseeded per job with
``espeak_ng_SetRandSeed``, and so is libc's ``rand``. Re-running with the same settings reuses a dataset whose ``synth.json``
stamp matches; any other folder content is replaced only if a previous ``mast synth`` wrote it.

Python: ``synthesize(out, SynthSettings(...), progress=print)`` returns, per dataset name (the
``pipelines.data.layouts`` name: ``speech_commands``, ``voxforge``, ``nsynth``), its path, clip counts
and seconds spent.
"""

# The modules, each importing only from those above it in this list: settings (what is asked,
# the fixed vocabulary), espeak (the ctypes binding, the voices), dsp (noise, rooms, microphones),
# timbres and instruments (the NSynth synthesis), plans (speakers, instruments, clips), render
# (the forked workers, the noise bank), datasets (the layouts' folders, stamps, synthesize).
from pipelines.data.layouts import NSYNTH_FAMILIES  # the family order of the NSynth reader (instrument_family index)
from pipelines.data.synth.datasets import synthesize
from pipelines.data.synth.settings import DEFAULT_TASKS, KEYWORDS, LANGUAGES, SENTENCES, TASKS, SynthError, SynthSettings, check_request

__all__ = [
    "DEFAULT_TASKS",
    "KEYWORDS",
    "LANGUAGES",
    "NSYNTH_FAMILIES",
    "SENTENCES",
    "TASKS",
    "SynthError",
    "SynthSettings",
    "check_request",
    "synthesize",
]
