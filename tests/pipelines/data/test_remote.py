"""Ingest into a bucket and stream from it: a real S3 API on 127.0.0.1, real Ray, real FLAC shards.

The bucket is reached only through the standard AWS variables (``AWS_ENDPOINT_URL`` ...), set
after the session's Ray started: the decoding and ingest tasks get them from the driver, as the
processes of a cluster whose nodes were started without them would.
"""

import json

import numpy as np

from fixtures.layouts import write_layout
from pipelines.common import storage
from pipelines.data.ingest import IngestSettings, ingest
from pipelines.data.stream import Source, StreamSettings, build_stream

QUIET = lambda line: None  # noqa: E731


def waves_by_id(dataset) -> dict[str, np.ndarray]:
    return {str(clip): wave for batch in dataset.iter_batches(batch_size=16) for clip, wave in zip(batch["id"], batch["wave"])}


def test_ingest_into_a_bucket_resumes_there_and_streams_the_same_clips_as_a_local_ingest(ray_local, s3_bucket, tmp_path):
    write_layout("speech_commands", tmp_path / "raw", corrupt=False)
    settings = IngestSettings(shard_mb=0.05)
    remote, local = f"{s3_bucket}/data/speech_commands", tmp_path / "local"
    report = ingest("speech_commands", tmp_path / "raw", remote, settings=settings, progress=QUIET)
    assert report.out == remote and report.shards > 1 and report.shards_reused == 0
    manifest = json.loads(storage.read_text(storage.join(remote, "manifest.json")))
    assert manifest["written"] == report.written > 0
    assert sorted(storage.listdir(storage.join(remote, "shards"))) == sorted(
        [f"part-{i:05d}.{ext}" for i in range(report.shards) for ext in ("json", "parquet")]
    )
    assert not (tmp_path / "s3:").exists() and not list(tmp_path.rglob("manifest.json"))  # nothing written locally

    again = ingest("speech_commands", tmp_path / "raw", remote, settings=settings, progress=QUIET)  # a rerun resumes
    assert again.shards_reused == report.shards and again.written == report.written

    ingest("speech_commands", tmp_path / "raw", local, settings=settings, progress=QUIET)
    local_manifest = json.loads((local / "manifest.json").read_text())
    assert [shard["bytes"] for shard in manifest["shards"]] == [shard["bytes"] for shard in local_manifest["shards"]]

    stream = StreamSettings(frames_per_clip=98, mode="eval", batch_size=8)
    from_bucket = waves_by_id(build_stream([Source(remote)], stream))
    from_disk = waves_by_id(build_stream([Source(str(local))], stream))
    assert len(from_bucket) == manifest["written"] and from_bucket.keys() == from_disk.keys()
    for clip, wave in from_bucket.items():
        np.testing.assert_array_equal(wave, from_disk[clip])
