"""Tests for mast_core.augment: seeded, batched, non-mutating spectrogram augmentations."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from mast_core.augment import LogMixupExp, RandomResizeCrop, SpecAugment

Augmentation = Callable[[torch.Tensor], torch.Tensor]

FACTORIES: dict[str, Callable[[int | None], Augmentation]] = {
    "log_mixup_exp": lambda seed: LogMixupExp(ratio=0.4, memory_size=8, seed=seed),
    "random_resize_crop": lambda seed: RandomResizeCrop(seed=seed),
    "spec_augment": lambda seed: SpecAugment(freq_mask=24, time_mask=20, seed=seed),
}


def spectrograms(batch: int = 4, mel_bins: int = 32, frames: int = 60, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, mel_bins, frames, generator=generator) - 4.0


def run_twice(augment: Augmentation) -> torch.Tensor:
    """Second call's output: LogMixupExp only mixes once its memory holds earlier clips."""
    augment(spectrograms(seed=1))
    return augment(spectrograms(seed=2))


@pytest.mark.parametrize("name", FACTORIES)
def test_same_seed_same_output_different_seed_different_output(name: str) -> None:
    first = run_twice(FACTORIES[name](0))
    again = run_twice(FACTORIES[name](0))
    other = run_twice(FACTORIES[name](1))
    torch.testing.assert_close(first, again, atol=0, rtol=0)
    assert not torch.equal(first, other)


@pytest.mark.parametrize("name", FACTORIES)
def test_input_untouched_and_shape_preserved(name: str) -> None:
    augment = FACTORIES[name](0)
    for frames in (60, 45):  # a second, different length also exercises LogMixupExp's fitting
        batch = spectrograms(frames=frames)
        original = batch.clone()
        output = augment(batch)
        assert output.shape == batch.shape
        assert output.dtype == batch.dtype
        assert output.data_ptr() != batch.data_ptr()
        torch.testing.assert_close(batch, original, atol=0, rtol=0)


@pytest.mark.parametrize("name", FACTORIES)
def test_rejects_non_batches(name: str) -> None:
    with pytest.raises(ValueError, match="shape"):
        FACTORIES[name](0)(torch.zeros(32, 60))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", FACTORIES)
def test_gpu_output_matches_cpu_for_the_same_seed(name: str) -> None:
    on_cpu = run_twice(FACTORIES[name](0))
    augment = FACTORIES[name](0)
    augment(spectrograms(seed=1).cuda())
    on_gpu = augment(spectrograms(seed=2).cuda())
    assert on_gpu.is_cuda
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, atol=1e-4, rtol=1e-4)


# ---- LogMixupExp -----------------------------------------------------------------------------


def constant_clips(values: list[float], mel_bins: int = 4, frames: int = 6) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)[:, None, None].expand(len(values), mel_bins, frames)


def test_log_mixup_exp_memory_is_fifo_and_evicts_oldest() -> None:
    mixup = LogMixupExp(memory_size=3, seed=0)
    mixup(constant_clips([0.0, 1.0]))
    assert [clip[0, 0].item() for clip in mixup.memory] == [0.0, 1.0]
    mixup(constant_clips([2.0, 3.0, 4.0]))
    assert [clip[0, 0].item() for clip in mixup.memory] == [2.0, 3.0, 4.0]
    mixup(constant_clips([5.0]))
    assert [clip[0, 0].item() for clip in mixup.memory] == [3.0, 4.0, 5.0]


def test_log_mixup_exp_stores_unmixed_copies() -> None:
    mixup = LogMixupExp(memory_size=4, seed=0)
    mixup(constant_clips([0.0]))
    batch = constant_clips([10.0]).clone()
    mixup(batch)
    batch.fill_(-1.0)  # the caller reusing its buffer must not change the memory
    assert [clip[0, 0].item() for clip in mixup.memory] == [0.0, 10.0]


def test_log_mixup_exp_passes_through_with_empty_memory() -> None:
    batch = spectrograms()
    mixup = LogMixupExp(seed=0)
    torch.testing.assert_close(mixup(batch), batch, atol=0, rtol=0)
    assert len(mixup.memory) == batch.shape[0]


def test_log_mixup_exp_output_power_lies_between_the_pair() -> None:
    ratio = 0.4
    mixup = LogMixupExp(ratio=ratio, memory_size=1, seed=0)
    partner_power, clip_power = 5.0, 1.0
    mixup(constant_clips([math.log(partner_power)]))
    mixed_power = mixup(constant_clips([math.log(clip_power)] * 64)).exp()
    # Each output clip is (1 - l) * 1 + l * 5 for its own l in [0, ratio): constant per clip.
    weights = (mixed_power - clip_power) / (partner_power - clip_power)
    assert torch.allclose(weights, weights[:, :1, :1].expand_as(weights))
    assert weights.min() >= -1e-6 and weights.max() < ratio
    assert weights[:, 0, 0].unique().numel() > 1  # lambda is drawn per clip


@pytest.mark.parametrize("ratio", [0.0, 1e-7])
def test_log_mixup_exp_with_no_mixing_is_identity(ratio: float) -> None:
    mixup = LogMixupExp(ratio=ratio, seed=0)
    mixup(spectrograms(seed=1))
    batch = spectrograms(seed=2)
    torch.testing.assert_close(mixup(batch), batch, atol=1e-5, rtol=0)


def test_log_mixup_exp_is_stable_for_large_log_powers() -> None:
    mixup = LogMixupExp(ratio=0.4, seed=0)
    mixup(constant_clips([200.0]))  # exp(200) overflows float32
    mixed = mixup(constant_clips([190.0] * 8))
    assert torch.isfinite(mixed).all()
    assert mixed.min() >= 190.0 and mixed.max() < 200.0


def test_log_mixup_exp_fits_partners_of_other_lengths() -> None:
    mixup = LogMixupExp(ratio=0.4, memory_size=2, seed=0)
    mixup(spectrograms(batch=1, frames=13))
    mixup(spectrograms(batch=1, frames=200))
    assert mixup(spectrograms(batch=8, frames=60)).shape == (8, 32, 60)
    with pytest.raises(ValueError, match="mel bins"):
        mixup(spectrograms(mel_bins=16))


# ---- RandomResizeCrop ------------------------------------------------------------------------


def test_random_resize_crop_with_unit_scales_is_identity() -> None:
    crop = RandomResizeCrop(virtual_crop_scale=(1.0, 1.0), freq_scale=(1.0, 1.0), time_scale=(1.0, 1.0), seed=0)
    batch = spectrograms()
    torch.testing.assert_close(crop(batch), batch, atol=1e-4, rtol=0)


def test_random_resize_crop_zoomed_out_shows_the_zero_canvas() -> None:
    # A crop of the whole 3x-wide canvas puts the clip in the middle third, zeros either side.
    crop = RandomResizeCrop(virtual_crop_scale=(1.0, 3.0), freq_scale=(1.0, 1.0), time_scale=(3.0, 3.0), seed=0)
    # Each mel row is the ramp 10, 11, ..., 69 over the 60 frames; bilinear sampling reproduces a
    # ramp exactly, so every output frame can be checked against where it should sample.
    batch = (10.0 + torch.arange(60.0)).expand(2, 16, 60)
    output = crop(batch)
    assert output[..., :20].abs().max() < 1e-4
    assert output[..., 40:].abs().max() < 1e-4
    # Output frame j (20 <= j < 40) samples input frame 3 * j - 59: 1, 4, ..., 58.
    expected = 10.0 + 3.0 * torch.arange(20.0, 40.0) - 59.0
    torch.testing.assert_close(output[..., 20:40], expected.expand(2, 16, 20), atol=1e-3, rtol=0)


def test_random_resize_crop_varies_per_clip() -> None:
    crop = RandomResizeCrop(seed=0)
    batch = spectrograms(batch=1).expand(6, -1, -1)
    output = crop(batch)
    assert not torch.allclose(output[0], output[1])


# ---- SpecAugment -----------------------------------------------------------------------------

MASK = -100.0  # never produced by spectrograms(), so masked cells are unambiguous


def band_widths(masked: torch.Tensor) -> list[int]:
    """Widths of the single contiguous band of True in each row of a (B, size) bool tensor."""
    widths = []
    for row in masked:
        positions = row.nonzero().flatten()
        if positions.numel():
            assert positions[-1] - positions[0] + 1 == positions.numel(), "band is not contiguous"
        widths.append(positions.numel())
    return widths


def test_spec_augment_frequency_band_is_exact_and_bounded() -> None:
    batch = spectrograms(batch=200, mel_bins=32, frames=20)
    masks = SpecAugment(freq_mask=5, time_mask=0, num_freq_masks=1, num_time_masks=0, mask_value=MASK, seed=0)
    output = masks(batch)
    changed = output != batch
    rows = changed.all(dim=2)  # (B, n_mels): whole mel rows
    assert torch.equal(changed, rows[:, :, None].expand_as(changed)), "masks must cover whole rows"
    assert (output[changed] == MASK).all()
    assert set(band_widths(rows)) == set(range(6))  # widths ~ U{0..5}: every width, never more


def test_spec_augment_time_band_is_exact_and_capped_at_clip_length() -> None:
    batch = spectrograms(batch=300, mel_bins=8, frames=10)
    masks = SpecAugment(freq_mask=0, time_mask=1000, num_freq_masks=0, num_time_masks=1, mask_value=MASK, seed=0)
    output = masks(batch)
    changed = output != batch
    columns = changed.all(dim=1)  # (B, T): whole frames
    assert torch.equal(changed, columns[:, None, :].expand_as(changed)), "masks must cover whole frames"
    assert (output[changed] == MASK).all()
    assert set(band_widths(columns)) == set(range(11))  # capped at the 10 frames of the clip


def test_spec_augment_multiple_masks_stay_within_bounds() -> None:
    batch = spectrograms(batch=50, mel_bins=64, frames=100)
    masks = SpecAugment(freq_mask=8, time_mask=12, num_freq_masks=2, num_time_masks=2, mask_value=MASK, seed=3)
    output = masks(batch)
    changed = output != batch
    assert (output[changed] == MASK).all()
    assert (output[~changed] == batch[~changed]).all()
    assert (changed.all(dim=2).sum(dim=1) <= 2 * 8).all()
    assert (changed.all(dim=1).sum(dim=1) <= 2 * 12).all()
    assert changed.any()


# ---- constructor validation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "argument"),
    [
        (lambda: LogMixupExp(ratio=1.5), "ratio"),
        (lambda: LogMixupExp(ratio=-0.1), "ratio"),
        (lambda: LogMixupExp(memory_size=0), "memory_size"),
        (lambda: RandomResizeCrop(virtual_crop_scale=(0.9, 1.5)), "virtual_crop_scale"),
        (lambda: RandomResizeCrop(freq_scale=(1.5, 0.6)), "freq_scale"),
        (lambda: RandomResizeCrop(time_scale=(0.0, 1.0)), "time_scale"),
        (lambda: SpecAugment(freq_mask=-1), "freq_mask"),
        (lambda: SpecAugment(time_mask=2.5), "time_mask"),
        (lambda: SpecAugment(num_freq_masks=-2), "num_freq_masks"),
        (lambda: SpecAugment(num_time_masks=-1), "num_time_masks"),
    ],
)
def test_bad_constructor_arguments_name_the_argument(build: Callable[[], object], argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        build()
