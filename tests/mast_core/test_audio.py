import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

from mast_core.audio import AudioError, decode_audio, encode_flac, quantisation_step, read_audio


def tone(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.default_rng(0).standard_normal(t.size)).astype(np.float32)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


@pytest.fixture
def files(tmp_path):
    paths = {}
    paths["wav16"] = tmp_path / "a.wav"
    sf.write(paths["wav16"], tone(1.0, 16000), 16000)
    paths["stereo44"] = tmp_path / "b.flac"
    sf.write(paths["stereo44"], tone(1.0, 44100, channels=2), 44100)
    paths["ogg"] = tmp_path / "c.ogg"
    sf.write(paths["ogg"], tone(1.0, 22050), 22050)
    return paths


def test_reads_resamples_and_downmixes(files):
    wave = read_audio(files["wav16"])
    assert wave.dtype == torch.float32 and wave.shape == (16000,)
    stereo = read_audio(files["stereo44"])
    assert stereo.shape == (16000,)
    source, _ = sf.read(files["stereo44"], dtype="float32")
    expected = AF.resample(torch.from_numpy(source.mean(axis=1)), 44100, 16000)
    torch.testing.assert_close(stereo, expected)
    assert read_audio(files["ogg"]).shape == (16000,)


def test_start_and_duration_select_a_segment(files):
    whole = read_audio(files["wav16"])
    part = read_audio(files["wav16"], start=0.25, duration=0.5)
    torch.testing.assert_close(part, whole[4000:12000])
    with pytest.raises(AudioError, match="out of range"):
        read_audio(files["wav16"], start=0.9, duration=0.5)


def test_flac_round_trip_within_16_bit_tolerance(files):
    wave = read_audio(files["stereo44"])
    decoded = decode_audio(encode_flac(wave))
    assert decoded.shape == wave.shape
    assert float((decoded - wave).abs().max()) <= quantisation_step(16)


@pytest.mark.parametrize(
    "name, make, reason",
    [
        ("empty.wav", lambda p: p.write_bytes(b""), "empty file"),
        ("random.wav", lambda p: p.write_bytes(np.random.default_rng(1).bytes(4000)), "unreadable"),
        ("silent.wav", lambda p: sf.write(p, np.zeros(16000, np.float32), 16000), "silent"),
        ("nan.wav", lambda p: sf.write(p, np.full(16000, np.nan, np.float32), 16000, subtype="FLOAT"), "non-finite samples"),
        ("long.wav", lambda p: sf.write(p, tone(3.0, 8000), 8000), "too long"),
    ],
)
def test_bad_files_raise_with_a_reason(tmp_path, name, make, reason):
    path = tmp_path / name
    make(path)
    with pytest.raises(AudioError) as error:
        read_audio(path, max_seconds=2.0)
    assert error.value.reason == reason
    assert name in str(error.value) or reason == "empty file"


def test_truncated_wav_and_flac(tmp_path, files):
    data = files["wav16"].read_bytes()
    truncated = tmp_path / "cut.wav"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError) as error:
        read_audio(truncated)
    assert error.value.reason == "truncated"
    flac = tmp_path / "cut.flac"
    flac.write_bytes(encode_flac(read_audio(files["wav16"]))[:3000])
    with pytest.raises(AudioError) as error:
        read_audio(flac)
    assert error.value.reason in {"corrupt data", "truncated"}


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="missing file"):
        read_audio(tmp_path / "nope.wav")
