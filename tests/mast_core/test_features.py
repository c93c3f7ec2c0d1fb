"""Tests for mast_core.features: kaldi-exact batched log-mel, normalisation, dataset stats."""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterator

import pytest
import torch
from torchaudio.compliance import kaldi

from mast_core.features import (
    AUDIOSET_MEAN,
    AUDIOSET_STD,
    NUM_MEL_BINS,
    SAMPLE_RATE,
    FeatureStats,
    compute_stats,
    denormalize,
    log_mel,
    merge_stats,
    normalize,
    num_frames,
)


def noisy_sines(batch: int, seconds: float, sample_rate: int = SAMPLE_RATE, seed: int = 0) -> torch.Tensor:
    """Random noise plus a different sine per clip, with a DC offset that the recipe must remove."""
    generator = torch.Generator().manual_seed(seed)
    num_samples = int(seconds * sample_rate)
    time = torch.arange(num_samples) / sample_rate
    frequencies = torch.linspace(220.0, 3000.0, batch)[:, None]
    noise = 0.1 * torch.randn(batch, num_samples, generator=generator)
    return noise + 0.5 * torch.sin(2 * math.pi * frequencies * time) + 0.05


def kaldi_reference(wave: torch.Tensor, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """The AST recipe for one clip, transposed to (n_mels, T)."""
    return kaldi.fbank(
        (wave - wave.mean())[None],
        htk_compat=True,
        sample_frequency=sample_rate,
        use_energy=False,
        window_type="hanning",
        num_mel_bins=NUM_MEL_BINS,
        dither=0.0,
        frame_shift=10,
    ).T


@pytest.mark.parametrize(("seconds", "batch", "frames"), [(1.0, 4, 98), (10.0, 3, 998)])
def test_log_mel_matches_kaldi_fbank_per_clip(seconds: float, batch: int, frames: int) -> None:
    waves = noisy_sines(batch, seconds)
    waves[1, 2000:6000] = 0.0  # digital silence hits kaldi's epsilon floor; must match there too
    specs = log_mel(waves)
    assert specs.shape == (batch, NUM_MEL_BINS, frames)
    assert specs.dtype == torch.float32
    for clip, spec in zip(waves, specs):
        reference = kaldi_reference(clip)
        difference = (spec - reference).abs()
        # Float32 log-mels are ill-conditioned in the lowest bins (pre-emphasis removes ~99.9 % of
        # their power), so summation order alone moves a few values by up to ~1e-3: kaldi's own
        # float32 output is that far from its float64 output. Nearly all values agree to 1e-4.
        assert (difference > 1e-4).float().mean().item() < 0.005
        torch.testing.assert_close(spec, reference, atol=2e-3, rtol=0)


@pytest.mark.parametrize(("seconds", "batch"), [(1.0, 3), (10.0, 2)])
def test_log_mel_is_kaldi_fbank_exactly_in_float64(seconds: float, batch: int) -> None:
    # In float64 rounding no longer hides differences: this pins the algorithm itself.
    waves = noisy_sines(batch, seconds).double()
    specs = log_mel(waves)
    for clip, spec in zip(waves, specs):
        torch.testing.assert_close(spec, kaldi_reference(clip), atol=1e-9, rtol=0)


def test_single_clip_is_mel_bins_first_and_equals_its_batch_row() -> None:
    waves = noisy_sines(3, 1.0)
    spec = log_mel(waves[1])
    assert spec.shape == (NUM_MEL_BINS, 98)
    torch.testing.assert_close(spec, log_mel(waves)[1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("rows", [1, 3])
def test_cpu_batch_in_several_passes_equals_one_pass(monkeypatch: pytest.MonkeyPatch, rows: int) -> None:
    """A CPU batch goes through the FFT a few clips at a time (page faults, features.py); the result
    is bit for bit the whole batch's, with the last pass shorter than the others."""
    import mast_core.features as features

    waves = noisy_sines(7, 2.0)
    monkeypatch.setattr(features, "_CPU_PASS_BYTES", 1 << 40)
    whole = log_mel(waves)
    monkeypatch.setattr(features, "_CPU_PASS_BYTES", rows * 198 * 512 * 4)  # 2 s: 198 frames of a 512-point FFT
    assert features._rows_per_pass(waves, 198, 512) == rows
    assert torch.equal(log_mel(waves), whole)


@pytest.mark.parametrize("sample_rate", [8000, 22050])
def test_other_sample_rates_match_kaldi(sample_rate: int) -> None:
    waves = noisy_sines(2, 0.5, sample_rate=sample_rate)
    specs = log_mel(waves, sample_rate=sample_rate)
    assert specs.shape[-1] == num_frames(waves.shape[-1], sample_rate)
    for clip, spec in zip(waves, specs):
        torch.testing.assert_close(spec, kaldi_reference(clip, sample_rate), atol=1e-4, rtol=0)


def test_dtypes_and_num_mel_bins() -> None:
    waves = noisy_sines(2, 0.2)
    assert log_mel(waves.double()).dtype == torch.float64
    assert log_mel(waves.half()).dtype == torch.float32  # FFT and log need float32's range
    assert log_mel(waves, num_mel_bins=64).shape == (2, 64, num_frames(3200))


@pytest.mark.parametrize(("num_samples", "frames"), [(0, 0), (399, 0), (400, 1), (559, 1), (560, 2), (16_000, 98), (160_000, 998)])
def test_num_frames(num_samples: int, frames: int) -> None:
    assert num_frames(num_samples) == frames
    if frames:
        assert log_mel(torch.randn(num_samples)).shape == (NUM_MEL_BINS, frames)


def test_too_short_clip_names_its_length() -> None:
    with pytest.raises(ValueError, match="399 samples"):
        log_mel(torch.randn(2, 399))


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="shape"):
        log_mel(torch.randn(1, 2, 16_000))
    with pytest.raises(TypeError, match="floating point"):
        log_mel(torch.zeros(16_000, dtype=torch.int16))
    with pytest.raises(ValueError, match="sample_rate"):
        log_mel(torch.randn(16_000), sample_rate=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_log_mel_on_gpu_matches_cpu() -> None:
    waves = noisy_sines(8, 10.0)
    on_gpu = log_mel(waves.cuda())
    assert on_gpu.is_cuda
    torch.testing.assert_close(on_gpu.cpu(), log_mel(waves), atol=1e-3, rtol=0)


def test_normalize_formula_and_round_trip() -> None:
    spec = log_mel(noisy_sines(2, 0.5))
    normalised = normalize(spec, AUDIOSET_MEAN, AUDIOSET_STD)
    torch.testing.assert_close(normalised, (spec - AUDIOSET_MEAN) / (2 * AUDIOSET_STD))
    torch.testing.assert_close(denormalize(normalised, AUDIOSET_MEAN, AUDIOSET_STD), spec, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="std"):
        normalize(spec, 0.0, 0.0)


def variable_length_specs(seed: int = 0) -> Iterator[torch.Tensor]:
    """(n_mels, T) and (B, n_mels, T) items of varying T, made one at a time."""
    generator = torch.Generator().manual_seed(seed)
    for shape in [(16, 7), (3, 16, 11), (16, 1), (2, 16, 30), (16, 5)]:
        yield 3.0 * torch.randn(shape, generator=generator) - 4.0


def test_compute_stats_equals_torch_over_all_values() -> None:
    specs = list(variable_length_specs())
    everything = torch.cat([spec.reshape(-1) for spec in specs]).double()
    stats = compute_stats(specs)
    assert stats.mean == pytest.approx(everything.mean().item(), rel=1e-12)
    assert stats.std == pytest.approx(everything.std(correction=0).item(), rel=1e-12)
    assert stats.num_frames == 7 + 3 * 11 + 1 + 2 * 30 + 5


def test_compute_stats_is_numerically_stable_far_from_zero() -> None:
    # A large offset next to a small spread is where sum-of-squares accumulation breaks down.
    specs = [spec.double() / 3.0 + 1e6 for spec in variable_length_specs(seed=1)]
    everything = torch.cat([spec.reshape(-1) for spec in specs])
    stats = compute_stats(specs)
    assert stats.std == pytest.approx(everything.std(correction=0).item(), rel=1e-9)


def test_compute_stats_streams_without_holding_earlier_items() -> None:
    alive: list[weakref.ref[torch.Tensor]] = []

    def stream() -> Iterator[torch.Tensor]:
        for index, spec in enumerate(variable_length_specs()):
            # By the time item k is requested, item k - 2 must have been released.
            if index >= 2:
                assert alive[index - 2]() is None, f"item {index - 2} still held while reading item {index}"
            alive.append(weakref.ref(spec))
            yield spec

    compute_stats(stream())
    assert len(alive) == 5


def test_compute_stats_rejects_empty_and_mismatched_input() -> None:
    with pytest.raises(ValueError, match="empty"):
        compute_stats([])
    with pytest.raises(ValueError, match="empty"):
        compute_stats(iter(()))
    with pytest.raises(ValueError, match="mel bins"):
        compute_stats([torch.zeros(16, 4), torch.zeros(8, 4)])


def test_merge_stats_equals_stats_over_the_concatenated_clips() -> None:
    # Shards of very different sizes and offsets: a merge that weighted parts equally, kept one
    # part or dropped the between-shard spread would be far off here.
    generator = torch.Generator().manual_seed(2)
    shards = [
        [2.0 * torch.randn(16, frames, generator=generator) - 6.0 + shift for frames in sizes]
        for shift, sizes in ((0.0, [7, 30, 2]), (3.0, [1]), (-2.5, [50, 4, 9, 12]), (1.0, [3, 3]))
    ]
    parts = [compute_stats(shard) for shard in shards]
    merged = merge_stats(parts)
    everything = torch.cat([clip.reshape(-1) for shard in shards for clip in shard]).double()
    assert merged.num_frames == sum(clip.shape[-1] for shard in shards for clip in shard) == 121
    assert merged.mean == pytest.approx(everything.mean().item(), rel=1e-12)
    assert merged.std == pytest.approx(everything.std(correction=0).item(), rel=1e-12)
    # order does not matter, and parts without frames (a shard whose clips were all skipped) add nothing
    reordered = merge_stats([parts[2], FeatureStats(mean=99.0, std=1.0, num_frames=0), parts[0], parts[3], parts[1]])
    assert reordered.num_frames == merged.num_frames
    assert reordered.mean == pytest.approx(merged.mean, rel=1e-12)
    assert reordered.std == pytest.approx(merged.std, rel=1e-12)
    assert merge_stats(parts[1:2]) == parts[1]
    with pytest.raises(ValueError, match="no statistics"):
        merge_stats([FeatureStats(mean=0.0, std=1.0, num_frames=0)])


def test_feature_stats_dict_round_trip() -> None:
    stats = FeatureStats(mean=-4.5, std=4.25, num_frames=1234)
    assert FeatureStats.from_dict(stats.to_dict()) == stats
    with pytest.raises(ValueError, match="std"):
        FeatureStats.from_dict({"mean": 0.0, "num_frames": 3})
    with pytest.raises(ValueError, match="unknown"):
        FeatureStats.from_dict({**stats.to_dict(), "median": 1.0})
