"""What ``mast synth`` is asked for: :class:`SynthSettings`, their checks and the fixed vocabulary.

The constants here are shared by every other module of the package: the sample rate, the task
names and their folders, the split ratios, the 35 keywords, the six languages and the fixed
sentences every language speaks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

SAMPLE_RATE = 16_000
FORMAT_VERSION = 1
STAMP_FILE = "synth.json"
PARTIAL_MARK = ".synth-partial"
TASKS = ("keywords", "languages", "instruments")
DEFAULT_TASKS = ("keywords", "languages")
DATASET_OF_TASK = {"keywords": "speech_commands", "languages": "voxforge", "instruments": "nsynth"}
FOLDER_OF_TASK = {"keywords": "speech_commands_synth", "languages": "voxforge_synth", "instruments": "nsynth_synth"}
JOB_CLIPS = 32  # clips per forked job: fixed, so the output does not depend on --workers
BANK_SECONDS = 30.0  # length of each background-noise recording
BABBLE_STREAMS = 6  # talkers summed into the babble recording
KEYWORD_SPLITS = {"train": 0.8, "validation": 0.1, "test": 0.1}  # Speech Commands' own ratio
LANGUAGE_SPLITS = {"train": 0.7, "validation": 0.15, "test": 0.15}
INSTRUMENT_SPLITS = {"train": 0.7, "validation": 0.15, "test": 0.15}
SPLITS = ("train", "validation", "test")
MAX_NOTES = 40  # notes one instrument may play (--notes-per-instrument)

# fmt: off
# The 35 Speech Commands V2 words (the 10 commands first, as in the paper's 12-class task).
KEYWORDS = (
    "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow",
    "backward", "forward", "follow", "learn", "visual",
)
LANGUAGES = ("en", "de", "fr", "es", "it", "ru")

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
# fmt: on


class SynthError(ValueError):
    """A bad request (argument, output folder) or a broken espeak-ng install; the message says which."""


@dataclass(frozen=True)
class SynthSettings:
    """What to synthesise. Only ``workers`` leaves the output unchanged."""

    tasks: tuple[str, ...] = DEFAULT_TASKS
    keyword_speakers: int = 80  # speakers of the keyword set, split 80/10/10
    clips_per_word: int = 80  # clips of each of the 35 words, spread over the speakers
    language_speakers: int = 40  # speakers per language, split 70/15/15
    clips_per_speaker: int = 4  # sentences each language speaker reads
    sentences: int = len(SENTENCES)  # how many of the fixed sentences to use
    instruments_per_family: int = 10  # instruments of each of the 11 NSynth families, split 70/15/15
    notes_per_instrument: int = 8  # notes (pitch, velocity) played by each instrument
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


# The defaults of every setting, for the command line's help.
FLAG_DEFAULTS = {f.name: f.default for f in fields(SynthSettings)}


def _check_folder(folder: Path) -> None:
    """A folder we may (re)write: absent, empty, or written by mast synth before."""
    if folder.exists() and not folder.is_dir():
        raise SynthError(f"{folder} exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        if not (folder / STAMP_FILE).is_file() and not (folder / PARTIAL_MARK).exists():
            raise SynthError(f"{folder} exists and was not written by mast synth; choose another OUT or remove it")


def check_request(out: str | Path, settings: SynthSettings) -> Path:
    """Everything that can be checked before work starts: settings and output folders."""
    settings.validate()
    out = Path(os.path.abspath(os.path.expanduser(os.fspath(out))))
    if out.exists() and not out.is_dir():
        raise SynthError(f"OUT {out} exists and is not a folder")
    for task in settings.tasks:
        _check_folder(out / FOLDER_OF_TASK[task])
    return out
