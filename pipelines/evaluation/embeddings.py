"""Frozen-encoder embeddings of a task's clips, computed once with Ray Data and cached.

Linear evaluation trains many probes on the same frozen features, so the encoder runs once per
(encoder, task) pair: Ray Data streams every shard through CPU or GPU actors that decode, compute
normalised log-mel (with the *encoder's* own statistics, as it was trained) and embed. The result
is one Parquet file next to the shards:

    <shards>/embeddings/<encoder sha>-<frames>f-<manifest sha>.parquet
        id, split, fold, label, embedding (float32 list)
        metadata mast.skipped_clips: the clips that did not decode, left out (:func:`skipped_clips`)

A second call with the same encoder weights, clip length and shards reads the file instead.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from mast_core.views import ViewMaker
from pipelines.common import storage
from pipelines.common.checkpoints import local_encoder
from pipelines.data.stream import Source, StreamSettings, decode_clips, mixture_files, read_paths, shard_errors_named

SKIPPED_KEY = "mast.skipped_clips"  # the cache's key-value metadata: clips left out, JSON


def encoder_digest(encoder: str | Path) -> str:
    """The first 16 hex digits of the encoder weights' sha256: names caches and sweeps."""
    digest = hashlib.sha256()
    with open(local_encoder(encoder) / "encoder.safetensors", "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def cache_path(shards: str | Path, encoder: str | Path, frames_per_clip: int) -> str:
    """The cache file's location, beside the shards (in their bucket when they are in one)."""
    manifest = hashlib.sha256(storage.read_bytes(storage.join(shards, "manifest.json"))).hexdigest()[:8]
    return storage.join(shards, "embeddings", f"{encoder_digest(encoder)}-{frames_per_clip}f-{manifest}.parquet")


class ClipEmbedder:
    """Ray Data map_batches callable: audio rows -> clip embeddings (one encoder per actor)."""

    def __init__(self, encoder_dir: str, frames_per_clip: int, device: str = "cpu", storage_settings: dict | None = None) -> None:
        from mast_core.checkpoint import load_encoder

        storage.adopt_settings(storage_settings or {})  # an encoder in a bucket: the driver's endpoint and keys
        torch.set_num_threads(1)
        self.device = torch.device(device)
        self.encoder, features = load_encoder(encoder_dir, map_location=self.device)
        self.settings = StreamSettings(frames_per_clip=frames_per_clip, mode="eval")
        self.views = ViewMaker(features.mean, features.std)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        features = decode_clips(batch, self.settings)
        (spec,) = self.views(torch.from_numpy(features["wave"]).to(self.device))
        lengths = torch.from_numpy(features["length"]).to(self.device)
        with torch.no_grad():
            embedding = self.encoder(spec, lengths if int(lengths.min()) < spec.shape[-1] else None)
        return {
            "id": features["id"],
            "split": np.asarray([str(s) for s in batch["split"]]),
            # a split-based dataset has no folds: null (None, or NaN after numpy conversion) -> -1
            "fold": np.asarray([-1 if f is None or f != f else int(f) for f in batch["fold"]]),
            "label": features["label"],
            "embedding": embedding.float().cpu().numpy(),
            "error": features["error"],  # a clip that did not decode: dropped and counted by embed_task
        }


def embed_task(
    shards: str | Path,
    encoder_dir: str | Path,
    frames_per_clip: int,
    actors: int = 1,
    use_gpu: bool = False,
    progress=print,
    target: str | None = None,
) -> tuple[str, bool]:
    """Embeddings of every clip in ``shards``; returns (parquet location, whether the cache was used).

    ``encoder_dir`` may be a URI: each embedding actor fetches the encoder on its own node.

    ``target`` writes to another file than the cache (``benchmarks/sweep_cache.py`` uses it to
    measure a sweep that recomputes embeddings in every trial).
    """
    import ray.data
    from ray.data import ActorPoolStrategy

    target = target or cache_path(shards, encoder_dir, frames_per_clip)
    if storage.is_file(target):
        progress(f"[embed] using cached embeddings {target}")
        return target, True
    files = mixture_files([Source(str(shards))])
    filesystem, paths = read_paths(files)
    progress(f"[embed] embedding {len(files)} shards of {shards} with {encoder_dir} ({frames_per_clip} frames per clip)")
    with shard_errors_named(files, "; the embedding pass stopped, nothing was cached"):  # lost or broken since the check
        ray.data.DataContext.get_current().use_datasource_v2 = False  # see pipelines.data.build_stream
        dataset = ray.data.read_parquet(paths, filesystem=filesystem, override_num_blocks=len(files)).select_columns(
            ["id", "audio", "label_indices", "split", "fold"]
        )
        embedded = dataset.map_batches(
            ClipEmbedder,
            fn_constructor_kwargs={
                "encoder_dir": str(encoder_dir),
                "frames_per_clip": frames_per_clip,
                "device": "cuda" if use_gpu else "cpu",
                "storage_settings": storage.driver_settings(),
            },
            batch_size=32,
            batch_format="numpy",
            compute=ActorPoolStrategy(size=actors),
            num_cpus=0 if use_gpu else 1,
            num_gpus=1 if use_gpu else 0,
        )
        columns: dict[str, list] = {"id": [], "split": [], "fold": [], "label": [], "embedding": []}
        skipped: list[dict] = []
        for batch in embedded.iter_batches(batch_size=256, batch_format="numpy"):
            good = [i for i, error in enumerate(batch["error"]) if not error]
            for i in sorted(set(range(len(batch["error"]))) - set(good)):
                skipped.append({"id": str(batch["id"][i]), "error": str(batch["error"][i])})
                if len(skipped) <= 5:
                    progress(f"[embed] skipped clip {batch['id'][i]}: it does not decode ({batch['error'][i]})")
            for key in columns:
                columns[key].extend(batch[key][i] for i in good)
    order = np.argsort(np.asarray(columns["id"]), kind="stable")  # a stable file, whatever the task order
    table = pa.table(
        {
            "id": pa.array([str(columns["id"][i]) for i in order]),
            "split": pa.array([str(columns["split"][i]) for i in order]),
            "fold": pa.array([int(columns["fold"][i]) for i in order], pa.int32()),
            "label": pa.array([int(columns["label"][i]) for i in order], pa.int64()),
            "embedding": pa.array([np.asarray(columns["embedding"][i], np.float32) for i in order], pa.list_(pa.float32())),
        }
    )
    # the clips left out travel with the cache, so a sweep that reuses it still reports them
    table = table.replace_schema_metadata({SKIPPED_KEY: json.dumps(sorted(skipped, key=lambda item: item["id"]))})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    storage.write_atomic(target, buffer.getvalue())
    note = f"; {len(skipped)} clips that do not decode were skipped" if skipped else ""
    progress(f"[embed] {table.num_rows} embeddings written to {target}{note}")
    return target, False


def skipped_clips(path: str | Path) -> list[dict]:
    """The clips an embedding cache left out because they did not decode (``id`` and ``error``)."""
    filesystem, inside = storage.filesystem(path)
    metadata = pq.read_schema(inside, filesystem=filesystem).metadata or {}
    return json.loads(metadata.get(SKIPPED_KEY.encode(), b"[]"))


def load_embeddings(path: str | Path) -> dict[str, object]:
    """The cached table as tensors: ``embedding`` (N, D), ``label``, ``fold`` and lists ``id``, ``split``."""
    filesystem, inside = storage.filesystem(path)
    table = pq.read_table(inside, filesystem=filesystem)
    return {
        "id": table.column("id").to_pylist(),
        "split": table.column("split").to_pylist(),
        "fold": torch.as_tensor(table.column("fold").to_numpy()),
        "label": torch.as_tensor(table.column("label").to_numpy()),
        "embedding": torch.as_tensor(np.stack(table.column("embedding").to_numpy(zero_copy_only=False))),
    }
