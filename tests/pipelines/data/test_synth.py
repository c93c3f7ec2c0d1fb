"""`mast synth` with the real espeak-ng (espeakng-loader wheel), at small sizes, read back through
``pipelines.data.layouts`` exactly as ``mast ingest`` would read it."""

import csv
import hashlib
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from fixtures import REPO_ROOT
from pipelines.data.layouts import SILENCE, SPEECH_COMMANDS_WORDS, UNKNOWN, VOXFORGE_LANGUAGES, discover
from pipelines.data.synth import KEYWORDS, LANGUAGES, NSYNTH_FAMILIES, SENTENCES, SynthError, SynthSettings, synthesize

ROOT = REPO_ROOT
QUIET = lambda line: None  # noqa: E731
# 4 keyword speakers -> 2 train, 1 validation, 1 test; 3 speakers per language -> 1 / 1 / 1
# 3 instruments per family -> 1 / 1 / 1
SMALL = SynthSettings(
    tasks=("keywords", "languages", "instruments"),
    keyword_speakers=4,
    clips_per_word=4,
    language_speakers=3,
    clips_per_speaker=2,
    sentences=6,
    instruments_per_family=3,
    notes_per_instrument=2,
)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): digest(p) for p in sorted(root.rglob("*.wav"))}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("synth")
    first = synthesize(base / "a", SMALL, progress=QUIET)
    second = synthesize(base / "b", SynthSettings(**{**SMALL.__dict__, "workers": 1}), progress=QUIET)
    return base, first, second


def test_speech_commands_layout_reads_as_v2_with_35_and_12_classes(runs):
    base, first, _ = runs
    root = Path(first["speech_commands"]["path"])
    assert root == base / "a" / "speech_commands_synth"

    layout = discover("speech_commands", root, classes="all")
    assert layout.info["version"] == 2
    assert layout.vocabulary == sorted(KEYWORDS) and len(layout.vocabulary) == 35
    assert len(layout.records) == 35 * 4 == first["speech_commands"]["clips"]
    assert Counter(r.split for r in layout.records) == {"train": 70, "validation": 35, "test": 35}
    assert Counter(r.labels[0] for r in layout.records) == {word: 4 for word in KEYWORDS}
    assert layout.missing == [] and layout.excluded == []

    layout12 = discover("speech_commands", root, classes="12")
    assert layout12.vocabulary == [*SPEECH_COMMANDS_WORDS, SILENCE, UNKNOWN]
    labels = Counter(r.labels[0] for r in layout12.records)
    assert labels[UNKNOWN] == 25 * 4 and all(labels[w] == 4 for w in SPEECH_COMMANDS_WORDS)
    # _silence_ is cut from the synthesised _background_noise_ recordings: round(n / 11) per split
    assert layout12.info["silence"] == {"train": 6, "validation": 3, "test": 3}
    noise = sorted(p.name for p in (root / "_background_noise_").iterdir())
    assert "babble.wav" in noise and len(noise) >= 5
    assert all(sf.info(root / "_background_noise_" / name).duration >= 20 for name in noise)

    for record in layout.records[::7]:
        info = sf.info(record.path)
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (16000, 1, 16000, "PCM_16")


def test_voxforge_layout_reads_with_the_same_sentences_in_every_language(runs):
    _, first, _ = runs
    root = Path(first["voxforge"]["path"])
    layout = discover("voxforge", root)
    assert layout.vocabulary == list(VOXFORGE_LANGUAGES) and sorted(LANGUAGES) == sorted(VOXFORGE_LANGUAGES)
    assert len(layout.records) == 6 * 3 * 2 == first["voxforge"]["clips"]
    assert Counter(r.split for r in layout.records) == {"train": 12, "validation": 12, "test": 12}
    assert Counter(r.labels[0] for r in layout.records) == {language: 6 for language in LANGUAGES}
    with open(root / "voxforge.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {int(row["sentence"]) for row in rows} <= set(range(6))
    for row in rows:  # a prompt = its sentence, then another one of the 6, in the row's language
        first = SENTENCES[int(row["sentence"])][row["language"]]
        assert row["text"].startswith(first + " ")
        assert row["text"][len(first) + 1 :] in {SENTENCES[i][row["language"]] for i in range(6)} - {first}
    lengths = [sf.info(r.path).duration for r in layout.records]
    assert min(lengths) >= 2.0 and max(lengths) <= 4.0 and np.std(lengths) > 0.1
    assert all(set(sentence) == set(LANGUAGES) for sentence in SENTENCES)


def test_nsynth_layout_reads_with_instruments_disjoint_across_splits(runs):
    _, first, _ = runs
    root = Path(first["nsynth"]["path"])
    layout = discover("nsynth", root)
    assert layout.vocabulary == list(NSYNTH_FAMILIES) and layout.info["folders"] == ["nsynth-train", "nsynth-valid", "nsynth-test"]
    assert len(layout.records) == 11 * 3 * 2 == first["nsynth"]["clips"]
    assert Counter(r.split for r in layout.records) == {"train": 22, "validation": 22, "test": 22}
    instruments: dict[str, set[str]] = {}
    for folder in ("nsynth-train", "nsynth-valid", "nsynth-test"):
        examples = json.loads((root / folder / "examples.json").read_text())
        for note, example in examples.items():
            assert note == f"{example['instrument_str']}-{example['pitch']:03d}-{example['velocity']:03d}"
            assert example["instrument_str"].startswith(f"{example['instrument_family_str']}_{example['instrument_source_str']}_")
            assert example["velocity"] in (25, 50, 75, 100, 127) and 21 <= example["pitch"] <= 108
        instruments[folder] = {e["instrument_str"] for e in examples.values()}
    assert not (instruments["nsynth-train"] & instruments["nsynth-valid"]) and not (
        instruments["nsynth-train"] & instruments["nsynth-test"]
    )
    info = sf.info(layout.records[0].path)
    assert (info.samplerate, info.channels, info.frames) == (16000, 1, 64000)


def test_speakers_and_their_voice_variants_are_disjoint_across_splits(runs):
    _, first, _ = runs
    sc = Path(first["speech_commands"]["path"])
    by_split: dict[str, set[str]] = {}
    for record in discover("speech_commands", sc, classes="all").records:
        by_split.setdefault(record.split, set()).add(Path(record.path).name.split("_nohash_")[0])
    assert sum(len(s) for s in by_split.values()) == 4 == len(set.union(*by_split.values()))

    with open(Path(first["voxforge"]["path"]) / "voxforge.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    speakers = {split: {row["speaker"] for row in rows if row["split"] == split} for split in ("train", "validation", "test")}
    assert sum(len(s) for s in speakers.values()) == 18 == len(set.union(*speakers.values()))
    assert {len({row["language"] for row in rows if row["speaker"] == s}) for s in set.union(*speakers.values())} == {1}

    for name in ("speech_commands", "voxforge"):  # (instruments: see the NSynth test)
        stamp = json.loads((Path(first[name]["path"]) / "synth.json").read_text())
        variants = {split: {s["variant"] for s in stamp["speakers"] if s["split"] == split} for split in ("train", "validation", "test")}
        assert not (variants["train"] & variants["validation"]) and not (variants["train"] & variants["test"])
        assert not (variants["validation"] & variants["test"])


def test_no_digital_silence_and_no_duplicate_clips(runs):
    base, _, _ = runs
    paths = sorted((base / "a").rglob("*.wav"))
    assert len(paths) == 140 + 36 + 66 + 2 * 7  # clips + notes + the two noise banks
    levels, digests = [], set()
    for path in paths:
        samples, _ = sf.read(path, dtype="int16")
        zero = np.concatenate([[0], (samples == 0).astype(np.int8), [0]])
        edges = np.flatnonzero(np.diff(zero))
        longest = int((edges[1::2] - edges[::2]).max()) if edges.size else 0
        assert longest < 100, f"{path}: {longest} consecutive zero samples"
        assert np.abs(samples).max() < 32767, f"{path} clips"
        levels.append(10 * np.log10(np.mean(samples.astype(np.float64) ** 2)))
        digests.add(digest(path))
    assert len(digests) == len(paths)
    assert np.std(levels) > 2.0  # level jitter: not one normalised loudness

    # the same word by two speakers, and by one speaker twice, differs well beyond noise
    yes = sorted((base / "a" / "speech_commands_synth" / "yes").glob("*.wav"))
    waves = [sf.read(p, dtype="float32")[0] for p in yes]
    for i in range(len(waves)):
        for j in range(i + 1, len(waves)):
            assert np.abs(np.corrcoef(waves[i], waves[j])[0, 1]) < 0.9


def test_same_settings_give_identical_bytes_whatever_the_workers(runs):
    base, first, second = runs
    assert not first["speech_commands"]["reused"] and not second["voxforge"]["reused"]
    a, b = files(base / "a"), files(base / "b")
    assert a and a == b
    for name in (
        "speech_commands_synth/validation_list.txt",
        "speech_commands_synth/testing_list.txt",
        "voxforge_synth/voxforge.csv",
        "nsynth_synth/nsynth-test/examples.json",
    ):
        assert (base / "a" / name).read_bytes() == (base / "b" / name).read_bytes()


def test_another_process_gives_identical_bytes(runs, tmp_path):
    # espeak-ng seeds its breath-noise generator from the clock: only a fresh process shows it
    base, _, _ = runs
    command = [
        sys.executable,
        "-m",
        "pipelines",
        "synth",
        str(tmp_path),
        "--tasks",
        "keywords,languages,instruments",
        "--keyword-speakers",
        "4",
        "--clips-per-word",
        "4",
        "--language-speakers",
        "3",
        "--clips-per-speaker",
        "2",
        "--sentences",
        "6",
        "--instruments-per-family",
        "3",
        "--notes-per-instrument",
        "2",
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "[synth] keywords: 140/140 clips" in result.stdout and "[synth] done" in result.stdout
    assert files(tmp_path) == files(base / "a")


def test_rerun_reuses_and_another_seed_rewrites(runs):
    base, first, _ = runs
    clip = next((base / "a" / "speech_commands_synth" / "yes").glob("*.wav"))
    before = clip.stat().st_mtime_ns
    again = synthesize(base / "a", SMALL, progress=QUIET)
    assert again["speech_commands"]["reused"] and again["voxforge"]["reused"] and again["nsynth"]["reused"]
    assert clip.stat().st_mtime_ns == before

    lines: list[str] = []
    other = synthesize(base / "b", SynthSettings(**{**SMALL.__dict__, "seed": 1, "tasks": ("keywords",)}), progress=lines.append)
    assert not other["speech_commands"]["reused"] and "voxforge" not in other
    assert any("140/140 clips" in line for line in lines)
    a = files(base / "a" / "speech_commands_synth")
    c = files(base / "b" / "speech_commands_synth")
    assert len(c) == len(a) and set(c) != set(a)  # new speakers, new file names
    clips = {rel: h for rel, h in c.items() if not rel.startswith("_background_noise_")}
    assert not set(clips.values()) & set(a.values())  # and new audio
    assert len(discover("speech_commands", base / "b" / "speech_commands_synth", classes="all").records) == 140


@pytest.mark.parametrize(
    "settings, message",
    [
        (SynthSettings(tasks=("keywords", "music")), "unknown task 'music'"),
        (SynthSettings(keyword_speakers=10, clips_per_word=5), "--clips-per-word (5) must be >= --keyword-speakers (10)"),
        (SynthSettings(keyword_speakers=2), "--keyword-speakers must be >= 3"),
        (SynthSettings(sentences=99), f"--sentences must be between 1 and {len(SENTENCES)}"),
        (SynthSettings(sentences=4, clips_per_speaker=5), "--clips-per-speaker must be between 1 and --sentences (4)"),
        (SynthSettings(workers=0), "--workers must be >= 1"),
        (SynthSettings(notes_per_instrument=41), "--notes-per-instrument must be between 1 and 40"),
    ],
)
def test_bad_settings_fail_before_any_work(tmp_path, settings, message):
    with pytest.raises(SynthError) as error:
        synthesize(tmp_path / "out", settings, progress=QUIET)
    assert message in str(error.value)
    assert not (tmp_path / "out").exists()


def test_cli_refuses_a_folder_it_did_not_write(tmp_path):
    foreign = tmp_path / "speech_commands_synth"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    result = subprocess.run(
        [sys.executable, "-m", "pipelines", "synth", str(tmp_path), "--tasks", "keywords"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "was not written by mast synth" in result.stderr and str(foreign) in result.stderr
    assert "[synth]" not in result.stdout
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
