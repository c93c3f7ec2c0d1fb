"""`mast ingest` on the fixture copies of every layout, with real Ray, real FLAC and Parquet."""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from fixtures import REPO_ROOT
from fixtures.layouts import write_layout
from mast_core.audio import decode_audio, quantisation_step, read_audio
from mast_core.features import compute_stats, log_mel
from pipelines.data.ingest import IngestError, IngestSettings, ingest
from pipelines.data.layouts import DATASETS, LayoutError, discover

ROOT = REPO_ROOT
REASON_OF_KIND = {
    "empty": "empty file",
    "truncated": "truncated",
    "random_bytes": "unreadable",
    "digital_silence": "silent",
    "nan": "non-finite samples",
}
QUIET = lambda line: None  # noqa: E731


def without(counts: dict[str, int], lost: Counter) -> dict[str, int]:
    """``counts`` less ``lost``, keys whose count reaches 0 dropped."""
    left = Counter(counts)
    left.subtract(lost)
    return {key: value for key, value in left.items() if value}


def read_rows(out: Path) -> list[dict]:
    manifest = json.loads((out / "manifest.json").read_text())
    return [row for shard in manifest["shards"] for row in pq.read_table(out / shard["file"]).to_pylist()]


@pytest.fixture(scope="module")
def ingested(ray_local, tmp_path_factory):
    """Every layout written with corrupt files and ingested once (small shards: several per set)."""
    results = {}
    for dataset in sorted(DATASETS):
        base = tmp_path_factory.mktemp(dataset)
        fixture = write_layout(dataset, base / "root")
        report = ingest(dataset, base / "root", base / "out", fixture.get("options", {}), IngestSettings(shard_mb=0.05), progress=QUIET)
        results[dataset] = (fixture, report, base)
    return results


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_each_layout_ingests_to_the_right_counts_labels_splits_and_folds(ingested, dataset):
    fixture, report, base = ingested[dataset]
    expected = fixture["expected"]
    manifest = report.manifest
    corrupt = [REASON_OF_KIND[kind] for kind in fixture["corrupt_kinds"].values()]
    decode_skips = [entry["reason"] for entry in manifest["skipped"] if entry["reason"] != "excluded"]
    assert sorted(decode_skips) == sorted(corrupt)
    assert manifest["written"] == expected["records"] - len(corrupt)
    assert manifest["written"] + manifest["skipped_count"] == manifest["discovered"]
    assert manifest["discovered"] == expected["records"] + expected["excluded"]
    assert manifest["missing"]["count"] == expected["missing"]
    assert manifest["vocabulary"] == expected["vocabulary"]
    rows = read_rows(base / "out")
    assert len(rows) == manifest["written"] == sum(manifest["splits"].values())
    assert len({row["id"] for row in rows}) == len(rows)
    labels = expected["labels"]
    for row in rows:
        assert tuple(row["labels"]) == tuple(labels[row["id"]])
        assert [manifest["vocabulary"][i] for i in row["label_indices"]] == row["labels"]
        assert row["sample_rate"] == 16000 and row["num_samples"] > 0
    written_ids = {row["id"] for row in rows}
    per_split = dict(Counter(row["split"] for row in rows))
    assert per_split == manifest["splits"]
    # Exactly the fixture's counts less the records whose audio was corrupt. Which records those
    # are comes from the layout reader, whose counts test_layouts pins to the fixture's.
    layout = discover(dataset, base / "root", **fixture.get("options", {}))
    assert dict(Counter(record.split for record in layout.records)) == expected["per_split"]
    corrupt_paths = {str((base / "root" / rel).resolve()) for rel in fixture["corrupt"]}
    lost = [record for record in layout.records if str(Path(record.path).resolve()) in corrupt_paths]
    assert len(lost) == len(corrupt)
    assert {entry["id"] for entry in manifest["skipped"] if entry["reason"] != "excluded"} == {record.id for record in lost}
    assert per_split == without(expected["per_split"], Counter(record.split for record in lost))
    if expected.get("per_fold"):
        per_fold = dict(Counter(str(row["fold"]) for row in rows if row["fold"] is not None))
        assert per_fold == manifest["folds"]
        assert per_fold == without(
            {str(fold): count for fold, count in expected["per_fold"].items()},
            Counter(str(record.fold) for record in lost if record.fold is not None),
        )
    assert written_ids == set(labels) - {record.id for record in lost}
    # The normalisation statistics are those of every written clip (each shard holds fewer clips
    # than the per-shard stats sample): recomputed here in one pass over the decoded FLAC, and over
    # the source audio the shards summarised (16-bit FLAC moves the figures by up to ~2e-3).
    assert all(shard["rows"] <= IngestSettings().stats_clips_per_shard for shard in manifest["shards"])
    kept = [row for row in rows if row["num_samples"] >= 400]  # clips shorter than one window have no frames
    decoded = compute_stats(log_mel(decode_audio(row["audio"])) for row in kept)
    record_of = {record.id: record for record in layout.records}
    source = compute_stats(
        log_mel(read_audio(record.path, start=record.start, duration=record.duration)) for record in (record_of[row["id"]] for row in kept)
    )
    stats = manifest["stats"]
    assert stats["num_frames"] == decoded.num_frames == source.num_frames > 0
    assert stats["mean"] == pytest.approx(decoded.mean, rel=5e-3) and stats["std"] == pytest.approx(decoded.std, rel=5e-3)
    assert stats["mean"] == pytest.approx(source.mean, rel=1e-6) and stats["std"] == pytest.approx(source.std, rel=1e-6)


def test_rerun_is_a_no_op(ingested):
    fixture, report, base = ingested["us8k"]
    shards = sorted((base / "out" / "shards").glob("*.parquet"))
    times = [path.stat().st_mtime_ns for path in shards]
    again = ingest("us8k", base / "root", base / "out", settings=IngestSettings(shard_mb=0.05), progress=QUIET)
    assert again.shards_reused == again.shards == report.shards > 1
    assert [path.stat().st_mtime_ns for path in shards] == times
    assert again.manifest == report.manifest


def test_interrupted_ingest_resumes_the_missing_shard(ingested):
    _, report, base = ingested["nsynth"]
    (base / "out" / "shards" / "part-00001.json").unlink()  # as if killed before the summary landed
    again = ingest("nsynth", base / "root", base / "out", settings=IngestSettings(shard_mb=0.05), progress=QUIET)
    assert again.shards_reused == report.shards - 1
    assert again.manifest == report.manifest


def test_same_input_gives_the_same_shards(ingested, tmp_path):
    _, report, base = ingested["speech_commands"]
    other = ingest("speech_commands", base / "root", tmp_path / "again", settings=IngestSettings(shard_mb=0.05), progress=QUIET)
    assert other.manifest["shards"] == report.manifest["shards"]
    for shard in report.manifest["shards"]:
        first = pq.read_table(base / "out" / shard["file"])
        second = pq.read_table(tmp_path / "again" / shard["file"])
        assert first.equals(second)


def test_a_different_ingest_into_the_same_folder_is_refused(ingested):
    _, _, base = ingested["speech_commands"]
    with pytest.raises(IngestError, match="holds a different ingest"):
        ingest("speech_commands", base / "root", base / "out", {"classes": "all"}, IngestSettings(shard_mb=0.05), progress=QUIET)


def test_shards_round_trip_to_the_resampled_source(ingested):
    _, _, base = ingested["folder"]
    rows = read_rows(base / "out")
    manifest = json.loads((base / "out" / "manifest.json").read_text())
    checked = 0
    for row in rows:
        source = Path(manifest["root"]) / row["source"]
        original = read_audio(source)
        decoded = decode_audio(row["audio"])
        assert decoded.shape == original.shape
        assert float((decoded - original.clamp(-1, 1)).abs().max()) <= quantisation_step(16)
        checked += 1
    assert checked == len(rows) > 0


def test_huge_files_are_skipped_and_listed(ray_local, tmp_path):
    fixture = write_layout("us8k", tmp_path / "root", corrupt=False, huge_seconds=30)
    report = ingest("us8k", tmp_path / "root", tmp_path / "out", settings=IngestSettings(max_seconds=20), progress=QUIET)
    assert report.manifest["skipped_by_reason"] == {"too long": 1}
    assert report.written == fixture["expected"]["records"] - 1


def test_bad_root_fails_at_once_with_the_expected_path(tmp_path):
    with pytest.raises(LayoutError, match="UrbanSound8K.csv"):
        ingest("us8k", tmp_path, tmp_path / "out", progress=QUIET)
    assert not (tmp_path / "out").exists()
    result = subprocess.run(
        [sys.executable, "-m", "pipelines", "ingest", "fsd50k", "--root", str(tmp_path / "nope"), "--out", str(tmp_path / "o")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "mast ingest:" in result.stderr and "nope" in result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "pipelines", "ingest", "us8k", "--root", str(tmp_path), "--out", str(tmp_path / "o"), "--shard-mb", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "--shard-mb must be positive" in result.stderr
