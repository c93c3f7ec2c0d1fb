"""Tests for pipelines.data.layouts against the tiny layouts written by fixtures.layouts."""

from __future__ import annotations

import math
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from fixtures.layouts import CORRUPT_KINDS, WRITERS, write_all, write_layout
from pipelines.data.layouts import (
    DATASETS,
    Layout,
    LayoutError,
    _audioset_name,
    _silence_segments,
    _start_matches,
    dataset_options,
    discover,
)
from pipelines.data.layouts.base import OUTSIDE_ROOT

# (dataset, fixture size options) for every layout, Speech Commands in its four flavours
CASES = [
    *[(name, {}) for name in WRITERS if name != "speech_commands"],
    ("speech_commands", {"version": 2, "classes": "12"}),
    ("speech_commands", {"version": 2, "classes": "all"}),
    ("speech_commands", {"version": 1, "classes": "12"}),
    ("speech_commands", {"version": 1, "classes": "all"}),
]


def case_id(case: tuple[str, dict]) -> str:
    name, sizes = case
    return "-".join([name, *(f"{k}{v}" for k, v in sizes.items())])


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, dict]:
    """Every fixture written once for the read-only tests."""
    root = tmp_path_factory.mktemp("layouts")
    return {case_id(case): write_layout(case[0], root / case_id(case), **case[1]) for case in CASES}


def read(described: dict, **options) -> Layout:
    return discover(described["dataset"], described["root"], **{**described["options"], **options})


def by_id(layout: Layout) -> dict:
    return {record.id: record for record in layout.records}


# ---------------------------------------------------------------------------------------------
# Every dataset: counts, vocabulary, labels, order
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_layout_matches_what_the_fixture_wrote(written, case):
    described = written[case_id(case)]
    expected = described["expected"]
    layout = read(described)

    assert layout.dataset == case[0]
    assert len(layout.records) == expected["records"]
    assert dict(Counter(r.split for r in layout.records)) == expected["per_split"]
    if "per_fold" in expected:
        assert dict(Counter(r.fold for r in layout.records if r.fold is not None)) == expected["per_fold"]
    assert layout.vocabulary == expected["vocabulary"]
    assert len(layout.missing) == expected["missing"]
    assert len(layout.excluded) == expected["excluded"]
    records = by_id(layout)
    for record_id, labels in expected["labels"].items():
        assert records[record_id].labels == labels, record_id
    for key, value in expected["info"].items():
        assert layout.info[key] == value

    # invariants every reader keeps
    ids = [r.id for r in layout.records]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for record in layout.records:
        assert os.path.isabs(record.path) and Path(record.path).is_file(), record
        assert record.labels and set(record.labels) <= set(layout.vocabulary), record
    used = {label for r in layout.records for label in r.labels}
    assert set(layout.vocabulary) == used and len(layout.vocabulary) == len(used)
    # the deliberately corrupt files are still records: decoding is a later stage's business
    paths = {r.path for r in layout.records}
    assert len(described["corrupt"]) == len(CORRUPT_KINDS)
    assert {str(Path(described["root"]) / rel) for rel in described["corrupt"]} <= paths


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_discovery_is_deterministic(written, case):
    described = written[case_id(case)]
    assert read(described) == read(described)


def test_fixtures_are_deterministic(tmp_path):
    first = write_all(tmp_path / "a")
    second = write_all(tmp_path / "b")
    assert set(first) == set(second) == set(DATASETS)
    assert [f["expected"] for f in first.values()] == [s["expected"] for s in second.values()]
    for name in first:
        a, b = discover(name, tmp_path / "a" / name), discover(name, tmp_path / "b" / name)
        assert [r.id for r in a.records] == [r.id for r in b.records]
        for ra, rb in zip(a.records, b.records):
            # same content, not just the same names; compared decoded where bytes legitimately
            # differ (Ogg streams carry a random serial number, float WAVs a timestamped PEAK chunk)
            bytes_a, bytes_b = Path(ra.path).read_bytes(), Path(rb.path).read_bytes()
            if bytes_a != bytes_b:
                np.testing.assert_array_equal(sf.read(ra.path)[0], sf.read(rb.path)[0])
        assert 8 <= first[name]["audio_files"] <= 40


# ---------------------------------------------------------------------------------------------
# The fixtures themselves: formats and corrupt files are what they claim
# ---------------------------------------------------------------------------------------------


def test_fixture_audio_formats_and_corrupt_files(written):
    formats, stereo_44k = Counter(), 0
    for described in written.values():
        root = Path(described["root"])
        kinds = described["corrupt_kinds"]
        assert sorted(kinds.values()) == sorted(CORRUPT_KINDS)
        for rel, kind in kinds.items():
            path = root / rel
            if kind == "empty":
                assert path.stat().st_size == 0
            elif kind == "random_bytes":
                with pytest.raises(sf.LibsndfileError):
                    sf.info(path)
            elif kind == "truncated":
                # the data chunk promises a second of 16-bit samples; fewer bytes follow it
                header = path.read_bytes()[:44]
                assert header[36:40] == b"data" and int.from_bytes(header[40:44], "little") == 32000
                assert 44 < path.stat().st_size < 44 + 32000
            elif kind == "digital_silence":
                assert not np.any(sf.read(path)[0])
            elif kind == "nan":
                assert sf.info(path).subtype == "FLOAT" and np.isnan(sf.read(path)[0]).any()
        for record in read(described).records:
            if record.path in {str(root / rel) for rel in kinds}:
                continue
            info = sf.info(record.path)
            formats[info.format] += 1
            stereo_44k += info.samplerate == 44100 and info.channels == 2
    assert formats["FLAC"] and formats["OGG"] and formats["WAV"]
    assert formats["MP3"] or "MP3" not in sf.available_formats()
    assert stereo_44k >= len(WRITERS)  # at least one per layout


def test_clean_fixture_and_huge_clip(tmp_path):
    clean = write_layout("us8k", tmp_path / "clean", corrupt=False)
    assert clean["corrupt"] == []
    for record in discover("us8k", clean["root"]).records:
        assert sf.info(record.path).frames > 0
    huge = write_layout("voxceleb1", tmp_path / "huge", corrupt=False, huge_seconds=30)
    (rel,) = huge["corrupt"]
    assert huge["corrupt_kinds"] == {rel: "huge"}
    assert sf.info(tmp_path / "huge" / rel).duration == pytest.approx(30)
    assert str(tmp_path / "huge" / rel) in {r.path for r in discover("voxceleb1", huge["root"]).records}


def test_unknown_fixture_options_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="n_unbalanced"):
        write_layout("audioset", tmp_path, n_unbalance=3)
    with pytest.raises(ValueError, match="no fixture"):
        write_layout("librispeech", tmp_path)


# ---------------------------------------------------------------------------------------------
# AudioSet: file naming conventions, subset
# ---------------------------------------------------------------------------------------------


def test_audioset_matches_every_file_naming_convention(written):
    described = written["audioset"]
    root, ids, expected = Path(described["root"]), described["ids"], described["expected"]
    layout = read(described)
    records = by_id(layout)
    # Y<ytid>_<start>_<end>.wav, also for an id that itself starts with Y (file "YY...")
    for record_id, rel in expected["paths"].items():
        assert records[record_id].path == str(root / rel)
    assert ids["y_prefixed_y_id"].split("/")[1].startswith("Y")
    assert Path(records[ids["y_prefixed_y_id"]].path).name.startswith("YY")
    # an id starting with Y named plainly <ytid>.wav is not read as Y + 10 characters
    starts_with_y = ids["starts_with_y"].split("/")[1]
    assert starts_with_y.startswith("Y") and Path(records[ids["starts_with_y"]].path).name == f"{starts_with_y}.wav"
    # start in milliseconds (_30000.ogg), an id starting with "-", nested folders, display names with commas
    assert records[ids["ogg_start_ms"]].path.endswith("_30000.ogg")
    assert ids["dash_id"] == "balanced_train/--PJHxphWEs"
    assert "/deeper/still/" in records[ids["nested"]].path
    assert records[ids["stereo_44k"]].labels == ("Child speech, kid speaking", "Shout")
    # a row without a file and a file for another part of the video are missing, by YouTube id
    assert layout.missing == expected["missing_ids"]
    # the start-less twin of the FLAC that names the segment's start is left out, with the reason
    ((path, reason),) = layout.excluded
    assert path.endswith(f"{ids['flac_start_seconds'].split('/')[1]}.wav") and "used instead" in reason
    # the unused class (Bellow) is not in the vocabulary; the order is class_labels_indices' index
    assert "Bellow" not in layout.vocabulary
    assert layout.vocabulary[:2] == ["Speech", "Male speech, man speaking"] and layout.vocabulary[-1] == "Gush"


def test_audioset_options(written, tmp_path):
    described = written["audioset"]
    only_eval = read(described, segments="eval")
    assert {r.split for r in only_eval.records} == {"eval"} and only_eval.info["segments"] == ["eval"]
    both = read(described, segments=("eval", "balanced_train"))
    assert dict(Counter(r.split for r in both.records)) == {
        k: v for k, v in described["expected"]["per_split"].items() if k != "unbalanced_train"
    }
    # audio moved elsewhere: found through audio_dir (absolute or relative to root)
    copy = tmp_path / "as"
    shutil.copytree(described["root"], copy)
    (copy / "audio").rename(copy / "clips")
    assert len(discover("audioset", copy, audio_dir="clips").records) == described["expected"]["records"]
    assert len(discover("audioset", copy, audio_dir=str(copy / "clips")).records) == described["expected"]["records"]
    with pytest.raises(LayoutError, match="audio_dir"):
        discover("audioset", copy)
    # lists can be absent as long as one is present
    (copy / "eval_segments.csv").unlink()
    assert {r.split for r in discover("audioset", copy, audio_dir="clips").records} == {"balanced_train", "unbalanced_train"}
    with pytest.raises(LayoutError, match="eval_segments.csv not found"):
        discover("audioset", copy, audio_dir="clips", segments=["eval"])
    for name in ("balanced_train", "unbalanced_train"):
        (copy / f"{name}_segments.csv").unlink()
    with pytest.raises(LayoutError, match="balanced_train_segments.csv"):
        discover("audioset", copy, audio_dir="clips")


@pytest.mark.parametrize(
    "stem, known, reading",
    [
        ("--PJHxphWEs", {"--PJHxphWEs"}, [("--PJHxphWEs", None)]),
        ("Y--PJHxphWEs_30.000_40.000", {"--PJHxphWEs"}, [("--PJHxphWEs", "30.000")]),
        ("YabcdefghiJ", {"YabcdefghiJ"}, [("YabcdefghiJ", None)]),  # an id starting with Y
        ("YabcdefghiJ_30", {"YabcdefghiJ"}, [("YabcdefghiJ", "30")]),
        ("YYabcdefghiJ_0.000_10.000", {"YabcdefghiJ"}, [("YabcdefghiJ", "0.000")]),
        ("YabcdefghiJK", {"abcdefghiJK"}, [("abcdefghiJK", None)]),  # Y + id, no times
        ("ab_defghi-__30000", {"ab_defghi-_"}, [("ab_defghi-_", "30000")]),  # "_" and "-" inside the id
        ("abcdefghijk_30", {"zzzzzzzzzzz"}, []),  # not in any segment list
        ("abcdefghij", {"abcdefghij"}, []),  # 10 characters: not a YouTube id
    ],
)
def test_audioset_file_names(stem, known, reading):
    assert _audioset_name(stem, known) == reading


@pytest.mark.parametrize(
    "text, start, matches",
    [
        (None, 30.0, True),
        ("30", 30.0, True),
        ("30.000", 30.0, True),
        ("30000", 30.0, True),
        ("30", 30.5, True),
        ("30.500", 30.5, True),
        ("99.000", 30.0, False),
        ("31", 30.0, False),
        ("30.000", 30000.0, False),
    ],
)
def test_audioset_start_in_file_name(text, start, matches):
    assert _start_matches(text, start) is matches


@pytest.fixture(scope="module")
def big_audioset(tmp_path_factory) -> dict:
    return write_layout("audioset", tmp_path_factory.mktemp("big") / "audioset", n_unbalanced=200)


def test_audioset_fraction_is_stratified_deterministic_and_about_the_fraction(big_audioset):
    full = read(big_audioset, segments="unbalanced_train")
    assert len(full.records) == 200
    counts = Counter(label for r in full.records for label in r.labels)
    rare = big_audioset["expected"]["rare"]
    assert counts[rare] == 2 and min(counts.values()) == 2

    subsets = {seed: read(big_audioset, segments="unbalanced_train", fraction=0.1, seed=seed) for seed in (0, 1)}
    again = read(big_audioset, segments="unbalanced_train", fraction="0.1", seed="0")  # as a CLI passes them
    assert [r.id for r in again.records] == [r.id for r in subsets[0].records]
    assert {r.id for r in subsets[0].records} != {r.id for r in subsets[1].records}
    for subset in subsets.values():
        chosen = Counter(label for r in subset.records for label in r.labels)
        for label, n in counts.items():
            assert chosen[label] >= math.ceil(0.1 * n), label  # every class kept, the rare one included
        assert 20 <= len(subset.records) <= 35  # ~10 % of 200, a little over where classes overlap
        assert subset.vocabulary == full.vocabulary
        assert {r.id for r in subset.records} <= {r.id for r in full.records}
        assert subset.info["fraction"] == 0.1
    assert read(big_audioset, fraction=1.0).records == read(big_audioset).records
    # the fraction applies to each list separately
    per_split = Counter(r.split for r in read(big_audioset, fraction=0.5).records)
    assert per_split["balanced_train"] >= 3 and 100 <= per_split["unbalanced_train"] <= 130


@pytest.mark.parametrize("fraction", [0, -0.1, 1.5, "a tenth"])
def test_audioset_bad_fraction(written, fraction):
    with pytest.raises(LayoutError, match="fraction"):
        read(written["audioset"], fraction=fraction)


# ---------------------------------------------------------------------------------------------
# Speech Commands
# ---------------------------------------------------------------------------------------------


# (split, id, start) of the _silence_ clips cut from the fixture's two 5-s noise files, worked out
# by hand from the segment rule (the arithmetic is at _SILENCE_CLIPS in fixtures/layouts/speech.py)
SILENCE_CLIPS = [
    ("test", "_background_noise_/running_tap.wav@3.875", 3.875),
    ("train", "_background_noise_/running_tap.wav@0.750", 0.75),
    ("train", "_background_noise_/white_noise.wav@0.750", 0.75),
    ("validation", "_background_noise_/running_tap.wav@2.625", 2.625),
]


@pytest.mark.parametrize("version", [1, 2])
def test_speech_commands_silence_is_cut_from_background_noise(written, version):
    described = written[f"speech_commands-version{version}-classes12"]
    layout = read(described)
    silence = [r for r in layout.records if r.labels == ("_silence_",)]
    assert sorted((r.split, r.id, r.start) for r in silence) == SILENCE_CLIPS
    words = Counter(r.split for r in layout.records if r.labels != ("_silence_",))
    assert Counter(r.split for r in silence) == {split: round(n / 11) for split, n in words.items()}
    assert layout.info["silence"] == described["expected"]["silence"]

    intervals = []
    for record in silence:
        assert Path(record.path).parent.name == "_background_noise_"
        assert record.duration == 1.0
        assert 0 <= record.start <= described["expected"]["noise_seconds"] - 1
        intervals.append((record.path, record.start, record.start + 1, record.split))
    # no second of noise is shared by two clips, so none by two splits
    for i, (path, a, b, split) in enumerate(intervals):
        for other_path, c, d, other_split in intervals[i + 1 :]:
            if path == other_path:
                assert b <= c or d <= a, (split, other_split)
    # spread over the noise files
    assert len({r.path for r in silence}) == 2


@pytest.mark.parametrize(
    "lengths, wanted, segments",
    [
        ([3000], {"train": 3}, {"train": [(0, 0), (0, 1000), (0, 2000)]}),  # evenly from the region's start to its end
        ([3000], {"train": 2, "validation": 1}, {"train": [(0, 0), (0, 1000)], "validation": [(0, 2000)]}),  # [0, 2000), [2000, 3000)
        ([1500], {"test": 3}, {"test": [(0, 0), (0, 250), (0, 500)]}),  # more clips than seconds: even overlap
        ([1500, 6000], {"train": 1, "test": 1}, {"train": [(1, 1000)], "test": [(1, 4000)]}),  # regions under 1 s: none
        ([1500, 6000], {"train": 2, "test": 1}, {"train": [(1, 0), (1, 3000)], "test": [(1, 4500)]}),  # largest remainder
        ([2000, 2000], {"validation": 1}, {"validation": [(0, 500)]}),  # a tie goes to the first file; one clip: the middle
        ([2000], {"train": 1, "validation": 0}, {"train": [(0, 500)]}),  # a split asking for nothing gets no entry
    ],
)
def test_silence_segments_by_hand(lengths, wanted, segments):
    noise = [(Path(f"noise{i}.wav"), length) for i, length in enumerate(lengths)]
    expected = {split: [(noise[i][0], offset) for i, offset in placed] for split, placed in segments.items()}
    assert _silence_segments(noise, wanted) == expected


def test_speech_commands_versions_and_classes(written):
    v2 = read(written["speech_commands-version2-classes12"])
    assert v2.info["version"] == 2 and v2.vocabulary[-2:] == ["_silence_", "_unknown_"]
    assert by_id(v2)[written["speech_commands-version2-classes12"]["ids"]["train_follow"]].labels == ("_unknown_",)
    assert read(written["speech_commands-version1-classes12"]).info["version"] == 1
    every = read(written["speech_commands-version2-classesall"])
    assert "_silence_" not in every.vocabulary and "_unknown_" not in every.vocabulary
    assert every.vocabulary == sorted(every.vocabulary) and "follow" in every.vocabulary
    assert len(every.vocabulary) == len(every.info["words"])
    assert read(written["speech_commands-version2-classes12"]).missing == ["no/deadbeef_nohash_9.wav"]
    with pytest.raises(LayoutError, match="classes"):
        discover("speech_commands", written["speech_commands-version2-classes12"]["root"], classes="35")


def test_iemocap_merges_excited_and_excludes_other_emotions(written):
    described = written["iemocap"]
    layout = read(described)
    records = by_id(layout)
    assert records[described["ids"]["exc"]].labels == ("hap",)
    assert sorted(reason for _, reason in layout.excluded) == described["expected"]["excluded_reasons"]
    assert all(Path(path).is_file() for path, _ in layout.excluded)
    assert {r.split for r in layout.records} == {"all"}
    assert records["Ses03F_impro05_F000"].fold == 3
    assert not any("X999" in r.id for r in layout.records)  # per-annotator sub-folders are ignored
    assert layout.missing == ["Ses04M_script02_2_M001"]


@pytest.mark.parametrize("dataset", ["manifest", "voxforge"])
def test_metadata_paths_that_leave_the_root_are_excluded_unless_allowed(dataset, tmp_path):
    """``..``, an absolute path elsewhere and a symlink pointing out of the root are excluded with
    their reason (a manifest must not make ingest read the rest of the disk); the option lets them in."""
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    (root / "clips").mkdir(parents=True)
    elsewhere.mkdir()
    for folder, name in ((root / "clips", "in.wav"), (tmp_path, "up.wav"), (elsewhere, "far.wav"), (elsewhere, "linked.wav")):
        sf.write(folder / name, np.zeros(1600, np.float32), 16000)
    (root / "clips" / "link.wav").symlink_to(elsewhere / "linked.wav")
    (root / "inner").symlink_to(root / "clips", target_is_directory=True)  # a symlink that stays inside is fine
    paths = ["clips/in.wav", "../up.wav", str(elsewhere / "far.wav"), "clips/link.wav", "inner/in.wav"]
    if dataset == "manifest":
        csv_text = "path,label\n" + "".join(f"{path},{'dog' if i % 2 else 'cat'}\n" for i, path in enumerate(paths[:4]))
        (root / "manifest.csv").write_text(csv_text + f"{paths[4]},cat\n")
    else:
        (root / "voxforge.csv").write_text("path,language,split\n" + "".join(f"{path},de,train\n" for path in paths))
    layout = discover(dataset, root)
    assert sorted(r.id for r in layout.records) == ["clips/in.wav", "inner/in.wav"]
    outside = sorted(Path(path).name for path, reason in layout.excluded if reason == OUTSIDE_ROOT)
    assert outside == ["far.wav", "link.wav", "up.wav"] and len(layout.excluded) == 3
    allowed = discover(dataset, root, allow_outside_root=True)
    assert len(allowed.records) == 5 and not allowed.excluded


def test_manifest_and_voxforge_quirks(written, tmp_path):
    manifest = read(written["manifest"])
    records = by_id(manifest)
    assert records["clips/c/six.wav"].path == str(Path(written["manifest"]["root"]) / "clips/c/six.wav")  # absolute in CSV
    assert records["clips/c/five.wav"].split == "train" and records["clips/c/five.wav"].fold is None
    assert records["clips/b/three.ogg"].split == "validation"
    voxforge = read(written["voxforge"])
    assert {r.split for r in voxforge.records} == {"train", "validation", "test"}
    ((path, reason),) = voxforge.excluded
    assert "'nl'" in reason
    # a manifest elsewhere, named by the option (relative to root)
    root = Path(written["manifest"]["root"])
    copy = tmp_path / "m"
    shutil.copytree(root, copy)
    (copy / "manifest.csv").rename(copy / "lists.csv")
    moved = discover("manifest", copy, manifest="lists.csv")
    # the CSV's absolute path still names the original root's six.wav: outside this root
    assert len(moved.records) == len(manifest.records) - 1 and [reason for _, reason in moved.excluded] == [OUTSIDE_ROOT]
    assert len(discover("manifest", copy, manifest="lists.csv", allow_outside_root=True).records) == len(manifest.records)
    # a label column spelt differently: the message names the file and the columns found
    (copy / "bad.csv").write_text("file,class\nclips/a/one.wav,dog\n")
    with pytest.raises(LayoutError, match=r"bad\.csv.*columns found: file, class"):
        discover("manifest", copy, manifest="bad.csv")
    (copy / "bad.csv").write_text("path,language\nclips/a/one.wav,de\n")
    with pytest.raises(LayoutError, match=r"bad\.csv: missing column split; columns found: path, language"):
        discover("voxforge", copy, manifest="bad.csv")
    (copy / "bad.csv").write_text("path,language,split\nclips/a/one.wav,de,holdout\n")
    with pytest.raises(LayoutError, match=r"bad\.csv:2: split 'holdout'"):
        discover("voxforge", copy, manifest="bad.csv")


def test_folder_split_option(written):
    layout = read(written["folder"], split="test")
    assert {r.split for r in layout.records} == {"test"}
    assert not any(Path(r.path).name in ("loose.wav", "hidden.wav") for r in layout.records)


# ---------------------------------------------------------------------------------------------
# Errors: they name what was expected
# ---------------------------------------------------------------------------------------------

EXPECTED_METADATA = {
    "audioset": "class_labels_indices.csv not found",
    "fsd50k": "FSD50K.ground_truth/dev.csv not found: is --root the FSD50K folder?",
    "speech_commands": "validation_list.txt not found",
    "voxceleb1": "iden_split.txt not found",
    "iemocap": "Session1/dialog/EmoEvaluation not found",
    "voxforge": "voxforge.csv not found",
    "nsynth": "nsynth-train/examples.json not found",
    "us8k": "metadata/UrbanSound8K.csv not found",
    "folder": "label sub-folders",
    "manifest": "manifest.csv not found",
}


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_wrong_root_names_the_expected_metadata(dataset, tmp_path):
    (tmp_path / "somewhere").mkdir()
    (tmp_path / "somewhere" / "stray.wav").write_bytes(b"")
    with pytest.raises(LayoutError) as error:
        discover(dataset, tmp_path / "somewhere")
    assert EXPECTED_METADATA[dataset] in str(error.value)
    assert str(tmp_path / "somewhere") in str(error.value)
    with pytest.raises(LayoutError, match="does not exist"):
        discover(dataset, tmp_path / "nowhere")


@pytest.mark.parametrize(
    "dataset, remove, message",
    [
        ("fsd50k", "FSD50K.ground_truth/vocabulary.csv", "vocabulary.csv not found"),
        ("fsd50k", "FSD50K.ground_truth/eval.csv", "eval.csv not found"),
        ("speech_commands", "testing_list.txt", "testing_list.txt not found"),
        ("iemocap", "Session3/dialog/EmoEvaluation", "Session3/dialog/EmoEvaluation not found"),
        ("nsynth", "nsynth-valid/examples.json", "nsynth-valid/examples.json not found"),
        ("voxceleb1", "wav", "wav not found"),
        ("us8k", "audio", "audio not found"),
    ],
)
def test_partly_missing_metadata(dataset, remove, message, tmp_path):
    described = write_layout(dataset, tmp_path / dataset, corrupt=False)
    target = tmp_path / dataset / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(LayoutError, match=message):
        discover(dataset, described["root"], **described["options"])


def test_unknown_dataset_and_options_name_the_valid_ones(written):
    with pytest.raises(LayoutError, match="valid datasets: .*audioset.*speech_commands"):
        discover("librispeech", written["audioset"]["root"])
    valid = "valid options: segments, audio_dir, fraction, seed"
    with pytest.raises(LayoutError, match=rf"unknown option 'fractions' for audioset; {valid}"):
        discover("audioset", written["audioset"]["root"], fractions=0.1)
    with pytest.raises(LayoutError, match=r"valid options: \(none\)"):
        discover("fsd50k", written["fsd50k"]["root"], split="train")
    with pytest.raises(LayoutError, match="choose one or more of balanced_train, unbalanced_train, eval"):
        discover("audioset", written["audioset"]["root"], segments="training")
    with pytest.raises(LayoutError, match="valid datasets"):
        dataset_options("librispeech")


def test_dataset_options_list_defaults_and_help():
    options = dataset_options("audioset")
    assert list(options) == ["segments", "audio_dir", "fraction", "seed"]
    assert options["audio_dir"].default == "audio" and options["fraction"].default is None and options["seed"].default == 0
    assert dataset_options("speech_commands")["classes"].default == "12"
    assert all(option.help for name in DATASETS for option in dataset_options(name).values())
    assert dataset_options("iemocap") == {}
