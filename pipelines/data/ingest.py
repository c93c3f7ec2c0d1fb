"""`mast ingest DATASET --root PATH --out DIR`: a dataset in its published layout -> Parquet shards.

1. Discover the clips (``pipelines.data.layouts``): a wrong root or missing metadata fails here, before
   any work.
2. Plan the shards: clips in a fixed order are grouped so that each shard holds about
   ``--shard-mb`` of FLAC. The durations are read from the file headers. The plan is written to
   ``DIR/plan.json``.
3. Write the shards in parallel, as Ray Data tasks. Each shard decodes, checks and resamples its
   clips to 16 kHz mono, encodes them as 16-bit FLAC and writes ``shards/part-NNNNN.parquet``
   (zstd). A ``.json`` summary is written next to it: rows, per-split counts, skipped clips with
   their reasons, and log-mel statistics over a sample of clips. Both files are renamed into place
   only when complete.
4. Merge the summaries into ``DIR/manifest.json``: vocabulary, per-split/fold counts,
   normalisation statistics, every skipped file with its reason, and the shard list.

Re-running the same command skips shards that are already finished (resume). The same input
always gives the same shards (determinism). The counts always reconcile:
``written + skipped = discovered``.
"""

from __future__ import annotations

import functools
import io
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf

from mast_core.audio import AudioError, encode_flac, read_audio
from mast_core.features import SAMPLE_RATE, FeatureStats, compute_stats, log_mel, merge_stats
from pipelines.common import storage
from pipelines.data.layouts import ClipRecord, Layout, discover

FORMAT_VERSION = 1
PLAN_FILE = "plan.json"
MANIFEST_FILE = "manifest.json"
SHARD_DIR = "shards"
# 16-bit FLAC of natural audio is about 60 % of raw PCM; only used to size shards.
FLAC_BYTES_PER_SECOND = SAMPLE_RATE * 2 * 0.6

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("audio", pa.binary()),
        ("num_samples", pa.int64()),
        ("sample_rate", pa.int32()),
        ("labels", pa.list_(pa.string())),
        ("label_indices", pa.list_(pa.int32())),
        ("split", pa.string()),
        ("fold", pa.int32()),
        ("source", pa.string()),
    ]
)


class IngestError(ValueError):
    """A bad ingest request (output folder in use by another ingest, bad option value)."""


@dataclass(frozen=True)
class IngestSettings:
    shard_mb: float = 192.0
    max_seconds: float = 600.0
    stats_clips_per_shard: int = 32

    def validate(self) -> None:
        if not self.shard_mb > 0:
            raise IngestError(f"--shard-mb must be positive, got {self.shard_mb}")
        if not self.max_seconds > 0:
            raise IngestError(f"--max-seconds must be positive, got {self.max_seconds}")
        if self.stats_clips_per_shard < 1:
            raise IngestError(f"--stats-clips-per-shard must be >= 1, got {self.stats_clips_per_shard}")


@dataclass
class IngestReport:
    out: str  # a local path or a URI (s3://bucket/prefix ...)
    discovered: int
    written: int
    skipped: int
    missing: int
    shards: int
    shards_reused: int
    seconds: float
    manifest: dict = field(repr=False)

    def summary(self) -> str:
        return (
            f"{self.written} clips written, {self.skipped} skipped (see manifest.json), "
            f"{self.missing} listed in metadata without audio; {self.shards} shards "
            f"({self.shards_reused} reused) in {self.out} [{self.seconds:.1f} s]"
        )


def estimated_seconds(record: ClipRecord) -> float:
    """Clip duration from the file header (no decoding); 0 when the header cannot be read."""
    if record.duration is not None:
        return record.duration
    try:
        info = sf.info(record.path)
        return max(info.frames / info.samplerate - record.start, 0.0)
    except Exception:  # unreadable files are reported when the shard decodes them
        return 0.0


def plan_shards(records: list[ClipRecord], shard_mb: float, workers: int = 16) -> list[list[int]]:
    """Group record indices, in order, into shards of about ``shard_mb`` of FLAC each."""
    with ThreadPoolExecutor(workers) as pool:
        seconds = list(pool.map(estimated_seconds, records))
    budget = shard_mb * 2**20
    shards: list[list[int]] = [[]]
    size = 0.0
    for index, duration in enumerate(seconds):
        estimate = duration * FLAC_BYTES_PER_SECOND
        if shards[-1] and size + estimate > budget:
            shards.append([])
            size = 0.0
        shards[-1].append(index)
        size += estimate
    return [shard for shard in shards if shard]


def build_plan(layout: Layout, dataset: str, root: Path, options: dict, settings: IngestSettings) -> dict:
    shards = plan_shards(layout.records, settings.shard_mb)
    plan = {
        "format_version": FORMAT_VERSION,
        "dataset": dataset,
        "root": str(root),
        "options": options,
        "settings": asdict(settings),
        "vocabulary": layout.vocabulary,
        "records": [asdict(record) for record in layout.records],
        "shards": shards,
    }
    return json.loads(json.dumps(plan))  # the form it has when read back, so re-runs compare equal


def shard_name(index: int) -> str:
    return f"part-{index:05d}"


def _write_json(location: str, value: dict, indent: int | None = None) -> None:
    storage.write_atomic(location, json.dumps(value, indent=indent).encode())


@functools.lru_cache(maxsize=4)
def _load_plan(location: str, modified: float) -> dict:
    return json.loads(storage.read_text(location))


def write_shard(out: str, plan: dict, index: int) -> dict:
    """Decode, check and encode one shard's clips; write its Parquet file and JSON summary."""
    vocabulary = {name: i for i, name in enumerate(plan["vocabulary"])}
    settings = IngestSettings(**plan["settings"])
    root = Path(plan["root"])
    rows: dict[str, list] = {name: [] for name in SCHEMA.names}
    skipped, specs = [], []
    for record_index in plan["shards"][index]:
        record = ClipRecord(**{**plan["records"][record_index], "labels": tuple(plan["records"][record_index]["labels"])})
        try:
            wave = read_audio(record.path, start=record.start, duration=record.duration, max_seconds=settings.max_seconds)
        except AudioError as error:
            skipped.append({"id": record.id, "path": record.path, "reason": error.reason, "detail": str(error)})
            continue
        source = os.path.relpath(record.path, root) if record.path.startswith(str(root)) else record.path
        if record.start or record.duration is not None:
            source += f"#{record.start:g}+{record.duration:g}" if record.duration is not None else f"#{record.start:g}"
        rows["id"].append(record.id)
        rows["audio"].append(encode_flac(wave))
        rows["num_samples"].append(wave.numel())
        rows["sample_rate"].append(SAMPLE_RATE)
        rows["labels"].append(list(record.labels))
        rows["label_indices"].append([vocabulary[label] for label in record.labels])
        rows["split"].append(record.split)
        rows["fold"].append(record.fold)
        rows["source"].append(source)
        if len(specs) < settings.stats_clips_per_shard and wave.numel() >= 400:
            specs.append(log_mel(wave))
    table = pa.Table.from_pydict(rows, schema=SCHEMA)
    buffer = io.BytesIO()
    # Row groups of 256 clips (~50 MB of 10 s clips) let readers split a shard across tasks.
    pq.write_table(table, buffer, compression="zstd", row_group_size=256)
    storage.write_atomic(storage.join(out, SHARD_DIR, f"{shard_name(index)}.parquet"), buffer.getvalue())
    per_split: dict[str, int] = {}
    per_fold: dict[str, int] = {}
    for split, fold in zip(rows["split"], rows["fold"]):
        per_split[split] = per_split.get(split, 0) + 1
        if fold is not None:
            per_fold[str(fold)] = per_fold.get(str(fold), 0) + 1
    summary = {
        "shard": index,
        "file": f"{SHARD_DIR}/{shard_name(index)}.parquet",
        "rows": table.num_rows,
        "bytes": buffer.tell(),
        "splits": per_split,
        "folds": per_fold,
        "skipped": skipped,
        "stats": compute_stats(specs).to_dict() if specs else None,
    }
    _write_json(storage.join(out, SHARD_DIR, f"{shard_name(index)}.json"), summary, indent=1)
    return summary


def _write_shard_task(row: dict) -> dict:
    """Ray Data map function: runs on any node that reaches ``out`` (a bucket, or a shared path)."""
    storage.adopt_settings(json.loads(row["storage"]))
    out = row["out"]
    plan_location = storage.join(out, PLAN_FILE)
    plan = _load_plan(plan_location, storage.modified(plan_location))
    summary = write_shard(out, plan, int(row["shard"]))
    return {"shard": summary["shard"], "rows": summary["rows"], "skipped": len(summary["skipped"])}


def finished_shards(out: str, count: int) -> set[int]:
    """Shards whose Parquet file and summary are both in place (the summary is written last)."""
    present = set(storage.listdir(storage.join(out, SHARD_DIR)))
    return {index for index in range(count) if {f"{shard_name(index)}.parquet", f"{shard_name(index)}.json"} <= present}


def _prepare_output(out: str, plan: dict, overwrite: bool) -> None:
    plan_location = storage.join(out, PLAN_FILE)
    if storage.exists(plan_location) and not overwrite:
        previous = json.loads(storage.read_text(plan_location))
        if previous != plan:
            changed = sorted(key for key in plan if previous.get(key) != plan[key])
            raise IngestError(
                f"{out} holds a different ingest (changed: {', '.join(changed)}); use another --out, or --overwrite to replace it"
            )
        return
    if overwrite:
        storage.remove_tree(storage.join(out, SHARD_DIR))
        storage.remove_tree(storage.join(out, MANIFEST_FILE))
    storage.makedirs(storage.join(out, SHARD_DIR))
    _write_json(plan_location, plan)


def build_manifest(out: str, plan: dict, layout: Layout) -> dict:
    summaries = [json.loads(storage.read_text(storage.join(out, SHARD_DIR, f"{shard_name(i)}.json"))) for i in range(len(plan["shards"]))]
    skipped = [entry for summary in summaries for entry in summary["skipped"]]
    skipped += [{"id": None, "path": path, "reason": "excluded", "detail": reason} for path, reason in layout.excluded]
    splits: dict[str, int] = {}
    folds: dict[str, int] = {}
    for summary in summaries:
        for key, value in summary["splits"].items():
            splits[key] = splits.get(key, 0) + value
        for key, value in summary["folds"].items():
            folds[key] = folds.get(key, 0) + value
    written = sum(summary["rows"] for summary in summaries)
    discovered = len(plan["records"]) + len(layout.excluded)
    if written + len(skipped) != discovered:  # a bug, never a data problem: fail loudly
        raise RuntimeError(f"counts do not reconcile: {written} written + {len(skipped)} skipped != {discovered} discovered")
    parts = [FeatureStats.from_dict(summary["stats"]) for summary in summaries if summary["stats"]]
    reasons: dict[str, int] = {}
    for entry in skipped:
        reasons[entry["reason"]] = reasons.get(entry["reason"], 0) + 1
    return {
        "format_version": FORMAT_VERSION,
        "dataset": plan["dataset"],
        "root": plan["root"],
        "options": plan["options"],
        "sample_rate": SAMPLE_RATE,
        "audio_codec": "flac/pcm16",
        "vocabulary": plan["vocabulary"],
        "info": layout.info,
        "discovered": discovered,
        "written": written,
        "skipped_count": len(skipped),
        "skipped_by_reason": dict(sorted(reasons.items())),
        "skipped": skipped,
        "missing": {"count": len(layout.missing), "ids": layout.missing[:10000]},
        "splits": dict(sorted(splits.items())),
        "folds": dict(sorted(folds.items(), key=lambda item: int(item[0]))),
        "stats": merge_stats(parts).to_dict() if parts else None,
        "shards": [{"file": s["file"], "rows": s["rows"], "bytes": s["bytes"], "splits": s["splits"]} for s in summaries],
    }


def ingest(
    dataset: str,
    root: str | Path,
    out: str | Path,
    options: dict | None = None,
    settings: IngestSettings = IngestSettings(),
    overwrite: bool = False,
    progress=print,
    num_cpus: int | None = None,
) -> IngestReport:
    """Run the whole ingest. Ray is joined or started (``pipelines.common.runtime.init_ray``, with
    ``num_cpus`` for a local one) once the layout has been read, so a wrong root fails before it."""
    import ray

    from pipelines.common.runtime import init_ray

    started = time.perf_counter()
    settings.validate()
    root = Path(root).expanduser().absolute()  # the raw dataset: always a local folder
    out = storage.check_location(out, "--out")  # a local folder or a URI, reachable before any work
    options = dict(options or {})
    layout = discover(dataset, root, **options)  # LayoutError for a wrong root / metadata
    progress(
        f"[ingest] {dataset}: {len(layout.records)} clips found, {len(layout.excluded)} excluded, "
        f"{len(layout.missing)} listed without audio; {len(layout.vocabulary)} classes"
    )
    plan = build_plan(layout, dataset, root, options, settings)
    init_ray(num_cpus)  # a no-op where the caller started it
    _prepare_output(out, plan, overwrite)
    done = finished_shards(out, len(plan["shards"]))
    pending = [index for index in range(len(plan["shards"])) if index not in done]
    progress(f"[ingest] {len(plan['shards'])} shards planned, {len(done)} already written, {len(pending)} to write")
    if pending:
        tasks = ray.data.from_items(
            [{"out": out, "shard": index, "storage": json.dumps(storage.driver_settings())} for index in pending],
            override_num_blocks=len(pending),
        )
        finished = len(done)
        for row in tasks.map(_write_shard_task, num_cpus=1).iter_rows():
            finished += 1
            progress(
                f"[ingest] shard {row['shard']:5d} done: {row['rows']} clips, {row['skipped']} skipped ({finished}/{len(plan['shards'])})"
            )
    manifest = build_manifest(out, plan, layout)
    _write_json(storage.join(out, MANIFEST_FILE), manifest, indent=1)
    return IngestReport(
        out=out,
        discovered=manifest["discovered"],
        written=manifest["written"],
        skipped=manifest["skipped_count"],
        missing=manifest["missing"]["count"],
        shards=len(plan["shards"]),
        shards_reused=len(done),
        seconds=time.perf_counter() - started,
        manifest=manifest,
    )


# Layout options that have their own flag; each reader accepts the ones that apply to it.
_OPTION_FLAGS = {
    "fraction": ("--fraction", float, "audioset: deterministic stratified subset, e.g. 0.1 (the paper's setting)"),
    "seed": ("--seed", int, "audioset: seed of the --fraction subset"),
    "segments": ("--segments", str, "audioset: comma-separated segment CSVs (balanced_train,unbalanced_train,eval)"),
    "audio_dir": ("--audio-dir", str, "audioset: audio folder under --root (default: audio)"),
    "classes": ("--classes", str, "speech_commands: '12' (10 words + _silence_ + _unknown_) or 'all'"),
    "manifest": ("--manifest", str, "manifest/voxforge: the CSV file (default: inside --root)"),
    "allow_outside_root": (
        "--allow-outside-root",
        bool,
        "manifest/voxforge: ingest rows whose path leaves --root (.., absolute paths elsewhere, symlinks out); default: skipped",
    ),
    "split": ("--split", str, "folder: split name for every clip (default: train)"),
}
