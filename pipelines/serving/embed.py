"""`mast embed`: embeddings of audio files with a trained encoder, written to Parquet.

    mast embed clips/ extra.wav 'more/**/*.flac' --checkpoint runs/pretrain/encoder --out emb.parquet
    mast embed data/ --checkpoint runs:/<run id>/encoder --out emb.parquet --frames --device cuda
    mast embed data/ --checkpoint <32-hex run id> --tracking-uri http://mlflow:5000 --out emb.parquet
    mast embed s3://bucket/clips/ --checkpoint s3://bucket/runs/mast-s/encoder --out s3://bucket/emb.parquet

AUDIO: files (any format soundfile reads), folders (searched recursively for .wav, .flac, .mp3,
.ogg) and glob patterns (quoted; ``**`` recurses). Files and folders may be URIs of any file system
(``s3://bucket/clips/``, see :mod:`pipelines.common.storage`); patterns are local. Each file is decoded, its channels averaged,
resampled to the encoder's rate and embedded with :class:`mast_core.embed.Embedder` (long files in
windows, see there). A file longer than 4 encoder windows (41 s for MAST) is read and embedded window
by window (:meth:`~mast_core.embed.Embedder.embed_long`): memory does not grow with its length. ``--workers`` threads decode files and compute their log-mel features
while the encoder runs.

CHECKPOINT: an exported encoder folder (local or a URI such as ``s3://bucket/runs/NAME/encoder``), an MLflow URI (``runs:/<id>/encoder``, ``models:/...``)
or a bare MLflow run id (read as ``runs:/<id>/encoder``) at ``--tracking-uri`` (default:
``MLFLOW_TRACKING_URI``, else ``./mlflow.db``).

Output (``--out``: a local file or a URI), one row per embedded file, in input order: ``path``, ``duration_s``, ``embedding``
(list<float32>); with ``--frames`` also ``frame_embeddings`` (list<list<float32>>) and
``timestamps_s`` (list<float32>, centre of each frame embedding). Files that cannot be decoded
are reported on stderr, skipped and listed in the Parquet file's key-value metadata (key
``mast.embed``, JSON: checkpoint, arch, embedding size, counts and ``skipped``: path, reason,
detail; ``pyarrow.parquet.read_metadata(path).metadata[b"mast.embed"]``); :func:`read_embeddings`
returns the table and that summary. The job fails only if no file at all could be embedded.
"""

from __future__ import annotations

import glob
import json
import os
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from mast_core.audio import AudioError, AudioReader
from mast_core.embed import Embedder
from pipelines.common import storage

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")
METADATA_KEY = b"mast.embed"


class EmbedInputError(ValueError):
    """Bad command-line input (a missing path, a pattern that matches nothing)."""


def _remote_inputs(item: str) -> list[str]:
    try:
        if storage.is_file(item):
            return [item]
        if storage.is_dir(item):
            found = [f for f in storage.walk(item) if os.path.splitext(f)[1].lower() in AUDIO_SUFFIXES]
            if not found:
                raise EmbedInputError(f"{item}: folder holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
            return found
    except storage.StorageError as error:
        raise EmbedInputError(str(error)) from None
    if glob.has_magic(item):
        raise EmbedInputError(f"{item}: patterns work on local paths only; name the folder instead")
    raise EmbedInputError(f"{item}: no such file or folder")


def expand_inputs(items: list[str]) -> list[Path | str]:
    """Audio files named by ``items`` (files, folders searched recursively, glob patterns), in order.

    Folders contribute files with an audio suffix (wav, flac, mp3, ogg), sorted; an explicit file
    or a glob match is taken whatever its suffix. Duplicates are dropped. Remote files and folders
    (URIs) are listed as URI strings and read when they are embedded.
    """
    files: list[Path | str] = []
    for item in items:
        if not storage.is_local(item):
            files.extend(_remote_inputs(item))
            continue
        path = storage.local_path(item)
        if path.is_dir():
            found = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                raise EmbedInputError(f"{item}: folder holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        elif glob.has_magic(item):
            found = []
            for match in sorted(glob.glob(item, recursive=True)):
                match = Path(match)
                if match.is_dir():
                    found.extend(sorted(f for f in match.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES))
                elif match.is_file():
                    found.append(match)
            if not found:
                raise EmbedInputError(f"{item}: pattern matches no files")
            files.extend(found)
        else:
            raise EmbedInputError(f"{item}: no such file or folder")
    seen: set[str] = set()
    unique = []
    for file in files:
        key = str(file.absolute()) if isinstance(file, Path) else file
        if key not in seen:
            seen.add(key)
            unique.append(file)
    return unique


LONG_WINDOWS = 4  # files longer than this many encoder windows are read window by window


def _load(path: Path | str, embedder: Embedder) -> tuple[tuple[int, torch.Tensor | AudioReader] | None, tuple[str, str] | None]:
    """(samples, features) of one file, or the reason it cannot be used; runs in a worker thread.
    A long file comes back as an open :class:`AudioReader` instead: the caller embeds it window by
    window (:meth:`Embedder.embed_long`), in memory bounded whatever its length."""
    try:
        source = storage.read_bytes(path) if isinstance(path, str) else path
        reader = AudioReader(source, embedder.sample_rate)
        if reader.num_samples > LONG_WINDOWS * embedder.window_frames * embedder.frame_hop:
            return (reader.num_samples, reader), None
        try:  # a short file: decoded whole, through the same reader (read_clip's result)
            wave = reader(0, reader.num_samples)
        finally:
            reader.close()
        return (wave.numel(), embedder.spectrogram(wave)), None
    except AudioError as error:
        return None, (error.reason, str(error))
    except FileNotFoundError as error:  # a remote file deleted since it was listed
        return None, ("missing", str(error))
    except Exception as error:  # a decoder, resampler or feature failure on one file must not stop the job
        return None, ("error", f"{type(error).__name__}: {error}")


def _schema(frames: bool) -> pa.Schema:
    fields = [pa.field("path", pa.string()), pa.field("duration_s", pa.float64()), pa.field("embedding", pa.list_(pa.float32()))]
    if frames:
        fields += [pa.field("frame_embeddings", pa.list_(pa.list_(pa.float32()))), pa.field("timestamps_s", pa.list_(pa.float32()))]
    return pa.schema(fields)


def _decoded_chunks(files: list[Path], embedder: Embedder, workers: int, chunk: int):
    """``(paths, [(loaded, problem), ...])`` per chunk of ``files``; the thread pool decodes the
    next chunk while the caller embeds this one, so at most two chunks are in memory."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mast-decode") as pool:

        def submit(start: int) -> list[Future]:
            return [pool.submit(_load, path, embedder) for path in files[start : start + chunk]]

        pending = submit(0)
        for start in range(0, len(files), chunk):
            decoded = [future.result() for future in pending]
            pending = submit(start + chunk)
            yield files[start : start + chunk], decoded


def _rows(paths: list[Path], samples: list[int], result, frames: bool, rate: int, schema: pa.Schema) -> pa.Table:
    """One Parquet batch: path, duration and clip embedding (and frames with their timestamps)."""
    columns = {
        "path": pa.array([str(p) for p in paths], pa.string()),
        "duration_s": pa.array([n / rate for n in samples], pa.float64()),
        "embedding": pa.array(list(result.clip.numpy().astype(np.float32)), pa.list_(pa.float32())),
    }
    if frames:
        columns["frame_embeddings"] = _nested(result.frames)
        columns["timestamps_s"] = pa.array([t.numpy() for t in result.timestamps], pa.list_(pa.float32()))
    return pa.table(columns, schema=schema)


def _write_batch(pending: list[tuple], embedder: Embedder, frames: bool, schema, writer) -> int:
    """Embed the pending short files together and write their rows; empties ``pending``."""
    if not pending:
        return 0
    paths, samples, specs = zip(*pending)
    result = embedder.embed_spectrograms(list(specs), frames=frames)
    writer.write_table(_rows(list(paths), list(samples), result, frames, embedder.sample_rate, schema))
    pending.clear()
    return len(paths)


def _embed_long(
    path, loaded: tuple[int, AudioReader], embedder: Embedder, frames: bool, schema, writer, progress
) -> tuple[str, str] | None:
    """Embed one long file window by window and write its row; the reason when it fails midway."""
    samples, reader = loaded
    windows = len(embedder.windows(1 + (samples - embedder.frame_window) // embedder.frame_hop))
    progress(f"[embed] {path}: {samples / embedder.sample_rate:.1f} s, embedded window by window ({windows} windows)")
    try:
        result = embedder.embed_long(reader, samples, frames=frames)
    except AudioError as error:  # damage found past the header
        return error.reason, str(error)
    finally:
        reader.close()
    writer.write_table(_rows([path], [samples], result, frames, embedder.sample_rate, schema))
    return None


def _nested(frames: list[torch.Tensor]) -> pa.Array:
    """``list<list<float32>>`` of per-file ``(T, D)`` frames, built from the flat values (no Python
    list per frame: an hour of frames stays one buffer)."""
    counts = [f.shape[0] for f in frames]
    dim = frames[0].shape[1] if frames else 0
    values = pa.array(np.concatenate([f.numpy().astype(np.float32).reshape(-1) for f in frames]) if frames else np.zeros(0, np.float32))
    inner = pa.ListArray.from_arrays(pa.array(np.arange(0, sum(counts) * dim + 1, max(dim, 1), dtype=np.int32)[: sum(counts) + 1]), values)
    outer = pa.ListArray.from_arrays(pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)), inner)
    return outer.cast(pa.list_(pa.list_(pa.float32())))


def embed_files(
    files: list[Path],
    embedder: Embedder,
    out: str | Path,
    *,
    frames: bool = False,
    workers: int = 2,
    chunk: int | None = None,
    checkpoint: str = "",
    progress=print,
) -> dict:
    """Embed ``files`` into the Parquet file ``out``; returns the summary stored in its metadata.

    ``workers`` threads decode files and compute their features (:meth:`Embedder.spectrogram`) one
    chunk ahead of the encoder (``chunk`` files, default 4 batches), so memory stays bounded for
    any number of files. Undecodable files are skipped and listed. The output appears atomically
    when the job ends.

    Example::

        summary = embed_files(expand_inputs(["clips/"]), Embedder.from_checkpoint("enc/"), "emb.parquet")
        summary["embedded"], summary["skipped"]
    """
    with storage.staged(out) as local:  # a URI: written locally, uploaded whole at the end
        return _embed_to(local, files, embedder, frames=frames, workers=workers, chunk=chunk, checkpoint=checkpoint, progress=progress)


def _embed_to(
    out: Path, files: list, embedder: Embedder, *, frames: bool, workers: int, chunk: int | None, checkpoint: str, progress
) -> dict:
    """:func:`embed_files` into the local file ``out`` (appears atomically, through a rename)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    chunk = chunk or max(4 * embedder.batch_size, 16)
    schema = _schema(frames)
    temporary = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    skipped: list[dict[str, str]] = []
    embedded, done = 0, 0
    started = time.perf_counter()
    # no dictionary: float vectors never repeat, and its hash table for an hour of frames costs hundreds of MB
    writer = pq.ParquetWriter(temporary, schema, compression="zstd", use_dictionary=["path"])
    try:
        for chunk_files, decoded in _decoded_chunks(files, embedder, workers, chunk):
            pending: list[tuple] = []  # (path, samples, features) of the short files, embedded together
            for path, (loaded, problem) in zip(chunk_files, decoded):
                if problem is None and isinstance(loaded[1], AudioReader):  # a long file: window by window, in order
                    embedded += _write_batch(pending, embedder, frames, schema, writer)
                    problem = _embed_long(path, loaded, embedder, frames, schema, writer, progress)
                    embedded += problem is None
                elif problem is None:
                    pending.append((path, *loaded))
                if problem is not None:
                    reason, detail = problem
                    skipped.append({"path": str(path), "reason": reason, "detail": detail})
                    print(f"[embed] skipped {path}: {detail}", file=sys.stderr, flush=True)
            embedded += _write_batch(pending, embedder, frames, schema, writer)
            done += len(chunk_files)
            elapsed = time.perf_counter() - started
            progress(
                f"[embed] {done}/{len(files)} files: {embedded} embedded, {len(skipped)} skipped, "
                f"{embedded / max(elapsed, 1e-9):.1f} clips/s"
            )
        summary = {
            "checkpoint": checkpoint,
            "arch": embedder.model.arch,
            "embedding_size": embedder.embedding_size,
            "sample_rate": embedder.sample_rate,
            "window_frames": embedder.window_frames,
            "frames": frames,
            "frame_hop_s": embedder.frame_hop_seconds,
            "files": len(files),
            "embedded": embedded,
            "skipped_count": len(skipped),
            "skipped": skipped,
            "seconds": round(time.perf_counter() - started, 3),
        }
        writer.add_key_value_metadata({METADATA_KEY: json.dumps(summary).encode()})
        writer.close()
        os.replace(temporary, out)
    except BaseException:
        writer.close()
        temporary.unlink(missing_ok=True)
        raise
    return summary


def read_embeddings(path: str | Path) -> tuple[pa.Table, dict]:
    """The table written by ``mast embed`` and its summary (``skipped`` files included).

    Example::

        table, summary = read_embeddings("emb.parquet")
        vectors = np.stack(table.column("embedding").to_numpy(zero_copy_only=False))   # (N, D)
    """
    filesystem, inside = storage.filesystem(path)
    with filesystem.open_input_file(inside) as handle:
        parquet = pq.ParquetFile(handle)
        table, raw = parquet.read(), (parquet.metadata.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise ValueError(f"{path}: no {METADATA_KEY.decode()} metadata; not written by `mast embed`")
    return table, json.loads(raw)
