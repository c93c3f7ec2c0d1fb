"""Patch-drop that keeps the 2-D patch grid valid.

The released MAST code dropped individual tokens but kept telling the pooling layers the
original grid, so any drop rate crashed or scrambled the time-frequency layout. Here we drop
whole *time columns* of patches: every kept column still has all its frequency patches, so the
grid stays rectangular (F x T_keep) and every pooling stage downstream sees a valid image.
Dropping columns also removes 20 % of the compute at every stage, and it leaves the frequency
structure (harmonics, formants) intact, which audio relies on more than on exact timing.

Example::

    grid = torch.randn(8, 96, 12, 101)          # (batch, channels, freq patches, time patches)
    kept = drop_time_columns(grid, rate=0.2)     # (8, 96, 12, 81): 20 of 101 columns removed
"""

from __future__ import annotations

import torch


def kept_columns(num_columns: int, rate: float) -> int:
    """Number of time columns kept when dropping ``rate`` of ``num_columns`` (at least one)."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"patch-drop rate must be in [0, 1), got {rate}")
    return max(1, num_columns - round(rate * num_columns))


def drop_time_columns(
    grid: torch.Tensor, rate: float, generator: torch.Generator | None = None, *, return_columns: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]:
    """Drop ``round(rate * T)`` random time columns of a ``(B, C, F, T)`` patch grid.

    Each clip gets its own random columns; the kept ones stay in temporal order. With
    ``return_columns`` it returns ``(grid, kept)``, ``kept`` ``(B, T_keep)`` the original index of
    each kept column (None when nothing was dropped): an encoder with relative positions measures
    time distances with them (columns 2 and 5 stay 3 apart once 3 and 4 are gone).
    """
    if grid.dim() != 4:
        raise ValueError(f"expected a (batch, channels, freq, time) grid, got shape {tuple(grid.shape)}")
    batch, channels, freq, time = grid.shape
    keep = kept_columns(time, rate)
    if keep == time:
        return (grid, None) if return_columns else grid
    device = generator.device if generator is not None else grid.device
    scores = torch.rand(batch, time, generator=generator, device=device).to(grid.device)
    columns = scores.topk(keep, dim=1).indices.sort(dim=1).values  # (B, keep)
    kept = grid.gather(3, columns[:, None, None, :].expand(batch, channels, freq, keep))
    return (kept, columns) if return_columns else kept
