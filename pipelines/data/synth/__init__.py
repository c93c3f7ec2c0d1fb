"""`mast synth OUT`: realistic offline speech datasets, written in the published layouts.

The datasets are read by ``pipelines.layouts`` and ``mast ingest`` unchanged, so the demo and the
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
``pipelines.layouts`` name: ``speech_commands``, ``voxforge``, ``nsynth``), its path, clip counts
and seconds spent.
"""

from __future__ import annotations

import csv
import ctypes
import hashlib
import io
import json
import math
import multiprocessing
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from pipelines.data.layouts import NSYNTH_FAMILIES  # the family order of the NSynth reader (instrument_family index)

SAMPLE_RATE = 16_000
FORMAT_VERSION = 1
STAMP_FILE = "synth.json"
PARTIAL_MARK = ".synth-partial"
TASKS = ("keywords", "languages", "instruments")
DEFAULT_TASKS = ("keywords", "languages")
DATASET_OF_TASK = {"keywords": "speech_commands", "languages": "voxforge", "instruments": "nsynth"}
FOLDER_OF_TASK = {"keywords": "speech_commands_synth", "languages": "voxforge_synth", "instruments": "nsynth_synth"}
JOB_CLIPS = 32            # clips per forked job: fixed, so the output does not depend on --workers
BANK_SECONDS = 30.0       # length of each background-noise recording
BABBLE_STREAMS = 6        # talkers summed into the babble recording
KEYWORD_SPLITS = {"train": 0.8, "validation": 0.1, "test": 0.1}   # Speech Commands' own ratio
LANGUAGE_SPLITS = {"train": 0.7, "validation": 0.15, "test": 0.15}
INSTRUMENT_SPLITS = {"train": 0.7, "validation": 0.15, "test": 0.15}
SPLITS = ("train", "validation", "test")

# The 35 Speech Commands V2 words (the 10 commands first, as in the paper's 12-class task).
KEYWORDS = (
    "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow",
    "backward", "forward", "follow", "learn", "visual",
)
LANGUAGES = ("en", "de", "fr", "es", "it", "ru")
# espeak-ng voices per language: the accents a speaker of that language may have.
ACCENTS = {
    "en": ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd"),
    "de": ("de",),
    "fr": ("fr", "fr-be", "fr-ch"),
    "es": ("es", "es-419"),
    "it": ("it",),
    "ru": ("ru", "ru-cl", "ru-lv"),
}
# espeak-ng voice variants (espeak-ng-data/voices/!v). Effect voices (robots, croak, demonic,
# whisper) are left out: they are not how people sound.
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "klatt", "klatt2", "klatt3", "klatt4",
    "Alex", "Alicia", "Andrea", "Andy", "Annie", "Denis", "Diogo", "Gene", "Henrique", "Hugo",
    "Jacky", "Lee", "Marco", "Mario", "Michael", "Mike", "Nguyen", "Reed", "adam", "anika",
    "antonio", "aunty", "belinda", "benjamin", "boris", "caleb", "david", "ed", "edward",
    "grandma", "grandpa", "gustave", "ian", "iven", "john", "linda", "marcelo", "max", "michel",
    "miguel", "norbert", "pablo", "paul", "pedro", "quincy", "rob", "robert", "sandro", "shelby",
    "steph", "travis", "victor", "zac",
)

# One fixed set of short sentences, the same meaning in every language (ru in Cyrillic).
SENTENCES: tuple[dict[str, str], ...] = (
    {"en": "The weather is nice today.", "de": "Das Wetter ist heute schön.", "fr": "Il fait beau aujourd'hui.",
     "es": "Hoy hace buen tiempo.", "it": "Oggi il tempo è bello.", "ru": "Сегодня хорошая погода."},
    {"en": "Where is the train station?", "de": "Wo ist der Bahnhof?", "fr": "Où est la gare ?",
     "es": "¿Dónde está la estación de tren?", "it": "Dov'è la stazione?", "ru": "Где находится вокзал?"},
    {"en": "I would like a cup of coffee.", "de": "Ich hätte gern eine Tasse Kaffee.", "fr": "Je voudrais une tasse de café.",
     "es": "Quisiera una taza de café.", "it": "Vorrei una tazza di caffè.", "ru": "Я хотел бы чашку кофе."},
    {"en": "My brother lives in a small town.", "de": "Mein Bruder wohnt in einer kleinen Stadt.",
     "fr": "Mon frère habite dans une petite ville.", "es": "Mi hermano vive en un pueblo pequeño.",
     "it": "Mio fratello vive in una piccola città.", "ru": "Мой брат живёт в маленьком городе."},
    {"en": "The children are playing in the garden.", "de": "Die Kinder spielen im Garten.",
     "fr": "Les enfants jouent dans le jardin.", "es": "Los niños juegan en el jardín.",
     "it": "I bambini giocano in giardino.", "ru": "Дети играют в саду."},
    {"en": "Please close the window.", "de": "Bitte schließ das Fenster.", "fr": "Ferme la fenêtre, s'il te plaît.",
     "es": "Cierra la ventana, por favor.", "it": "Chiudi la finestra, per favore.", "ru": "Пожалуйста, закрой окно."},
    {"en": "We are going to the market tomorrow.", "de": "Wir gehen morgen auf den Markt.",
     "fr": "Nous allons au marché demain.", "es": "Mañana vamos al mercado.", "it": "Domani andiamo al mercato.",
     "ru": "Завтра мы идём на рынок."},
    {"en": "How much does this book cost?", "de": "Wie viel kostet dieses Buch?", "fr": "Combien coûte ce livre ?",
     "es": "¿Cuánto cuesta este libro?", "it": "Quanto costa questo libro?", "ru": "Сколько стоит эта книга?"},
    {"en": "The dog is sleeping under the table.", "de": "Der Hund schläft unter dem Tisch.",
     "fr": "Le chien dort sous la table.", "es": "El perro duerme debajo de la mesa.",
     "it": "Il cane dorme sotto il tavolo.", "ru": "Собака спит под столом."},
    {"en": "I read the newspaper every morning.", "de": "Ich lese jeden Morgen die Zeitung.",
     "fr": "Je lis le journal chaque matin.", "es": "Leo el periódico cada mañana.",
     "it": "Leggo il giornale ogni mattina.", "ru": "Я читаю газету каждое утро."},
    {"en": "She works at the hospital.", "de": "Sie arbeitet im Krankenhaus.", "fr": "Elle travaille à l'hôpital.",
     "es": "Ella trabaja en el hospital.", "it": "Lei lavora all'ospedale.", "ru": "Она работает в больнице."},
    {"en": "The museum opens at nine o'clock.", "de": "Das Museum öffnet um neun Uhr.",
     "fr": "Le musée ouvre à neuf heures.", "es": "El museo abre a las nueve.", "it": "Il museo apre alle nove.",
     "ru": "Музей открывается в девять часов."},
    {"en": "Can you help me, please?", "de": "Kannst du mir bitte helfen?", "fr": "Peux-tu m'aider, s'il te plaît ?",
     "es": "¿Puedes ayudarme, por favor?", "it": "Puoi aiutarmi, per favore?", "ru": "Ты можешь мне помочь, пожалуйста?"},
    {"en": "Our house has a red door.", "de": "Unser Haus hat eine rote Tür.", "fr": "Notre maison a une porte rouge.",
     "es": "Nuestra casa tiene una puerta roja.", "it": "La nostra casa ha una porta rossa.",
     "ru": "У нашего дома красная дверь."},
    {"en": "It is raining again this evening.", "de": "Heute Abend regnet es wieder.", "fr": "Il pleut encore ce soir.",
     "es": "Esta tarde vuelve a llover.", "it": "Stasera piove di nuovo.", "ru": "Сегодня вечером опять идёт дождь."},
    {"en": "I have lost my keys.", "de": "Ich habe meine Schlüssel verloren.", "fr": "J'ai perdu mes clés.",
     "es": "He perdido mis llaves.", "it": "Ho perso le chiavi.", "ru": "Я потерял ключи."},
    {"en": "The soup is too hot.", "de": "Die Suppe ist zu heiß.", "fr": "La soupe est trop chaude.",
     "es": "La sopa está demasiado caliente.", "it": "La zuppa è troppo calda.", "ru": "Суп слишком горячий."},
    {"en": "My friends are coming for dinner.", "de": "Meine Freunde kommen zum Abendessen.",
     "fr": "Mes amis viennent dîner.", "es": "Mis amigos vienen a cenar.", "it": "I miei amici vengono a cena.",
     "ru": "Мои друзья придут на ужин."},
    {"en": "The bus leaves in ten minutes.", "de": "Der Bus fährt in zehn Minuten ab.",
     "fr": "Le bus part dans dix minutes.", "es": "El autobús sale en diez minutos.",
     "it": "L'autobus parte tra dieci minuti.", "ru": "Автобус уходит через десять минут."},
    {"en": "Please speak more slowly.", "de": "Bitte sprich langsamer.", "fr": "Parle plus lentement, s'il te plaît.",
     "es": "Habla más despacio, por favor.", "it": "Parla più lentamente, per favore.", "ru": "Говори медленнее, пожалуйста."},
    {"en": "The river is very long.", "de": "Der Fluss ist sehr lang.", "fr": "Le fleuve est très long.",
     "es": "El río es muy largo.", "it": "Il fiume è molto lungo.", "ru": "Река очень длинная."},
    {"en": "I am learning to play the piano.", "de": "Ich lerne Klavier spielen.", "fr": "J'apprends à jouer du piano.",
     "es": "Estoy aprendiendo a tocar el piano.", "it": "Sto imparando a suonare il pianoforte.",
     "ru": "Я учусь играть на пианино."},
    {"en": "What time is it now?", "de": "Wie spät ist es jetzt?", "fr": "Quelle heure est-il maintenant ?",
     "es": "¿Qué hora es ahora?", "it": "Che ore sono adesso?", "ru": "Который сейчас час?"},
    {"en": "The shop is closed on Sunday.", "de": "Der Laden ist am Sonntag geschlossen.",
     "fr": "Le magasin est fermé le dimanche.", "es": "La tienda está cerrada el domingo.",
     "it": "Il negozio è chiuso la domenica.", "ru": "В воскресенье магазин закрыт."},
    {"en": "My grandmother makes good bread.", "de": "Meine Großmutter backt gutes Brot.",
     "fr": "Ma grand-mère fait du bon pain.", "es": "Mi abuela hace buen pan.", "it": "Mia nonna fa un buon pane.",
     "ru": "Моя бабушка печёт вкусный хлеб."},
    {"en": "We need more time.", "de": "Wir brauchen mehr Zeit.", "fr": "Nous avons besoin de plus de temps.",
     "es": "Necesitamos más tiempo.", "it": "Abbiamo bisogno di più tempo.", "ru": "Нам нужно больше времени."},
    {"en": "The cat is sitting on the roof.", "de": "Die Katze sitzt auf dem Dach.", "fr": "Le chat est assis sur le toit.",
     "es": "El gato está sentado en el tejado.", "it": "Il gatto è seduto sul tetto.", "ru": "Кошка сидит на крыше."},
    {"en": "He drinks water after running.", "de": "Er trinkt Wasser nach dem Laufen.",
     "fr": "Il boit de l'eau après la course.", "es": "Él bebe agua después de correr.",
     "it": "Lui beve acqua dopo la corsa.", "ru": "Он пьёт воду после бега."},
    {"en": "The letter arrived yesterday.", "de": "Der Brief ist gestern angekommen.", "fr": "La lettre est arrivée hier.",
     "es": "La carta llegó ayer.", "it": "La lettera è arrivata ieri.", "ru": "Письмо пришло вчера."},
    {"en": "Turn left at the next street.", "de": "Biege an der nächsten Straße links ab.",
     "fr": "Tourne à gauche à la prochaine rue.", "es": "Gira a la izquierda en la próxima calle.",
     "it": "Gira a sinistra alla prossima strada.", "ru": "Поверни налево на следующей улице."},
    {"en": "This song is very beautiful.", "de": "Dieses Lied ist sehr schön.", "fr": "Cette chanson est très belle.",
     "es": "Esta canción es muy bonita.", "it": "Questa canzone è molto bella.", "ru": "Эта песня очень красивая."},
    {"en": "I will call you tomorrow morning.", "de": "Ich rufe dich morgen früh an.", "fr": "Je t'appellerai demain matin.",
     "es": "Te llamaré mañana por la mañana.", "it": "Ti chiamerò domani mattina.", "ru": "Я позвоню тебе завтра утром."},
)

NOISE_KINDS = ("white_noise", "pink_noise", "brown_noise", "mains_hum", "fan", "running_water", "babble")


class SynthError(ValueError):
    """A bad request (argument, output folder) or a broken espeak-ng install; the message says which."""


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SynthSettings:
    """What to synthesise. Only ``workers`` leaves the output unchanged."""

    tasks: tuple[str, ...] = DEFAULT_TASKS
    keyword_speakers: int = 80          # speakers of the keyword set, split 80/10/10
    clips_per_word: int = 80            # clips of each of the 35 words, spread over the speakers
    language_speakers: int = 40         # speakers per language, split 70/15/15
    clips_per_speaker: int = 4          # sentences each language speaker reads
    sentences: int = len(SENTENCES)     # how many of the fixed sentences to use
    instruments_per_family: int = 10    # instruments of each of the 11 NSynth families, split 70/15/15
    notes_per_instrument: int = 8       # notes (pitch, velocity) played by each instrument
    seed: int = 0
    workers: int = 2

    def validate(self) -> None:
        if not self.tasks:
            raise SynthError(f"--tasks is empty; choose one or more of {', '.join(TASKS)}")
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown:
            raise SynthError(f"--tasks: unknown task {', '.join(map(repr, unknown))}; choose from {', '.join(TASKS)}")
        if self.workers < 1:
            raise SynthError(f"--workers must be >= 1, got {self.workers}")
        if self.keyword_speakers < 3:
            raise SynthError(f"--keyword-speakers must be >= 3 (one per split at least), got {self.keyword_speakers}")
        if self.clips_per_word < self.keyword_speakers:
            raise SynthError(
                f"--clips-per-word ({self.clips_per_word}) must be >= --keyword-speakers ({self.keyword_speakers}): "
                "every speaker says every word at least once"
            )
        if self.language_speakers < 3:
            raise SynthError(f"--language-speakers must be >= 3 (one per split at least), got {self.language_speakers}")
        if not 1 <= self.sentences <= len(SENTENCES):
            raise SynthError(f"--sentences must be between 1 and {len(SENTENCES)} (the fixed set), got {self.sentences}")
        if self.instruments_per_family < 3:
            raise SynthError(f"--instruments-per-family must be >= 3 (one per split at least), got {self.instruments_per_family}")
        if not 1 <= self.notes_per_instrument <= MAX_NOTES:
            raise SynthError(f"--notes-per-instrument must be between 1 and {MAX_NOTES}, got {self.notes_per_instrument}")
        if not 1 <= self.clips_per_speaker <= self.sentences:
            raise SynthError(
                f"--clips-per-speaker must be between 1 and --sentences ({self.sentences}): a speaker reads each "
                f"sentence at most once; got {self.clips_per_speaker}"
            )

    def key(self, task: str) -> dict[str, Any]:
        """The settings that decide a task's output (the reuse stamp compares these)."""
        names = {
            "keywords": ("keyword_speakers", "clips_per_word"),
            "languages": ("language_speakers", "clips_per_speaker", "sentences"),
            "instruments": ("instruments_per_family", "notes_per_instrument"),
        }[task]
        return {"task": task, "seed": self.seed, **{name: getattr(self, name) for name in names}}


# ---------------------------------------------------------------------------------------------
# espeak-ng through ctypes
# ---------------------------------------------------------------------------------------------

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_PARAM = {"rate": 1, "volume": 2, "pitch": 3, "range": 4, "wordgap": 7}
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class Espeak:
    """libespeak-ng from the ``espeakng-loader`` wheel, synthesising to memory (synchronous mode).

    One instance per process (espeak-ng is a process-wide singleton). ``say`` returns float32
    samples at :attr:`sample_rate` (22,050 Hz).
    """

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError:
            raise SynthError("espeak-ng is needed: pip install espeakng-loader (it ships libespeak-ng and its data)") from None
        library, data = espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
        try:
            lib = ctypes.CDLL(library)
        except OSError as error:
            raise SynthError(f"cannot load {library} from espeakng-loader: {error}") from None
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = ctypes.c_int
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        lib.espeak_Info.restype = ctypes.c_char_p
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 500, data.encode(), _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise SynthError(f"espeak_Initialize failed with the data folder {data}")
        self.lib, self.data, self.sample_rate = lib, Path(data), rate
        self.version = lib.espeak_Info(None).decode()
        self._chunks: list[np.ndarray] = []

        def collect(wav, count, events):  # noqa: ARG001 - the events are not needed
            if wav and count > 0:
                self._chunks.append(np.ctypeslib.as_array(wav, (count,)).copy())
            return 0

        self._callback = _CALLBACK(collect)  # kept referenced: ctypes must not free it
        lib.espeak_SetSynthCallback(self._callback)
        self._libc = ctypes.CDLL(None)

    def check_voices(self, accents: Sequence[str], variants: Sequence[str]) -> None:
        """Every accent and variant must exist in the wheel's data (fails naming what is absent)."""
        known = {p.name.lower() for p in (self.data / "lang").rglob("*") if p.is_file()}
        absent = [a for a in accents if a.lower() not in known]
        absent += [f"variant {v}" for v in variants if not (self.data / "voices" / "!v" / v).is_file()]
        if absent:
            raise SynthError(f"espeak-ng data at {self.data} lacks the voices {', '.join(absent)}")

    def seed(self, value: int) -> None:
        """Seed espeak-ng's own generator (breath noise of some voices; otherwise seeded from the
        clock at initialisation, so it differs between processes) and libc's ``rand``."""
        self.lib.espeak_ng_SetRandSeed(ctypes.c_long(value & 0x7FFFFFFF))
        self._libc.srand(ctypes.c_uint(value & 0xFFFFFFFF))

    def say(self, voice: str, text: str, *, rate: int, pitch: int, range_: int, wordgap: int = 0) -> np.ndarray:
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise SynthError(f"espeak-ng has no voice {voice!r}")
        for name, value in (("rate", rate), ("pitch", pitch), ("range", range_), ("wordgap", wordgap), ("volume", 100)):
            self.lib.espeak_SetParameter(_PARAM[name], int(value), 0)
        self._chunks.clear()
        encoded = text.encode("utf-8") + b"\0"
        status = self.lib.espeak_Synth(encoded, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if status != 0 or not self._chunks:
            raise SynthError(f"espeak-ng could not speak {text!r} with voice {voice!r} (status {status})")
        return np.concatenate(self._chunks).astype(np.float32) / 32768.0


_ESPEAK: Espeak | None = None


def espeak() -> Espeak:
    """The process's espeak-ng, initialised on first use."""
    global _ESPEAK
    if _ESPEAK is None:
        _ESPEAK = Espeak()
        _ESPEAK.check_voices([a for accents in ACCENTS.values() for a in accents], VARIANTS)
    return _ESPEAK


# ---------------------------------------------------------------------------------------------
# Signal processing (numpy, seeded)
# ---------------------------------------------------------------------------------------------


def _fast_length(n: int) -> int:
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


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def trim(x: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    """Cut the leading and trailing near-silence espeak-ng adds around an utterance."""
    loud = np.flatnonzero(np.abs(x) > threshold * max(float(np.abs(x).max()), 1e-9))
    return x[max(0, loud[0] - 80): loud[-1] + 80] if loud.size else x[:0]


def resample(x: np.ndarray, source_rate: float, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling by FFT. A ``source_rate`` other than the true one shifts pitch,
    formants and tempo together: declaring 22,050 Hz audio as 23,000 Hz makes a smaller voice."""
    pad = 256
    n = _fast_length(x.size + 2 * pad)
    m = max(1, int(round(n * target_rate / source_rate)))
    spectrum = np.fft.rfft(np.pad(x, (pad, n - x.size - pad)))
    bins = m // 2 + 1
    spectrum = spectrum[:bins] if bins <= spectrum.size else np.pad(spectrum, (0, bins - spectrum.size))
    y = np.fft.irfft(spectrum, m) * (m / n)
    start = int(round(pad * target_rate / source_rate))
    return y[start: start + int(round(x.size * target_rate / source_rate))].astype(np.float32)


def coloured_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with power ~ 1 / f^exponent (0 white, 1 pink, 2 brown, < 0 blue), unit RMS."""
    size = _fast_length(n)
    spectrum = np.fft.rfft(rng.standard_normal(size))
    freqs = np.maximum(np.fft.rfftfreq(size, 1 / SAMPLE_RATE), 20.0)
    y = np.fft.irfft(spectrum * freqs ** (-exponent / 2), size)[:n]
    return (y / max(_rms(y), 1e-12)).astype(np.float32)


def _lowpass(x: np.ndarray, cutoff: float, order: int = 2) -> np.ndarray:
    size = _fast_length(x.size)
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
    y = y / _rms(y) + rng.uniform(0.05, 0.3) * coloured_noise(n, 1.0, rng)
    return (y / _rms(y)).astype(np.float32)


def fan_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Low rumble with a blade-pass tone and slow modulation; unit RMS."""
    t = np.arange(n) / SAMPLE_RATE
    y = _lowpass(coloured_noise(n, rng.uniform(0.5, 1.5), rng), rng.uniform(300, 2000))
    blade = rng.uniform(20, 140)
    y = y / _rms(y) + rng.uniform(0.1, 0.6) * sum(np.sin(2 * np.pi * k * blade * t) / k for k in range(1, 5))
    y *= 1 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.1, 2.0) * t)
    return (y / _rms(y)).astype(np.float32)


def running_water(n: int, rng: np.random.Generator) -> np.ndarray:
    """Bright noise with fast random bubbling of the level; unit RMS."""
    y = coloured_noise(n, rng.uniform(-0.6, 0.4), rng)
    flutter = np.abs(_lowpass(rng.standard_normal(n), rng.uniform(8, 40))) + 0.2
    y = y * flutter
    return (y / _rms(y)).astype(np.float32)


def impulses(n: int, rng: np.random.Generator, count: int) -> np.ndarray:
    """A few short decaying bursts (knocks, clicks, a dropped object); RMS over the clip is small."""
    y = np.zeros(n, np.float32)
    for _ in range(count):
        length = int(rng.uniform(0.005, 0.08) * SAMPLE_RATE)
        start = int(rng.integers(0, max(1, n - length)))
        burst = _lowpass(rng.standard_normal(length), rng.uniform(500, 7000)) * np.exp(-np.arange(length) / (length / 5))
        y[start: start + length] += (burst / max(float(np.abs(burst).max()), 1e-9) * rng.uniform(0.3, 1.0)).astype(np.float32)
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
    tail *= math.sqrt(10 ** (-drr_db / 10) / max(float(np.sum(tail ** 2)), 1e-12))
    tail[0] = 1.0
    return tail


def fft_convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``x`` convolved with ``h``, cut to the length of ``x``."""
    size = _fast_length(x.size + h.size - 1)
    return np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(h, size), size)[: x.size]


def microphone(x: np.ndarray, eq_db: np.ndarray, highpass: float, lowpass: float) -> np.ndarray:
    """A microphone / channel response: a smooth EQ curve plus high and low cut."""
    size = _fast_length(x.size)
    freqs = np.fft.rfftfreq(size, 1 / SAMPLE_RATE)
    points = np.geomspace(80, 7500, eq_db.size)
    gain_db = np.interp(np.log(np.maximum(freqs, 1.0)), np.log(points), eq_db)
    gain = 10 ** (gain_db / 20) / np.sqrt(1 + (highpass / np.maximum(freqs, 1.0)) ** 4) / np.sqrt(1 + (freqs / lowpass) ** 8)
    return np.fft.irfft(np.fft.rfft(x, size) * gain, size)[: x.size]


# ---------------------------------------------------------------------------------------------
# Speakers and clips
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Speaker:
    id: str
    split: str
    language: str
    accent: str          # espeak-ng language voice
    variant: str         # espeak-ng voice variant
    pitch: int           # espeak-ng pitch 0..100
    range: int           # espeak-ng pitch range 0..100
    rate: int            # words per minute
    wordgap: int         # extra pause between words, 10 ms units
    shift: float         # vocal-tract / pitch shift by resampling (> 1: smaller, higher voice)
    level_db: float      # clip RMS, dBFS
    snr_db: float        # speech-to-background ratio
    rt60: float          # room reverberation time, s
    drr_db: float        # direct-to-reverberant ratio
    eq_db: tuple[float, ...]
    highpass: float
    lowpass: float
    noise: tuple[float, ...]  # preference for each background in NOISE_KINDS

    @property
    def voice(self) -> str:
        return f"{self.accent}+{self.variant}"


@dataclass(frozen=True)
class ClipSpec:
    rel: str            # path relative to the dataset folder
    speaker: int        # index into the task's speakers
    text: str
    seconds: float      # clip length
    key: tuple[int, ...]  # seeds the clip's randomness


def _speaker_hash(seed: int, task: str, index: int, taken: set[str]) -> str:
    salt = 0
    while True:
        value = hashlib.sha1(f"{seed}/{task}/{index}/{salt}".encode()).hexdigest()[:8]
        if value not in taken:
            taken.add(value)
            return value
        salt += 1


def _split_counts(total: int, fractions: dict[str, float]) -> dict[str, int]:
    held = {s: max(1, round(total * fractions[s])) for s in ("validation", "test")}
    return {"train": total - sum(held.values()), **held}


def make_speakers(task: str, languages: Sequence[str], per_language: int, seed: int,
                  fractions: dict[str, float], rate_range: tuple[float, float]) -> list[Speaker]:
    """``per_language`` speakers of each language, split by ``fractions``.

    Voice variants are partitioned between the splits first, so a test speaker is never built
    on a variant heard in training; accents are shared (they are the language's dialects).
    """
    task_id = TASKS.index(task)
    rng = np.random.default_rng([seed, task_id, 0])
    counts = _split_counts(per_language, fractions)
    order = [VARIANTS[i] for i in rng.permutation(len(VARIANTS))]
    held = {split: max(1, round(len(VARIANTS) * fractions[split])) for split in ("validation", "test")}
    pools = {
        "validation": order[: held["validation"]],
        "test": order[held["validation"]: held["validation"] + held["test"]],
        "train": order[held["validation"] + held["test"]:],
    }
    speakers: list[Speaker] = []
    taken: set[str] = set()
    for language in languages:
        for split in SPLITS:
            for _ in range(counts[split]):
                index = len(speakers)
                r = np.random.default_rng([seed, task_id, 1, index])
                speakers.append(Speaker(
                    id=_speaker_hash(seed, task, index, taken),
                    split=split,
                    language=language,
                    accent=str(r.choice(ACCENTS[language])),
                    variant=str(r.choice(pools[split])),
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
                ))
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


# ---------------------------------------------------------------------------------------------
# Instruments (NSynth layout): additive and modal synthesis, numpy only
# ---------------------------------------------------------------------------------------------

NSYNTH_SOURCES = ("acoustic", "electronic", "synthetic")
NSYNTH_FOLDERS = {"train": "nsynth-train", "validation": "nsynth-valid", "test": "nsynth-test"}
NSYNTH_VELOCITIES = (25, 50, 75, 100, 127)
# family -> (lowest, highest MIDI pitch, the sources it comes in): the ranges of the real instruments
FAMILIES = {
    "bass": (28, 60, (0, 1, 2)), "brass": (40, 82, (0, 2)), "flute": (60, 96, (0, 2)), "guitar": (40, 84, (0, 1)),
    "keyboard": (28, 96, (0, 1, 2)), "mallet": (48, 96, (0, 1)), "organ": (36, 96, (1,)), "reed": (45, 88, (0, 2)),
    "string": (36, 96, (0,)), "synth_lead": (40, 96, (2,)), "vocal": (48, 79, (0, 2)),
}
MAX_NOTES = 40
NOTE_SECONDS, NOTE_OFF = 4.0, 3.0   # NSynth: 4 s clips, the key held for 3 s
_VOWELS = {"a": (730, 1090, 2440), "e": (530, 1840, 2480), "i": (270, 2290, 3010), "o": (570, 840, 2410), "u": (300, 870, 2240)}
_MODES = {  # frequency ratios of struck bars and plates
    "marimba": (1.0, 3.93, 9.22), "vibraphone": (1.0, 3.98, 9.5, 10.9), "xylophone": (1.0, 3.0, 6.17, 9.9),
    "glockenspiel": (1.0, 2.71, 5.15, 8.43, 12.6), "bell": (1.0, 2.0, 2.4, 3.0, 4.2, 5.4, 6.8),
}


@dataclass(frozen=True)
class Instrument:
    """One synthetic instrument: a family, a source and fixed timbre parameters."""

    name: str                 # NSynth instrument_str, e.g. guitar_acoustic_003
    index: int                # NSynth instrument id
    family: str
    source: str
    split: str
    params: dict[str, Any] = field(hash=False, compare=False)


def _instrument_params(family: str, source: str, r: np.random.Generator) -> dict[str, Any]:
    """Timbre parameters of one instrument, drawn from its family's physics (loosely)."""
    u = r.uniform
    p: dict[str, Any] = {
        "ratios": None, "partials": 40, "inharmonic": 0.0, "tilt": u(0.9, 1.6), "even": 1.0, "pluck": 0.0,
        "body": [], "baseline_db": 0.0, "attack": 0.01, "sustain": 1.0, "decay": 0.3, "release": u(0.05, 0.2),
        "tau": math.inf, "tau_slope": 0.0, "vib_rate": u(4.5, 6.5), "vib_depth": 0.0, "vib_delay": u(0.2, 0.6),
        "noise": 0.0, "noise_hz": 2000.0, "noise_oct": 1.0, "noise_tau": math.inf, "detune": (0.0,),
        "filter": None, "tremolo": 0.0, "drive": 0.0, "bright_velocity": u(0.2, 0.6), "tuning": u(0.0, 0.004),
    }
    bumps = lambda count, lo, hi, gain: [(float(np.exp(u(np.log(lo), np.log(hi)))), u(0.2, 0.6), u(*gain)) for _ in range(count)]  # noqa: E731
    if family in ("bass", "guitar"):
        p.update(tilt=u(0.8, 1.8), pluck=u(0.08, 0.35), inharmonic=u(0, 3e-5), sustain=0.0, attack=u(0.002, 0.01),
                 tau=u(0.8, 3.0) if family == "bass" else u(0.6, 2.5), tau_slope=u(0.05, 0.5),
                 noise=u(0.02, 0.1), noise_hz=u(1500, 4000), noise_tau=u(0.005, 0.03),
                 body=bumps(3, 90, 3000, (-3, 9)) if source == "acoustic" else bumps(1, 300, 2500, (0, 6)))
        if source == "electronic":
            p["drive"] = u(0, 3) if r.random() < 0.5 else 0.0
        if source == "synthetic":
            p.update(pluck=0.0, sustain=u(0.4, 0.9), tau=math.inf, filter=(u(800, 3000), u(100, 500), u(0.1, 0.5)))
    elif family == "keyboard":
        if source == "acoustic":    # piano: stiff strings, hammer
            p.update(inharmonic=u(5e-5, 4e-4), tilt=u(1.2, 2.2), sustain=0.0, attack=0.003, tau=u(1.5, 5.0),
                     tau_slope=u(0.1, 0.4), noise=u(0.03, 0.1), noise_hz=u(1000, 3000), noise_tau=0.01)
        elif source == "electronic":  # electric piano: sine-like tine plus a fast bell partial
            p.update(ratios=(1.0, 2.0, 3.0, float(u(6.5, 14.0))), tilt=u(2.0, 3.0), sustain=0.0, attack=0.003,
                     tau=u(1.0, 3.0), tau_slope=u(1.0, 4.0), tremolo=u(0, 0.3))
        else:                         # synth pad / keys
            p.update(tilt=u(0.9, 1.4), even=u(0.0, 1.0), sustain=u(0.6, 1.0), attack=u(0.005, 0.2),
                     filter=(u(1500, 6000), u(500, 2000), u(0.2, 1.0)), detune=(0.0, u(0.002, 0.008)))
    elif family == "mallet":
        kind = str(r.choice(list(_MODES)))
        p.update(ratios=_MODES[kind], tilt=u(0.5, 1.5), sustain=0.0, attack=0.002, tau=u(0.3, 2.0),
                 tau_slope=u(0.5, 2.0), noise=u(0.05, 0.2), noise_hz=u(2000, 6000), noise_tau=0.005,
                 tremolo=u(0.2, 0.5) if kind == "vibraphone" and source == "electronic" else 0.0)
    elif family == "organ":
        drawbars = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)
        gains = [u(0.2, 1.0) if r.random() < 0.6 else 0.0 for _ in drawbars]
        gains[1] = max(gains[1], 0.5)
        p.update(ratios=tuple(d for d, g in zip(drawbars, gains) if g > 0), gains=tuple(g for g in gains if g > 0),
                 attack=u(0.005, 0.03), release=u(0.02, 0.1), noise=u(0.0, 0.05), noise_hz=3000.0, noise_tau=0.01,
                 tremolo=u(0.0, 0.2), vib_depth=u(0.0, 0.002), vib_rate=u(5.5, 7.0), vib_delay=0.0)
    elif family == "brass":
        p.update(tilt=u(0.5, 1.1), attack=u(0.03, 0.1), sustain=u(0.7, 0.95), body=bumps(1, 900, 1600, (4, 10)),
                 filter=(u(300, 800), u(2500, 6000), u(0.05, 0.15)), vib_depth=u(0.001, 0.005), bright_velocity=u(0.5, 0.9))
    elif family == "reed":
        if r.random() < 0.5:  # clarinet-like: odd harmonics
            p.update(even=u(0.05, 0.3), tilt=u(0.7, 1.3))
        else:                 # saxophone-like: all harmonics, formant
            p.update(tilt=u(0.7, 1.2), body=bumps(2, 500, 2000, (3, 9)))
        p.update(attack=u(0.02, 0.06), sustain=u(0.8, 1.0), noise=u(0.01, 0.05), noise_hz=u(1500, 4000), noise_oct=1.5,
                 vib_depth=u(0.0, 0.004))
    elif family == "flute":
        p.update(partials=8, tilt=u(1.8, 3.0), even=u(0.5, 1.0), attack=u(0.05, 0.15), sustain=u(0.8, 1.0),
                 noise=u(0.05, 0.2), noise_hz=u(2000, 5000), noise_oct=2.0, vib_depth=u(0.003, 0.008))
    elif family == "string":
        p.update(tilt=u(0.8, 1.4), body=bumps(4, 250, 3500, (-4, 8)), attack=u(0.08, 0.3), sustain=u(0.8, 1.0),
                 noise=u(0.01, 0.05), noise_hz=u(2000, 5000), noise_oct=2.0, vib_depth=u(0.003, 0.01),
                 vib_rate=u(5.0, 7.0), release=u(0.1, 0.4))
    elif family == "synth_lead":
        square = r.random() < 0.5
        p.update(tilt=1.0, even=0.0 if square else 1.0, attack=u(0.005, 0.05), sustain=u(0.7, 1.0),
                 detune=tuple([0.0] + [float(u(-0.01, 0.01)) for _ in range(int(r.integers(0, 3)))]),
                 filter=(u(3000, 7000), u(800, 3000), u(0.1, 0.6)), vib_depth=u(0.0, 0.006))
    elif family == "vocal":
        scale = u(0.9, 1.25)
        vowel = _VOWELS[str(r.choice(list(_VOWELS)))]
        p.update(partials=60, tilt=u(1.2, 1.8), baseline_db=-18.0, attack=u(0.08, 0.2), sustain=u(0.8, 1.0),
                 body=[(f * scale, u(0.1, 0.2), u(18, 26)) for f in vowel], vib_depth=u(0.004, 0.015),
                 noise=u(0.01, 0.06), noise_hz=u(2000, 4000), noise_oct=1.5)
        if source == "synthetic":
            p.update(detune=(0.0, u(0.003, 0.01)), tilt=u(1.0, 1.4))
    p["level_db"] = float(u(-30, -14))
    p["rt60"] = float(u(0.1, 0.6))
    p["drr_db"] = float(u(4, 20))
    p["eq_db"] = tuple(float(v) for v in r.normal(0, 2.0, 8))
    return p


def _adsr(t: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    attack = np.clip(t / max(p["attack"], 1e-3), 0, 1)
    held = p["sustain"] + (1 - p["sustain"]) * np.exp(-np.maximum(t - p["attack"], 0) / p["decay"])
    release = np.exp(-np.maximum(t - NOTE_OFF, 0) / p["release"])
    return attack * held * release


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
    if p["ratios"] is not None:
        ratios = np.asarray(p["ratios"], dtype=np.float64)
        gains = np.asarray(p.get("gains", np.ones(ratios.size)))
    else:
        k = np.arange(1, p["partials"] + 1, dtype=np.float64)
        ratios = k * np.sqrt(1 + p["inharmonic"] * k ** 2)
        gains = np.where(k % 2 == 0, p["even"], 1.0)
        if p["pluck"]:
            gains = gains * np.abs(np.sin(np.pi * k * p["pluck"])) + 0.02
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
    for detune in p["detune"][1:]:  # unison voices of synths: the same partials, slightly off pitch
        y += sum(gains[i] * ratios[i] ** (-tilt) * np.sin(ratios[i] * phase * (1 + detune) + rng.uniform(0, 2 * np.pi))
                 for i in range(min(len(ratios), 12)) if ratios[i] * f0 < 7600)
    if p["tremolo"]:
        y *= 1 + p["tremolo"] * np.sin(2 * np.pi * rng.uniform(4, 7) * t)
    if p["drive"]:
        y = np.tanh(p["drive"] * y / max(float(np.abs(y).max()), 1e-9))
    y *= _adsr(t, p)
    y /= max(_rms(y[: int(NOTE_OFF * SAMPLE_RATE)]), 1e-9)
    if p["noise"]:
        noise = rng.standard_normal(n)
        size = _fast_length(n)
        freqs = np.maximum(np.fft.rfftfreq(size, 1 / SAMPLE_RATE), 1.0)
        shape = np.exp(-0.5 * (np.log2(freqs / p["noise_hz"]) / p["noise_oct"]) ** 2)
        noise = np.fft.irfft(np.fft.rfft(noise, size) * shape, size)[:n]
        envelope = np.exp(-t / p["noise_tau"]) if math.isfinite(p["noise_tau"]) else _adsr(t, p)
        y += 3 * p["noise"] * noise / max(_rms(noise), 1e-9) * envelope
    return (y * v ** 1.5).astype(np.float32)


def make_instruments(settings: SynthSettings) -> list[Instrument]:
    """``instruments_per_family`` instruments of every family, split 70/15/15 within the family."""
    counts = _split_counts(settings.instruments_per_family, INSTRUMENT_SPLITS)
    instruments: list[Instrument] = []
    for family in NSYNTH_FAMILIES:
        for split in SPLITS:
            for _ in range(counts[split]):
                index = len(instruments)
                r = np.random.default_rng([settings.seed, 2, 1, index])
                source = NSYNTH_SOURCES[int(r.choice(FAMILIES[family][2]))]
                number = sum(1 for i in instruments if i.family == family and i.source == source)
                instruments.append(Instrument(f"{family}_{source}_{number:03d}", index, family, source, split,
                                              _instrument_params(family, source, r)))
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


# ---------------------------------------------------------------------------------------------
# Rendering (runs in forked workers)
# ---------------------------------------------------------------------------------------------

# Set in the parent before workers are forked; the workers read it (copy-on-write, no pickling).
_CONTEXT: dict[str, Any] = {}


def _speak(engine: Espeak, speaker: Speaker, text: str, rng: np.random.Generator, punctuate: bool) -> np.ndarray:
    """The dry utterance at 16 kHz, with per-clip pitch, rate and shift jitter."""
    if punctuate:  # a keyword said as a statement, an exclamation or a question
        text += str(rng.choice(["", ".", "!", "?"], p=[0.4, 0.3, 0.15, 0.15]))
    raw = engine.say(
        speaker.voice, text,
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
    y = np.resize(source[start: start + n], n).astype(np.float64)
    y = y / max(_rms(y), 1e-9) + rng.uniform(0, 1.0) * coloured_noise(n, rng.uniform(-0.5, 2.0), rng)
    if rng.random() < 0.2:
        y += impulses(n, rng, int(rng.integers(1, 4))) * rng.uniform(2, 8) * _rms(y)
    return y / max(_rms(y), 1e-9)


def render(dry: np.ndarray, n: int, speaker: Speaker, rng: np.random.Generator, bank: dict[str, np.ndarray]) -> np.ndarray:
    """Place an utterance in an ``n``-sample scene and record it: room, noise, microphone, level.

    Returns int16 samples. Every sample carries at least a noise floor (-74..-62 dBFS), so no
    clip has digital silence anywhere.
    """
    if dry.size > n:  # longer than the clip: a random window of it, faded at the cut
        start = int(rng.integers(0, dry.size - n + 1))
        dry = dry[start: start + n].copy()
        fade = np.linspace(0, 1, 80, dtype=np.float32)
        dry[:80] *= fade
        dry[-80:] *= fade[::-1]
    offset = int(rng.integers(0, n - dry.size + 1))
    scene = np.zeros(n)
    scene[offset: offset + dry.size] = dry
    rt60 = float(np.clip(speaker.rt60 * np.exp(rng.normal(0, 0.15)), 0.05, 1.5))
    wet = fft_convolve(scene, room_response(rt60, speaker.drr_db + rng.normal(0, 2), rng))
    speech_level = _rms(wet[offset: offset + dry.size])
    snr = speaker.snr_db + rng.normal(0, 4)
    mix = wet + _background(n, speaker, rng, bank) * speech_level * 10 ** (-snr / 20)
    eq = np.asarray(speaker.eq_db) + rng.normal(0, 1.0, len(speaker.eq_db))
    mix = microphone(mix, eq, speaker.highpass, speaker.lowpass)
    mix *= 10 ** ((speaker.level_db + rng.normal(0, 3)) / 20) / max(_rms(mix), 1e-12)
    peak = float(np.abs(mix).max())
    if peak > 0.95:
        mix *= 0.95 / peak
    mix += rng.standard_normal(n) * 10 ** (rng.uniform(-74, -62) / 20)
    return np.clip(np.round(mix * 32767), -32768, 32767).astype(np.int16)


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
        path = root / spec.rel
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, samples, SAMPLE_RATE, subtype="PCM_16")
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
        path = root / spec.rel
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, samples, SAMPLE_RATE, subtype="PCM_16")
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
        raw = engine.say(f"{rng.choice(ACCENTS[language])}+{rng.choice(VARIANTS)}", text,
                         rate=int(rng.integers(130, 260)), pitch=int(rng.integers(10, 90)), range_=int(rng.integers(20, 90)))
        dry = resample(trim(raw), engine.sample_rate * float(np.exp(rng.uniform(-0.15, 0.15))))
        dry = dry[: out.size - position] * 10 ** (rng.uniform(-6, 0) / 20) / max(_rms(dry), 1e-9)
        out[position: position + dry.size] += dry
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


# ---------------------------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------------------------


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
    return {kind: (x / max(_rms(x), 1e-9)).astype(np.float32) for kind, x in bank.items()}


def _write_bank(folder: Path, bank: dict[str, np.ndarray], rng: np.random.Generator) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for kind, x in bank.items():
        level = x * 10 ** (rng.uniform(-30, -18) / 20)
        level = level * min(1.0, 0.95 / max(float(np.abs(level).max()), 1e-9))
        level = level + rng.standard_normal(level.size) * 10 ** (-70 / 20)
        sf.write(folder / f"{kind}.wav", np.clip(np.round(level * 32767), -32768, 32767).astype(np.int16),
                 SAMPLE_RATE, subtype="PCM_16")


def _check_folder(folder: Path) -> None:
    """A folder we may (re)write: absent, empty, or written by mast synth before."""
    if folder.exists() and not folder.is_dir():
        raise SynthError(f"{folder} exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        if not (folder / STAMP_FILE).is_file() and not (folder / PARTIAL_MARK).exists():
            raise SynthError(f"{folder} exists and was not written by mast synth; choose another OUT or remove it")


def _stamp_matches(folder: Path, key: dict[str, Any], version: str) -> dict[str, Any] | None:
    """The stamp of a finished dataset written with these settings and this espeak-ng, else None."""
    stamp_path = folder / STAMP_FILE
    if (folder / PARTIAL_MARK).exists() or not stamp_path.is_file():
        return None
    try:
        stamp = json.loads(stamp_path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if stamp.get("format") != FORMAT_VERSION or stamp.get("key") != key:
        return None
    if stamp.get("espeak_ng") != version:
        return None
    audio = sum(1 for _ in folder.rglob("*.wav"))
    return stamp if audio == stamp.get("audio_files") else None


def _synthesize_task(task: str, out: Path, settings: SynthSettings, progress: Callable[[str], None]) -> dict[str, Any]:
    folder = out / FOLDER_OF_TASK[task]
    key = settings.key(task)
    engine = espeak()  # initialised here, in the parent, before any worker is forked
    reused = _stamp_matches(folder, key, engine.version)
    if reused is not None:
        progress(f"[synth] {task}: {folder} matches its synth.json stamp, reused ({reused['clips']} clips)")
        return {**_summary(folder, reused), "reused": True}
    started = time.perf_counter()
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / PARTIAL_MARK).write_text("mast synth is writing this folder\n")
    task_id = TASKS.index(task)
    plan = {"keywords": keyword_plan, "languages": language_plan, "instruments": instrument_plan}[task]
    speakers, clips = plan(settings)
    progress(f"[synth] {task}: {len(speakers)} {'instruments' if task == 'instruments' else 'speakers'}, "
             f"{len(clips)} clips -> {folder}")
    bank: dict[str, np.ndarray] = {}
    if task != "instruments":
        bank = noise_bank(settings.seed, task_id, settings.workers)
        bank_folder = folder / ("_background_noise_" if task == "keywords" else "noise")
        _write_bank(bank_folder, bank, np.random.default_rng([settings.seed, task_id, 6]))
        progress(f"[synth] {task}: background recordings written to {bank_folder} ({', '.join(bank)})")

    _CONTEXT.clear()
    _CONTEXT.update(root=folder, speakers=speakers, bank=bank, punctuate=task == "keywords", seed=settings.seed)
    jobs = [(i, clips[start: start + JOB_CLIPS]) for i, start in enumerate(range(0, len(clips), JOB_CLIPS))]
    state = {"clips": 0, "last": 0.0}
    clip_start = time.perf_counter()

    def done(result: list) -> None:
        state["clips"] += len(result)
        now = time.perf_counter()
        if now - state["last"] > 5.0 or state["clips"] == len(clips):
            state["last"] = now
            rate = state["clips"] / max(now - clip_start, 1e-9)
            progress(f"[synth] {task}: {state['clips']}/{len(clips)} clips ({rate:.0f} clips/s)")

    try:
        render_job = _render_notes if task == "instruments" else _render_job
        written = [item for result in _run_jobs(render_job, jobs, settings.workers, done) for item in result]
    finally:
        _CONTEXT.clear()
    clip_seconds = time.perf_counter() - clip_start
    split_of = {spec.rel: speakers[spec.speaker].split for spec in clips}
    if task == "keywords":
        for name, split in (("validation_list.txt", "validation"), ("testing_list.txt", "test")):
            (folder / name).write_text("".join(f"{rel}\n" for rel in sorted(r for r, s in split_of.items() if s == split)))
    elif task == "instruments":
        by_note = {spec.text: spec for spec in clips}
        for split, name in NSYNTH_FOLDERS.items():
            examples = {}
            for note, spec in sorted(by_note.items()):
                instrument = speakers[spec.speaker]
                if instrument.split != split:
                    continue
                pitch, velocity = (int(part) for part in note.rsplit("-", 2)[1:])
                examples[note] = {
                    "note": len(examples), "note_str": note, "instrument": instrument.index,
                    "instrument_str": instrument.name, "pitch": pitch, "velocity": velocity, "sample_rate": SAMPLE_RATE,
                    "qualities": [0] * 10, "qualities_str": [],
                    "instrument_family": NSYNTH_FAMILIES.index(instrument.family), "instrument_family_str": instrument.family,
                    "instrument_source": NSYNTH_SOURCES.index(instrument.source), "instrument_source_str": instrument.source,
                }
            (folder / name).mkdir(exist_ok=True)
            (folder / name / "examples.json").write_text(json.dumps(examples, indent=1) + "\n", encoding="utf-8")
    else:
        buffer = io.StringIO()
        table = csv.writer(buffer, lineterminator="\n")
        table.writerow(["path", "language", "split", "speaker", "sentence", "text"])
        for spec in clips:
            speaker = speakers[spec.speaker]
            table.writerow([spec.rel, speaker.language, speaker.split, speaker.id, int(Path(spec.rel).stem[1:]), spec.text])
        (folder / "voxforge.csv").write_text(buffer.getvalue(), encoding="utf-8")
    stamp = {
        "format": FORMAT_VERSION,
        "generator": "mast synth",
        "dataset": DATASET_OF_TASK[task],
        "key": key,
        "espeak_ng": engine.version,
        "clips": len(written),
        "per_split": dict(Counter(split_of[rel] for rel, _ in written)),
        "audio_seconds": round(sum(seconds for _, seconds in written), 3),
        "audio_files": len(written) + len(bank),
        "seconds": round(time.perf_counter() - started, 3),
        "clip_seconds": round(clip_seconds, 3),
        "clips_per_second": round(len(written) / max(clip_seconds, 1e-9), 2),
        "speakers": [_describe(s) for s in speakers],
    }
    (folder / STAMP_FILE).write_text(json.dumps(stamp, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    (folder / PARTIAL_MARK).unlink()
    progress(
        f"[synth] {task}: {len(written)} clips in {stamp['seconds']:.1f} s "
        f"({stamp['clips_per_second']:.0f} clips/s for the clips); split {stamp['per_split']}"
    )
    return {**_summary(folder, stamp), "reused": False}


def _describe(source: Speaker | Instrument) -> dict[str, Any]:
    """A JSON-ready description of a speaker or an instrument for the stamp."""
    if isinstance(source, Speaker):
        return asdict(source)
    params = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in source.params.items()}
    return {"id": source.name, "split": source.split, "family": source.family, "source": source.source, "params": params}


def _summary(folder: Path, stamp: dict[str, Any]) -> dict[str, Any]:
    return {
        "path": str(folder),
        "clips": stamp["clips"],
        "per_split": stamp["per_split"],
        "speakers": len(stamp["speakers"]),  # instruments for the NSynth layout
        "seconds": stamp["seconds"],
        "clips_per_second": stamp["clips_per_second"],
    }


def check_request(out: str | Path, settings: SynthSettings) -> Path:
    """Everything that can be checked before work starts: settings and output folders."""
    settings.validate()
    out = Path(os.path.abspath(os.path.expanduser(os.fspath(out))))
    if out.exists() and not out.is_dir():
        raise SynthError(f"OUT {out} exists and is not a folder")
    for task in settings.tasks:
        _check_folder(out / FOLDER_OF_TASK[task])
    return out


def synthesize(out: str | Path, settings: SynthSettings = SynthSettings(),
               progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Write the requested datasets under ``out``; reuse those whose stamp matches.

    Returns ``{dataset name: {"path", "clips", "per_split", "speakers", "seconds",
    "clips_per_second", "reused"}, "seconds": total}``, dataset names as in
    ``pipelines.layouts`` (``speech_commands``, ``voxforge``).
    """
    started = time.perf_counter()
    out = check_request(out, settings)
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {}
    for task in settings.tasks:
        result[DATASET_OF_TASK[task]] = _synthesize_task(task, out, settings, progress)
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

_FLAGS = {f.name: f.default for f in fields(SynthSettings)}
