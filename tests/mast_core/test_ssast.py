"""Tests for mast_core.ssast: cluster masking and the masked-patch objective."""

from __future__ import annotations

import pytest
import torch

from mast_core.ast import ast_tiny
from mast_core.ssast import SSAST, cluster_mask


def _masked_neighbours(mask: torch.Tensor, num_freq: int, num_time: int) -> float:
    """Mean number of masked 4-neighbours of a masked patch."""
    grid = torch.nn.functional.pad(mask.view(1, 1, num_freq, num_time).float(), (1, 1, 1, 1))
    cross = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    neighbours = torch.nn.functional.conv2d(grid, cross).flatten()
    return float(neighbours[mask].mean())


@pytest.mark.parametrize("num_masked", [1, 37, 400, 511])
def test_cluster_mask_count_is_exact(num_masked: int) -> None:
    generator = torch.Generator().manual_seed(num_masked)
    mask = cluster_mask(8, 64, num_masked, generator=generator)
    assert mask.shape == (512,) and mask.dtype == torch.bool
    assert int(mask.sum()) == num_masked


def test_cluster_mask_is_clustered() -> None:
    generator = torch.Generator().manual_seed(0)
    num_freq, num_time, num_masked = 8, 64, 100
    clustered, random = [], []
    for _ in range(20):
        mask = cluster_mask(num_freq, num_time, num_masked, generator=generator)
        clustered.append(_masked_neighbours(mask, num_freq, num_time))
        random_mask = torch.zeros(num_freq * num_time, dtype=torch.bool)
        random_mask[torch.randperm(num_freq * num_time, generator=generator)[:num_masked]] = True
        random.append(_masked_neighbours(random_mask, num_freq, num_time))
    mean_clustered, mean_random = sum(clustered) / 20, sum(random) / 20
    assert mean_clustered > 2.0 * mean_random, (mean_clustered, mean_random)


def test_cluster_mask_is_reproducible_and_validated() -> None:
    first = cluster_mask(8, 16, 40, generator=torch.Generator().manual_seed(3))
    second = cluster_mask(8, 16, 40, generator=torch.Generator().manual_seed(3))
    assert torch.equal(first, second)
    with pytest.raises(ValueError, match="num_masked"):
        cluster_mask(8, 16, 128)
    with pytest.raises(ValueError, match="num_masked"):
        cluster_mask(8, 16, 0)
    with pytest.raises(ValueError, match="cluster_factor"):
        cluster_mask(8, 16, 10, cluster_factor=0)


def test_wrong_stride_raises() -> None:
    with pytest.raises(ValueError, match="patch_stride"):
        SSAST(ast_tiny())  # AST default stride 10 overlaps 16 x 16 patches


def test_too_many_masked_patches_raises() -> None:
    model = SSAST(ast_tiny(patch_stride=16), num_masked=400)
    with pytest.raises(ValueError, match="num_masked=400"):
        model({"view_a": torch.randn(1, 128, 160)})  # 8 x 10 = 80 patches


def test_heads_and_masks_per_clip() -> None:
    model = SSAST(ast_tiny(patch_stride=16), num_masked=30)
    assert model.contrastive_head[-1].out_features == 256
    assert model.reconstruction_head[-1].out_features == 256
    assert model.mask_token.shape == (192,)
    masks = model.masks(4, 8, 16, torch.Generator().manual_seed(0))
    assert masks.shape == (4, 128)
    assert (masks.sum(dim=1) == 30).all()
    assert len({tuple(row.tolist()) for row in masks}) == 4


def test_loss_backward_reaches_every_part() -> None:
    torch.manual_seed(0)
    model = SSAST(ast_tiny(patch_stride=16), num_masked=40)
    spec = torch.randn(3, 128, 256)  # 8 x 16 = 128 patches
    loss, stats = model({"view_a": spec}, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)
    assert set(stats) >= {"loss", "nce", "mse", "nce_accuracy", "num_masked"}
    assert stats["num_masked"] == 40
    assert 0.0 <= stats["nce_accuracy"] <= 1.0
    assert stats["loss"] == pytest.approx(stats["nce"] + 10.0 * stats["mse"], rel=1e-5)
    loss.backward()
    parts = {
        "encoder stem": model.encoder.patch_embed.proj.weight,
        "encoder last block": model.encoder.blocks[-1].mlp.fc2.weight,
        "mask token": model.mask_token,
        "contrastive head": model.contrastive_head[0].weight,
        "reconstruction head": model.reconstruction_head[-1].weight,
    }
    for name, param in parts.items():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_training_steps_reduce_loss() -> None:
    """A few steps on one batch must learn: the objective is wired so that it can be optimised."""
    torch.manual_seed(0)
    model = SSAST(ast_tiny(patch_stride=16, depth=2), num_masked=20)
    spec = torch.randn(2, 128, 128)  # 8 x 8 = 64 patches
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    history = []
    for _ in range(15):
        # Same masks each step, so the loss trajectory reflects learning only.
        loss, stats = model({"view_a": spec}, generator=torch.Generator().manual_seed(1))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        history.append(stats)
    # Reconstruction of white-noise patches can hardly improve; telling patches apart can.
    assert min(step["nce"] for step in history[-3:]) < 0.5 * history[0]["nce"]
    assert max(step["nce_accuracy"] for step in history[-3:]) > history[0]["nce_accuracy"] + 0.2
