"""Tests for mast_core.views: the view chain's order and settings, the mixup memory, objective views."""

import pytest
import torch

from mast_core import SSAST, SSMAST
from mast_core.ast import ast_tiny
from mast_core.features import log_mel, normalize
from mast_core.mast import mast_tiny
from mast_core.views import AugmentSettings, ViewMaker, objective_views

MEAN, STD = -6.0, 3.0
NO_CROP_NO_MASKS = dict(virtual_crop_scale=(1.0, 1.0), freq_scale=(1.0, 1.0), time_scale=(1.0, 1.0), freq_mask=0, time_mask=0)


def waves(batch: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 16000, generator=generator) * 3000).to(torch.int16)


def ids(batch: int, start: int) -> list[str]:
    return [f"clip{start + i}" for i in range(batch)]


def clean(wave: torch.Tensor) -> torch.Tensor:
    return normalize(log_mel(wave.float() / 32768.0), MEAN, STD)


def test_the_memory_is_filled_once_per_batch_with_distinct_clips():
    maker = ViewMaker(MEAN, STD, AugmentSettings(mixup_memory=64), seed=0, views=2)
    first, second = waves(4, 0), waves(4, 1)
    maker(first, ids(4, 0))
    memory = maker.mixup.memory
    assert len(memory) == 4  # not 8: two views, one push
    torch.testing.assert_close(torch.stack(memory), clean(first))  # the normalised clips (default domain)
    maker(second, ids(4, 4))
    assert len(maker.mixup.memory) == 8
    stored = torch.stack(maker.mixup.memory).flatten(1)
    assert torch.unique(stored, dim=0).shape[0] == 8


def test_the_first_batch_is_not_mixed_with_itself():
    """Partners come from earlier batches only: with crop and masks off, a first batch's views are its clean clips."""
    maker = ViewMaker(MEAN, STD, AugmentSettings(mixup_partners="independent", **NO_CROP_NO_MASKS), seed=0, views=2)
    batch = waves(3, 0)
    view_a, view_b = maker(batch, ids(3, 0))
    torch.testing.assert_close(view_a, clean(batch))
    torch.testing.assert_close(view_b, clean(batch))


def test_shared_partners_give_both_views_the_same_mix_and_independent_ones_do_not():
    outputs = {}
    for partners in ("shared", "independent"):
        maker = ViewMaker(MEAN, STD, AugmentSettings(mixup_ratio=0.5, mixup_partners=partners, **NO_CROP_NO_MASKS), seed=0, views=2)
        maker(waves(8, 0), ids(8, 0))  # fills the memory
        outputs[partners] = maker(waves(8, 1), ids(8, 8))
    shared_a, shared_b = outputs["shared"]
    assert torch.equal(shared_a, shared_b)
    assert not torch.allclose(shared_a, clean(waves(8, 1)))  # and mixed
    independent_a, independent_b = outputs["independent"]
    assert not torch.allclose(independent_a, independent_b)


def test_the_mixing_domain_decides_where_normalisation_happens():
    """normalized: mix the normalised clips (BYOL-A); log_power: mix the log power, then normalise."""
    first, second = waves(4, 0), waves(4, 1)
    results = {}
    for domain in ("normalized", "log_power"):
        maker = ViewMaker(MEAN, STD, AugmentSettings(mixup_ratio=0.5, mixup_domain=domain, **NO_CROP_NO_MASKS), seed=0, views=1)
        maker(first, ids(4, 0))
        (results[domain],) = maker(second, ids(4, 4))
        stored = torch.stack(maker.mixup.memory[:4])
        expected_memory = clean(first) if domain == "normalized" else log_mel(first.float() / 32768.0)
        torch.testing.assert_close(stored, expected_memory)
    # the same draws (seed, ids) in the two domains: the same partners and weights, different mixes
    assert not torch.allclose(results["normalized"], results["log_power"], atol=1e-3)


def test_bad_augment_settings_name_the_setting():
    with pytest.raises(ValueError, match="mixup_domain"):
        AugmentSettings(mixup_domain="power")
    with pytest.raises(ValueError, match="mixup_partners"):
        AugmentSettings(mixup_partners="same")


def test_ssast_trains_on_clean_spectrograms_and_ssmast_on_two_augmented_views():
    batch = waves(4, 0)
    ssast = objective_views(SSAST(ast_tiny(patch_stride=16), num_masked=4), MEAN, STD, AugmentSettings(), seed=0)
    ssmast = objective_views(SSMAST(mast_tiny(), proj_dim=8, queue_size=8), MEAN, STD, AugmentSettings(), seed=0)
    for start in (0, 4):  # the second batch would be mixed if SSAST's views were augmented
        (view,) = ssast(batch, ids(4, start))
        torch.testing.assert_close(view, clean(batch))
    view_a, view_b = ssmast(batch, ids(4, 0))
    assert not torch.allclose(view_a, clean(batch)) and not torch.allclose(view_a, view_b)
