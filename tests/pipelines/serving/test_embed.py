"""Embedding API, `mast embed` and loading encoders from folders and MLflow (tiny random encoders)."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

from fixtures.damage import zero_frames
from mast_core import CheckpointError, Embedder, FeatureSettings, load_encoder, read_clip, resolve_checkpoint, save_encoder
from mast_core.ast import ast_tiny
from mast_core.embed import bucket_frames, token_stride
from mast_core.features import log_mel, normalize
from mast_core.mast import mast_tiny
from pipelines.cli import main
from pipelines.serving.embed import read_embeddings

RATE = 16_000
FEATURES = FeatureSettings(mean=-6.0, std=4.5)


def signal(seconds: float, seed: int, rate: int = RATE) -> np.ndarray:
    """Tones plus noise, float32 in [-0.6, 0.6]: a deterministic stand-in for real audio."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    tones = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in rng.uniform(100, 3000, size=3)) / 6
    return (tones + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    root = tmp_path_factory.mktemp("encoders")
    torch.manual_seed(0)
    return {
        "mast": save_encoder(mast_tiny().eval(), root / "mast", FEATURES),
        "ast": save_encoder(ast_tiny().eval(), root / "ast", FEATURES),
    }


def run_cli(*args) -> None:
    main([str(a) for a in args])


def table_embeddings(path) -> tuple[list[str], torch.Tensor, dict]:
    table, summary = read_embeddings(path)
    vectors = torch.from_numpy(np.stack(table.column("embedding").to_numpy(zero_copy_only=False)))
    return table.column("path").to_pylist(), vectors, summary


# -- the API ------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch, counts, hop", [("mast", [1, 2, 13, 75], 0.8), ("ast", [1, 9, 99, 594], 0.1)])
def test_lengths_from_a_tenth_of_a_second_to_a_minute(encoders, arch, counts, hop):
    embedder = Embedder(*load_encoder(encoders[arch]))
    waves = [signal(seconds, seed) for seed, seconds in enumerate((0.1, 1.0, 10.0, 60.0))]
    out = embedder.embed(waves, frames=True)
    assert out.clip.shape == (4, embedder.embedding_size) and out.clip.dtype == torch.float32
    assert torch.isfinite(out.clip).all()
    assert [f.shape[0] for f in out.frames] == counts
    for frames, stamps, seconds in zip(out.frames, out.timestamps, (0.1, 1.0, 10.0, 60.0)):
        assert frames.shape[1] == embedder.embedding_size and torch.isfinite(frames).all()
        assert stamps[0].item() == pytest.approx(0.0875)  # centre of the first 16-frame patch
        assert torch.allclose(stamps.diff(), torch.full((len(stamps) - 1,), hop), atol=1e-5)
        assert stamps[-1].item() < max(seconds, 0.175)
    assert embedder.frame_hop_seconds == pytest.approx(hop)


def test_clip_embedding_is_what_the_encoder_computes(encoders):
    model, features = load_encoder(encoders["mast"])
    embedder = Embedder(model, features)
    wave = signal(1.0, 3)
    spec = normalize(log_mel(torch.from_numpy(wave)), features.mean, features.std)  # (128, 98)
    padded = torch.nn.functional.pad(spec, (0, bucket_frames(98) - 98))[None]
    with torch.no_grad():
        direct = model(padded, torch.tensor([98]))
        unpadded = model(spec[None])
    got = embedder.embed([wave]).clip
    assert torch.equal(got, direct)
    torch.testing.assert_close(got, unpadded, rtol=1e-5, atol=1e-5)  # padding is masked out
    assert token_stride(model) == 80 and bucket_frames(98) == 104 and bucket_frames(16) == 16


def test_long_clips_are_cut_into_windows_on_the_token_grid(encoders):
    embedder = Embedder(*load_encoder(encoders["mast"]))
    assert embedder.window_frames == 960  # max_frames 1024 rounded down to 80-frame tokens
    assert embedder.windows(998) == [(0, 998)]
    assert embedder.windows(1439) == [(0, 1439)]  # remainder below half a window joins the last
    assert embedder.windows(1440) == [(0, 960), (960, 480)]
    assert embedder.windows(5998) == [(0, 960), (960, 960), (1920, 960), (2880, 960), (3840, 960), (4800, 1198)]
    # the clip embedding of a windowed clip is the frame-weighted mean of its windows'
    wave = signal(20.0, 4)
    spec = normalize(log_mel(torch.from_numpy(wave)), FEATURES.mean, FEATURES.std)
    windows = embedder.windows(spec.shape[1])
    with torch.no_grad():
        parts = [embedder.embed([wave[s * 160 : s * 160 + 400 + (n - 1) * 160]]).clip[0] for s, n in windows]
    weights = torch.tensor([float(n) for _, n in windows])
    expected = (torch.stack(parts) * weights[:, None]).sum(0) / weights.sum()
    torch.testing.assert_close(embedder.embed([wave]).clip[0], expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="window_frames 40 is too short"):
        Embedder(*load_encoder(encoders["mast"]), window_frames=40)


@pytest.mark.parametrize("arch", ["mast", "ast"])
def test_a_clips_embedding_does_not_depend_on_the_rest_of_the_batch(encoders, arch):
    model, features = load_encoder(encoders[arch])
    lengths = (0.1, 0.5, 1.0, 1.02, 3.3) + ((14.0,) if arch == "mast" else ())  # 14 s: two windows joined
    waves = [signal(seconds, seed) for seed, seconds in enumerate(lengths)]
    batched = Embedder(model, features, batch_size=16)
    together = batched.embed(waves, frames=True)
    reverse = batched.embed(waves[::-1], frames=True)
    again = batched.embed(waves, frames=True)
    assert torch.equal(together.clip, again.clip)  # deterministic
    for index, wave in enumerate(waves):
        alone = batched.embed([wave], frames=True)
        for other in (alone.clip[0], reverse.clip[len(waves) - 1 - index]):
            torch.testing.assert_close(together.clip[index], other, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(together.frames[index], alone.frames[0], rtol=1e-5, atol=1e-5)
    # one window per encoder call: bitwise independent of the other clips
    single = Embedder(model, features, batch_size=1)
    together = single.embed(waves)
    for index, wave in enumerate(waves):
        assert torch.equal(together.clip[index], single.embed([wave]).clip[0])


def test_array_input_checks_and_resampling(encoders):
    embedder = Embedder(*load_encoder(encoders["mast"]))
    wave = signal(2.0, 5, rate=8_000)
    resampled = AF.resample(torch.from_numpy(wave), 8_000, RATE)
    assert torch.equal(embedder.embed([wave], sample_rate=8_000).clip, embedder.embed([resampled]).clip)
    with pytest.raises(ValueError, match=r"clip 1: expected a mono \(num_samples,\) waveform, got shape \(2, 16000\)"):
        embedder.embed([signal(1.0, 0), np.zeros((2, RATE), np.float32)])
    with pytest.raises(TypeError, match="clip 0: expected float samples"):
        embedder.embed([np.zeros(RATE, np.int16)])
    with pytest.raises(ValueError, match="clip 0: empty waveform"):
        embedder.embed([np.zeros(0, np.float32)])
    with pytest.raises(ValueError, match="NaN"):
        embedder.embed([np.full(RATE, np.nan, np.float32)])
    assert embedder.embed([]).clip.shape == (0, embedder.embedding_size)
    stacked = embedder.embed(torch.stack([torch.from_numpy(signal(1.0, s)) for s in range(3)]))
    assert stacked.clip.shape == (3, embedder.embedding_size)


# -- files and `mast embed` ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio")
    (root / "nested" / "deeper").mkdir(parents=True)
    sf.write(root / "a.flac", signal(2.0, 10), RATE, subtype="PCM_16")
    sf.write(root / "b.flac", signal(2.0, 11), RATE, subtype="PCM_16")
    sf.write(root / "nested" / "c.flac", signal(2.0, 12), RATE, subtype="PCM_16")
    sf.write(root / "nested" / "deeper" / "short.wav", signal(0.1, 13), RATE, subtype="FLOAT")
    sf.write(root / "nested" / "long.flac", signal(16.0, 14), RATE, subtype="PCM_16")  # two windows
    (root / "notes.txt").write_text("not audio")  # folders contribute audio suffixes only
    return root


def test_api_cli_and_hear_give_identical_embeddings(encoders, audio_dir, tmp_path, capsys):
    from mast_core import hear

    out = tmp_path / "emb.parquet"
    run_cli("embed", audio_dir, "--checkpoint", encoders["mast"], "--out", out, "--frames", "--device", "cpu")
    printed = capsys.readouterr().out
    assert "5/5 files: 5 embedded, 0 skipped" in printed and "done: 5 of 5 files embedded" in printed
    paths, vectors, summary = table_embeddings(out)
    names = ["a.flac", "b.flac", "c.flac", "short.wav", "long.flac"]
    assert [p.removeprefix(str(audio_dir) + "/").split("/")[-1] for p in paths] == names
    assert summary["embedded"] == 5 and summary["skipped"] == [] and summary["arch"] == "mast"
    table, _ = read_embeddings(out)
    assert table.column("duration_s").to_pylist() == pytest.approx([2.0, 2.0, 2.0, 0.1, 16.0])

    embedder = Embedder(*load_encoder(encoders["mast"]))
    waves = [read_clip(p, RATE) for p in paths]
    api = embedder.embed(waves, frames=True)
    assert torch.equal(vectors, api.clip)
    frames = table.column("frame_embeddings").to_pylist()
    stamps = table.column("timestamps_s").to_pylist()
    for index in range(5):
        assert torch.equal(torch.tensor(frames[index]), api.frames[index])
        assert torch.equal(torch.tensor(stamps[index]), api.timestamps[index])

    model = hear.load_model(encoders["mast"], device="cpu", hop_ms=None)  # the tokens themselves
    two_seconds = torch.stack(waves[:3])  # the three 2 s files
    scene = hear.get_scene_embeddings(two_seconds, model)
    assert torch.equal(scene, vectors[:3])
    hear_frames, ms = hear.get_timestamp_embeddings(two_seconds, model)
    assert torch.equal(hear_frames, torch.stack(api.frames[:3]))
    assert torch.allclose(ms, torch.stack(api.timestamps[:3]) * 1000)


def test_files_are_downmixed_and_resampled(encoders, tmp_path, capsys):
    left, right = signal(2.0, 20, rate=48_000), signal(2.0, 21, rate=48_000)
    sf.write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 48_000, subtype="FLOAT")
    out = tmp_path / "emb.parquet"
    run_cli("embed", tmp_path / "stereo.wav", "--checkpoint", encoders["mast"], "--out", out)
    _, vectors, _ = table_embeddings(out)
    table, _ = read_embeddings(out)
    assert table.column("duration_s")[0].as_py() == pytest.approx(2.0)

    embedder = Embedder(*load_encoder(encoders["mast"]))
    mono = AF.resample(torch.from_numpy((np.stack([left, right], axis=1)).mean(axis=1)), 48_000, RATE)
    assert torch.equal(vectors[0], embedder.embed([mono]).clip[0])
    torch.testing.assert_close(vectors[0], embedder.embed([(left + right) / 2], sample_rate=48_000).clip[0])
    left_only = embedder.embed([left], sample_rate=48_000).clip[0]
    assert not torch.allclose(vectors[0], left_only, atol=1e-3)  # both channels count


def test_folders_are_searched_for_every_audio_format(encoders, tmp_path, capsys):
    from pipelines.serving.embed import expand_inputs

    (tmp_path / "in" / "sub").mkdir(parents=True)
    sf.write(tmp_path / "in" / "a.mp3", signal(1.0, 40), RATE, format="MP3")
    sf.write(tmp_path / "in" / "sub" / "b.ogg", signal(1.0, 41), RATE, format="OGG", subtype="VORBIS")
    sf.write(tmp_path / "in" / "sub" / "C.WAV", signal(1.0, 42), 22_050)
    (tmp_path / "in" / "sub" / "readme.md").write_text("skip me")
    files = expand_inputs([str(tmp_path / "in"), str(tmp_path / "in" / "a.mp3")])  # duplicates dropped
    assert [f.name for f in files] == ["a.mp3", "C.WAV", "b.ogg"]
    run_cli("embed", tmp_path / "in", "--checkpoint", encoders["ast"], "--out", tmp_path / "e.parquet")
    paths, vectors, summary = table_embeddings(tmp_path / "e.parquet")
    assert [p.split("/")[-1] for p in paths] == ["a.mp3", "C.WAV", "b.ogg"]
    assert vectors.shape == (3, 192) and torch.isfinite(vectors).all() and summary["arch"] == "ast"


def test_undecodable_files_are_skipped_and_reported(encoders, tmp_path, capsys):
    good = tmp_path / "good.flac"
    sf.write(good, signal(1.0, 30), RATE, subtype="PCM_16")
    (tmp_path / "garbage.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" * 20)
    (tmp_path / "empty.flac").write_bytes(b"")
    data = good.read_bytes()
    (tmp_path / "truncated.flac").write_bytes(data[: len(data) // 3])
    (tmp_path / "zeroed.flac").write_bytes(zero_frames(data))  # header kept, frames gone (libsndfile: psf_fseek)
    out = tmp_path / "out" / "emb.parquet"
    run_cli(
        "embed",
        str(tmp_path / "*.flac"),
        tmp_path / "garbage.wav",
        "--checkpoint",
        encoders["mast"],
        "--out",
        out,
        "--batch-size",
        "2",
        "--workers",
        "3",
    )
    captured = capsys.readouterr()
    assert "done: 1 of 5 files embedded" in captured.out and "4 skipped" in captured.out
    for name in ("garbage.wav", "empty.flac", "truncated.flac", "zeroed.flac"):
        assert f"skipped {tmp_path / name}" in captured.err
    paths, vectors, summary = table_embeddings(out)
    assert paths == [str(good)] and vectors.shape == (1, 256)
    assert summary["files"] == 5 and summary["embedded"] == 1 and summary["skipped_count"] == 4
    reasons = {item["path"].split("/")[-1]: item["reason"] for item in summary["skipped"]}
    assert reasons["garbage.wav"] == "unreadable" and reasons["empty.flac"] == "empty file"
    assert reasons["truncated.flac"] in ("truncated", "corrupt data", "unreadable")
    assert reasons["zeroed.flac"] in ("truncated", "corrupt data", "unreadable")
    assert all(str(tmp_path) in item["detail"] for item in summary["skipped"])
    assert not list(out.parent.glob(".*tmp*"))  # the temporary file was renamed into place

    with pytest.raises(SystemExit, match="none of the 1 files could be decoded"):
        run_cli("embed", tmp_path / "garbage.wav", "--checkpoint", encoders["mast"], "--out", tmp_path / "none.parquet")
    assert read_embeddings(tmp_path / "none.parquet")[1]["skipped_count"] == 1


def test_bad_command_lines_fail_before_any_work(encoders, tmp_path, capsys):
    for args, message in [
        ([tmp_path / "missing.wav"], "missing.wav: no such file or folder"),
        ([str(tmp_path / "*.ogg")], "pattern matches no files"),
        ([tmp_path], "folder holds no audio files"),
    ]:
        with pytest.raises(SystemExit, match=message):
            run_cli("embed", *args, "--checkpoint", encoders["mast"], "--out", tmp_path / "x.parquet")
    sf.write(tmp_path / "a.wav", signal(0.5, 1), RATE)
    with pytest.raises(SystemExit, match="checkpoint folder not found"):
        run_cli("embed", tmp_path / "a.wav", "--checkpoint", tmp_path / "no-encoder", "--out", tmp_path / "x.parquet")
    with pytest.raises(SystemExit, match="--batch-size must be >= 1"):
        run_cli("embed", tmp_path / "a.wav", "--checkpoint", encoders["mast"], "--out", tmp_path / "x.parquet", "--batch-size", "0")
    assert not (tmp_path / "x.parquet").exists()


def test_checkpoint_paths_and_their_errors(encoders, tmp_path):
    with pytest.raises(CheckpointError, match=f"{tmp_path / 'gone'}: checkpoint folder not found"):
        load_encoder(tmp_path / "gone")
    with pytest.raises(
        CheckpointError, match="no resolver handles this URI .known: runs:/..., models:/..., mlflow-artifacts:/..., s3://..."
    ):
        load_encoder("webdav://host/encoder")
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="weights.bin: is a file"):
        load_encoder(tmp_path / "weights.bin")
    # a file of an export stands for its folder
    assert resolve_checkpoint(encoders["mast"] / "encoder.safetensors") == encoders["mast"]
    config = json.loads((encoders["ast"] / "config.json").read_text())
    assert load_encoder(encoders["ast"] / "config.json")[0].arch == config["arch"]


def test_a_long_file_is_embedded_window_by_window_in_its_place(encoders, tmp_path, capsys):
    """A file longer than LONG_WINDOWS windows goes through Embedder.embed_long (memory bounded by
    the windows, benchmarks/long_audio.py measures it): same result as the whole-clip path, in
    input order; one damaged past its header is skipped with its reason."""
    from pipelines.serving.embed import LONG_WINDOWS

    embedder = Embedder(*load_encoder(encoders["mast"]))
    seconds = LONG_WINDOWS * embedder.window_frames / 100 + 3  # just past the threshold
    sf.write(tmp_path / "a.flac", signal(1.0, 1), RATE, subtype="PCM_16")
    sf.write(tmp_path / "b.flac", np.stack([signal(seconds, 2, 22050)] * 2, axis=1), 22050, subtype="PCM_16")
    sf.write(tmp_path / "c.flac", signal(2.0, 3), RATE, subtype="PCM_16")
    data = (tmp_path / "b.flac").read_bytes()
    (tmp_path / "d.flac").write_bytes(data[: len(data) * 2 // 3])  # a long file cut short: the header promises more
    out = tmp_path / "emb.parquet"
    run_cli("embed", tmp_path, "--checkpoint", encoders["mast"], "--out", out, "--frames")
    printed = capsys.readouterr().out
    assert f"{tmp_path / 'b.flac'}: {seconds:.1f} s, embedded window by window" in printed
    assert f"{tmp_path / 'a.flac'}:" not in printed and f"{tmp_path / 'c.flac'}:" not in printed
    table, summary = read_embeddings(out)
    assert [p.split("/")[-1] for p in table.column("path").to_pylist()] == ["a.flac", "b.flac", "c.flac"]
    assert [item["path"].split("/")[-1] for item in summary["skipped"]] == ["d.flac"]
    assert summary["skipped"][0]["reason"] in ("truncated", "corrupt data")
    whole = embedder.embed([read_clip(tmp_path / "b.flac", RATE)], frames=True)
    got = torch.from_numpy(np.asarray(table.column("embedding")[1].as_py(), np.float32))
    torch.testing.assert_close(got, whole.clip[0], rtol=1e-4, atol=1e-4)
    frames = torch.tensor(table.column("frame_embeddings")[1].as_py())
    torch.testing.assert_close(frames, whole.frames[0], rtol=1e-4, atol=1e-4)
    assert table.column("duration_s")[1].as_py() == pytest.approx(seconds, abs=1e-3)
