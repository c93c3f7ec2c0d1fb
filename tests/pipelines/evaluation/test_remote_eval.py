"""Evaluation with everything in a bucket, on a real S3 API on 127.0.0.1: a sweep whose shards,
Tune state, exported initialisation, embedding cache and report live in S3 (task shards found
through ``--data-root``), and ``mast embed`` reading its checkpoint and audio from the bucket and
writing its Parquet file there."""

import io
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import torch
from mlflow import MlflowClient

from fixtures.layouts import write_layout
from fixtures.services import mlflow_store
from mast_core.checkpoint import load_encoder, save_encoder
from mast_core.mast import mast_tiny
from pipelines.cli import main
from pipelines.common import storage
from pipelines.data.ingest import IngestSettings, ingest
from pipelines.serving.embed import read_embeddings

SPACE = """num_samples: 2
scheduler: {type: fifo}
space:
  lr: {loguniform: [1.0e-3, 1.0e-1]}
  batch_size: 16
  max_epochs: 2
  patience: 2
"""


def local_leftovers(root: Path) -> list[Path]:
    """Anything a bucket location left on the local disk (``Path("s3://b/x")`` gives ``s3:/b/x``)."""
    return [path for path in [*Path.cwd().glob("s3:*"), *root.glob("**/s3:*"), Path.cwd() / "runs"] if path.exists()]


@pytest.mark.slow
def test_sweep_with_shards_state_cache_and_report_in_the_bucket(ray_local, s3_bucket, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_layout("speech_commands", tmp_path / "raw", corrupt=False)
    ingest("speech_commands", tmp_path / "raw", f"{s3_bucket}/data/kws", settings=IngestSettings(shard_mb=0.05), progress=lambda line: None)
    task = tmp_path / "fx_kws.yaml"  # a relative shards path: read from --data-root
    task.write_text(
        "name: fx_kws\ndataset: speech_commands\nshards: data/kws\nframes_per_clip: 98\nsplits: {train: train, validation: validation, test: test}\n"
    )
    (tmp_path / "space.yaml").write_text(SPACE)
    tracking = mlflow_store(tmp_path / "mlflow.db")
    sweep = ["sweep", str(task), "--checkpoint", "random:mast_tiny", "--space", str(tmp_path / "space.yaml")]
    sweep += ["--storage", f"{s3_bucket}/sweeps", "--data-root", s3_bucket, "--tracking-uri", tracking]
    main(sweep)

    # the initialisation, the Tune experiment and the embedding cache are in the bucket
    assert storage.is_file(f"{s3_bucket}/sweeps/encoders/random-mast_tiny-seed0/encoder.safetensors")
    cached = storage.listdir(f"{s3_bucket}/data/kws/embeddings")
    assert len(cached) == 1 and cached[0].endswith(".parquet"), cached
    experiments = [name for name in storage.listdir(f"{s3_bucket}/sweeps") if name.startswith("fx_kws-linear-")]
    assert len(experiments) == 1 and storage.is_file(f"{s3_bucket}/sweeps/{experiments[0]}/tuner.pkl")
    client = MlflowClient(tracking)
    parent = client.search_runs(
        [client.get_experiment_by_name("mast-sweeps").experiment_id], "tags.task = 'fx_kws' and tags.protocol = 'linear'"
    )[0]
    assert parent.data.tags["checkpoint"] == f"{s3_bucket}/sweeps/encoders/random-mast_tiny-seed0"
    assert parent.data.tags["embedding_cache"] == f"{s3_bucket}/data/kws/embeddings/{cached[0]}"
    assert 0.0 <= parent.data.metrics["test_accuracy"] <= 1.0

    # resuming reads the Tune state and the cache from the bucket and trains nothing again
    capsys.readouterr()
    main([*sweep, "--resume"])
    out = capsys.readouterr().out
    assert "[embed] using cached embeddings s3://" in out and f"resuming {s3_bucket}/sweeps/{experiments[0]}" in out

    main(["report", "--out", f"{s3_bucket}/reports", "--tracking-uri", tracking])
    assert storage.listdir(f"{s3_bucket}/reports") == ["results.csv", "results.md", "results.png"]
    assert "fx_kws" in storage.read_text(f"{s3_bucket}/reports/results.md")
    assert local_leftovers(tmp_path) == []


def wav_bytes(seconds: float, seed: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.random.default_rng(seed).uniform(-0.3, 0.3, int(16_000 * seconds)).astype(np.float32), 16_000, format="WAV")
    return buffer.getvalue()


def test_embed_reads_checkpoint_and_audio_from_the_bucket_and_writes_there(s3_bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("MAST_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    model = mast_tiny(max_frames=200)
    save_encoder(model, tmp_path / "encoder")
    storage.copy_tree(str(tmp_path / "encoder"), f"{s3_bucket}/runs/tiny/encoder")
    for index, seconds in enumerate((1.0, 2.5)):
        storage.write_bytes(f"{s3_bucket}/clips/sub/clip{index}.wav", wav_bytes(seconds, index))
    storage.write_bytes(f"{s3_bucket}/clips/broken.wav", b"RIFF....not audio")
    storage.write_bytes(f"{s3_bucket}/clips/notes.txt", b"not listed: no audio suffix")
    out = f"{s3_bucket}/out/emb.parquet"

    main(["embed", f"{s3_bucket}/clips/", "--checkpoint", f"{s3_bucket}/runs/tiny/encoder", "--out", out, "--device", "cpu"])
    table, summary = read_embeddings(out)
    assert table.column("path").to_pylist() == [f"{s3_bucket}/clips/sub/clip0.wav", f"{s3_bucket}/clips/sub/clip1.wav"]
    assert table.column("duration_s").to_pylist() == [1.0, 2.5]
    assert summary["embedded"] == 2 and [item["path"] for item in summary["skipped"]] == [f"{s3_bucket}/clips/broken.wav"]

    # the same vectors as the local encoder on the local files
    (tmp_path / "clips").mkdir()
    for index in range(2):
        (tmp_path / "clips" / f"clip{index}.wav").write_bytes(storage.read_bytes(f"{s3_bucket}/clips/sub/clip{index}.wav"))
    main(["embed", str(tmp_path / "clips"), "--checkpoint", str(tmp_path / "encoder"), "--out", str(tmp_path / "local.parquet")])
    local = pq.read_table(tmp_path / "local.parquet")
    assert np.allclose(
        np.stack(local.column("embedding").to_numpy(zero_copy_only=False)),
        np.stack(table.column("embedding").to_numpy(zero_copy_only=False)),
    )

    # the encoder was fetched once into the cache; load_encoder takes the URI too
    fetched = os.listdir(tmp_path / "cache" / "remote")
    assert len(fetched) == 1 and fetched[0].startswith("encoder-")
    again, _ = load_encoder(f"{s3_bucket}/runs/tiny/encoder")
    assert os.listdir(tmp_path / "cache" / "remote") == fetched
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))


def test_embed_names_a_missing_bucket_input_and_an_unusable_output(s3_bucket, tmp_path):
    with pytest.raises(SystemExit, match=f"mast embed: {s3_bucket}/nothing-here/: no such file or folder"):
        main(["embed", f"{s3_bucket}/nothing-here/", "--checkpoint", "x", "--out", str(tmp_path / "e.parquet")])
    storage.write_bytes(f"{s3_bucket}/a.wav", wav_bytes(1.0, 0))
    with pytest.raises(
        SystemExit, match="mast embed: --out s3://no-such-bucket-here/e.parquet: the bucket 'no-such-bucket-here' does not exist"
    ):
        main(["embed", f"{s3_bucket}/a.wav", "--checkpoint", "x", "--out", "s3://no-such-bucket-here/e.parquet"])
    with pytest.raises(SystemExit, match=f"--checkpoint {s3_bucket}/no-encoder: .*not found"):
        main(["embed", f"{s3_bucket}/a.wav", "--checkpoint", f"{s3_bucket}/no-encoder", "--out", str(tmp_path / "e.parquet")])
