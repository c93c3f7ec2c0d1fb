"""espeak-ng through ctypes: the library of the ``espeakng-loader`` wheel, synthesising to memory.

Also the voices a speaker is built from: the accents (espeak-ng language voices) of each
language and the voice variants.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipelines.data.synth.settings import SynthError

# fmt: off
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
# fmt: on

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_PARAM = {"rate": 1, "volume": 2, "pitch": 3, "range": 4, "wordgap": 7}
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


def _load(library: str) -> ctypes.CDLL:
    """libespeak-ng, with the signatures of the functions used here declared."""
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
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_ng_SetRandSeed.restype = ctypes.c_int
    lib.espeak_Info.argtypes = [ctypes.c_void_p]
    lib.espeak_Info.restype = ctypes.c_char_p
    return lib


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
        lib = _load(library)
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
