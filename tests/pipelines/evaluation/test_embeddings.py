"""Frozen-encoder embeddings of ingested shards via Ray Data, cached next to the shards."""

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from fixtures.layouts import write_layout
from mast_core.checkpoint import FeatureSettings, save_encoder
from mast_core.mast import mast_tiny
from mast_core.views import ViewMaker
from pipelines.data.ingest import IngestSettings, ingest
from pipelines.data.stream import StreamSettings, decode_clips
from pipelines.evaluation.embeddings import embed_task, load_embeddings

QUIET = lambda line: None  # noqa: E731


@pytest.fixture(scope="module")
def task(ray_local, tmp_path_factory):
    base = tmp_path_factory.mktemp("embed")
    write_layout("us8k", base / "us8k", corrupt=False)
    ingest("us8k", base / "us8k", base / "shards", settings=IngestSettings(shard_mb=0.05), progress=QUIET)
    torch.manual_seed(0)
    encoder = save_encoder(mast_tiny(max_frames=300), base / "encoder", FeatureSettings(mean=-5.0, std=4.0))
    return base / "shards", encoder


def test_every_clip_is_embedded_once_with_its_split_fold_and_label(task):
    shards, encoder = task
    path, cached = embed_task(shards, encoder, frames_per_clip=300, progress=QUIET)
    assert not cached and Path(path).parent == shards / "embeddings"
    manifest = json.loads((shards / "manifest.json").read_text())
    data = load_embeddings(path)
    assert len(data["id"]) == manifest["written"] == len(set(data["id"]))
    assert data["embedding"].shape == (manifest["written"], 256)
    assert {str(f) for f in data["fold"].tolist()} == set(manifest["folds"])
    rows = {row["id"]: row for shard in manifest["shards"] for row in pq.read_table(shards / shard["file"]).to_pylist()}
    for clip_id, label, fold in zip(data["id"], data["label"].tolist(), data["fold"].tolist()):
        assert rows[clip_id]["label_indices"][0] == label and rows[clip_id]["fold"] == fold


def test_embedding_matches_the_encoder_on_that_clip(task):
    """The Ray path keeps each embedding with its own clip (no mix-up of rows)."""
    from mast_core.checkpoint import load_encoder

    shards, encoder_dir = task
    path, _ = embed_task(shards, encoder_dir, frames_per_clip=300, progress=QUIET)
    data = load_embeddings(path)
    manifest = json.loads((shards / "manifest.json").read_text())
    table = pq.read_table(shards / manifest["shards"][-1]["file"])
    batch = {name: table.column(name).to_numpy(zero_copy_only=False) for name in ("id", "audio", "label_indices", "split")}
    encoder, features = load_encoder(encoder_dir)
    direct = decode_clips(batch, StreamSettings(frames_per_clip=300, mode="eval"))
    (spec,) = ViewMaker(features.mean, features.std)(torch.from_numpy(direct["wave"]))
    with torch.no_grad():
        expected = encoder(spec, torch.from_numpy(direct["length"]))
    position = {clip_id: i for i, clip_id in enumerate(data["id"])}
    for row, clip_id in enumerate(direct["id"]):
        np.testing.assert_allclose(data["embedding"][position[str(clip_id)]].numpy(), expected[row].numpy(), atol=1e-5)


def test_second_call_reads_the_cache(task):
    shards, encoder = task
    first, _ = embed_task(shards, encoder, frames_per_clip=300, progress=QUIET)
    stamp = Path(first).stat().st_mtime_ns
    again, cached = embed_task(shards, encoder, frames_per_clip=300, progress=QUIET)
    assert cached and again == first and Path(first).stat().st_mtime_ns == stamp
    other, cached = embed_task(shards, encoder, frames_per_clip=200, progress=QUIET)
    assert not cached and other != first  # another clip length is another cache entry
