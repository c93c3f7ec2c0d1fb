"""The two contracts of mast_core: :class:`Encoder` (MAST, AST) and :class:`Objective` (SS-MAST, SSAST).

Callers (embedding, ONNX export, fine-tuning, ImageNet initialisation, the pretraining loop) hold
an ``Encoder`` or an ``Objective`` and never ask which architecture or objective it is: what
differs between MAST and AST (where the clip embedding comes from, how far apart the output
tokens are, which parameters form a layer, how ImageNet weights map) is answered by the encoder,
and what differs between SS-MAST and SSAST (one view or two, an EMA teacher or none, which module
is the encoder to keep) by the objective.

Example::

    encoder = build_encoder("mast_tiny")            # or "ast_tiny": every call below is the same
    out = encoder.forward_tokens(spec, lengths)     # spec (B, mel, frames), lengths (B,) frames
    out.tokens                                      # (B, F * T, D) row-major over (freq, time)
    out.clip                                        # (B, D), the same as encoder(spec, lengths)
    out.frames()                                    # (B, T, D): tokens averaged over frequency
    out.lengths                                     # (B,) valid time columns of each clip
    encoder.timestamps(out.grid[1])                 # (T,) centre of each column, in seconds

    objective = SSMAST(encoder)                     # or SSAST(ast_tiny(patch_stride=16))
    loss, stats = objective({"view_a": a, "view_b": b})     # the batch as the stream gives it
    loss.backward(); optimizer.step()
    objective.after_step(step, total_steps, momentum=0.99)  # SS-MAST: EMA teacher update
    save_encoder(objective.encoder, "exports/mast")         # SS-MAST: the student
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from .features import SAMPLE_RATE, _window_geometry

__all__ = ["Encoder", "Objective", "TokenOutput"]


@dataclass
class TokenOutput:
    """What :meth:`Encoder.forward_tokens` returns: the last tokens on their grid, and the clip embedding.

    Attributes:
        tokens: ``(B, F * T, D)`` final (LayerNorm-ed) tokens on the ``(F, T)`` grid, row-major
            over (freq, time). Patch tokens only: AST's cls token is ``clip``.
        grid: ``(F, T)`` frequency and time extent of the token grid.
        clip: ``(B, D)`` clip embedding, what ``encoder(spec, lengths)`` returns (MAST: mean of the
            valid tokens; AST: the cls token).
        lengths: ``(B,)`` valid time columns per clip of a right-padded batch (the token-level
            ``lengths``); None when the input came without ``lengths`` (every column is valid).
        token_stride: log-mel frames between two consecutive time columns (MAST-S: 80, AST: 10).
            Column ``k`` starts at frame ``k * token_stride``; after patch-drop the kept columns
            are a random subset, so column times are only meaningful without it.
    """

    tokens: torch.Tensor
    grid: tuple[int, int]
    clip: torch.Tensor
    lengths: torch.Tensor | None
    token_stride: int

    def frames(self) -> torch.Tensor:
        """``(B, T, D)``: the tokens averaged over frequency, one vector per time column."""
        batch, _, dim = self.tokens.shape
        return self.tokens.reshape(batch, self.grid[0], self.grid[1], dim).mean(1)

    def column_frames(self) -> torch.Tensor:
        """``(T,)`` first log-mel frame of each time column's patches."""
        return torch.arange(self.grid[1], device=self.tokens.device) * self.token_stride

    def valid_columns(self) -> torch.Tensor:
        """``(B, T)`` boolean, True for the time columns inside each clip."""
        batch, device = self.tokens.shape[0], self.tokens.device
        if self.lengths is None:
            return torch.ones(batch, self.grid[1], dtype=torch.bool, device=device)
        return torch.arange(self.grid[1], device=device)[None, :] < self.lengths.to(device)[:, None]


class Encoder(nn.Module, ABC):
    """A spectrogram encoder: normalised log-mel ``(B, num_mel_bins, frames)`` of any length in,
    a clip embedding ``(B, embed_dim)`` and a grid of tokens out.

    Implementations set ``arch`` (the class name recorded in an export's ``config.json``) and the
    attributes ``embed_dim`` (output width), ``num_mel_bins``, ``patch_size``, ``patch_stride``
    and ``max_frames`` (the length the position tables were built for; longer inputs still work),
    and keep their final LayerNorm as ``norm``.

    Shared arguments of :meth:`forward_tokens` and :meth:`forward`:

    - ``lengths``: valid frames per clip of a right-padded batch; each clip's outputs are then
      those it gets alone (up to float rounding).
    - ``patch_drop``: fraction of patch time columns dropped before the blocks (training only, an
      equal-length batch); 0 turns it off. ``generator`` draws the columns.
    """

    arch: ClassVar[str]
    embed_dim: int
    num_mel_bins: int
    patch_size: int
    patch_stride: int
    max_frames: int
    norm: nn.Module

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-serialisable): ``type(model)(**model.config())`` rebuilds it."""

    @property
    @abstractmethod
    def token_stride(self) -> int:
        """Log-mel frames between two consecutive output time columns."""

    @abstractmethod
    def forward_tokens(
        self,
        spec: torch.Tensor,
        lengths: torch.Tensor | None = None,
        *,
        patch_drop: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> TokenOutput:
        """Final tokens, their grid, token lengths and the clip embedding (see :class:`TokenOutput`)."""

    def forward(
        self,
        spec: torch.Tensor,
        lengths: torch.Tensor | None = None,
        *,
        patch_drop: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Clip embedding ``(B, embed_dim)``: ``forward_tokens(...).clip``."""
        return self.forward_tokens(spec, lengths, patch_drop=patch_drop, generator=generator).clip

    def timestamps(self, num_columns: int, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
        """Centres (seconds) of the first ``num_columns`` output time columns of a clip.

        Column ``k`` covers frames ``[k s, k s + patch_size - 1]`` (``s`` = :attr:`token_stride`);
        its centre in samples is ``k s hop + ((patch_size - 1) hop + window) / 2`` for the 25 ms
        window and 10 ms hop of the log-mel features: ``0.8 k + 0.0875`` s for MAST-S at 16 kHz.
        """
        window, hop, _ = _window_geometry(sample_rate)
        first = ((self.patch_size - 1) * hop + window) / 2
        step = self.token_stride * hop
        return (torch.arange(num_columns, dtype=torch.float64) * step + first).div(sample_rate).float()

    @abstractmethod
    def ordered_blocks(self) -> list[nn.Module]:
        """The transformer blocks from input to output (for layer-wise learning rates)."""

    def layer_ids(self) -> tuple[dict[str, int], int]:
        """``({parameter name: layer id}, number of blocks N)``: id 0 is everything before the first
        block (stem, tokens, position tables), ids 1..N the blocks in order, N + 1 the final norm."""
        blocks = self.ordered_blocks()
        layer_of = {id(param): index + 1 for index, block in enumerate(blocks) for param in block.parameters()}
        layer_of.update({id(param): len(blocks) + 1 for param in self.norm.parameters()})
        return {name: layer_of.get(id(param), 0) for name, param in self.named_parameters()}, len(blocks)

    @abstractmethod
    def adapt_imagenet(self, state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
        """Map a timm ImageNet state dict onto this encoder: ``(adapted state, unmapped source keys)``.

        Raises ``ValueError`` naming the keys and shapes when the source does not fit.
        """

    def export_frame_range(self) -> tuple[int, int | None]:
        """``(min, max)`` input frames one traced graph of this encoder computes correctly (max None:
        unbounded). The minimum is one patch."""
        return self.patch_size, None


class Objective(nn.Module, ABC):
    """A pretraining objective: a training batch in, ``(loss, stats)`` out.

    ``forward(batch)`` reads the keys named in :attr:`views` (the stream's ``view_a``, ``view_b``)
    and returns the scalar loss and float stats (always ``"loss"``). Training goes through
    ``forward`` (so that DistributedDataParallel sees the call); :meth:`loss` takes the views as
    tensors. After each optimiser step call :meth:`after_step`. :attr:`encoder` is the encoder to
    export once pretraining ends.

    Class attributes:
        views: the batch keys the objective reads, in the order :meth:`loss` takes them.
        encoder_type: the encoder class the objective works on (``Encoder``: any).
        encoder_settings: constructor arguments the encoder must be built with for this objective.
        augmented_views: whether the views are augmented (SS-MAST: the two views of the
            augmentation chain) or clean normalised log-mel (SSAST).
    """

    views: ClassVar[tuple[str, ...]]
    augmented_views: ClassVar[bool] = True
    encoder_type: ClassVar[type[Encoder]] = Encoder
    encoder_settings: ClassVar[dict[str, Any]] = {}
    encoder: Encoder

    def forward(self, batch: Mapping[str, torch.Tensor], generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        missing = [key for key in self.views if key not in batch]
        if missing:
            raise KeyError(f"{type(self).__name__} reads batch keys {list(self.views)}; the batch has no {missing}")
        return self.loss(*(batch[key] for key in self.views), generator=generator)

    @abstractmethod
    def loss(self, *views: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss and float stats for the views (``(B, mel, frames)`` each, in :attr:`views` order)."""

    def after_step(self, step: int, total_steps: int, momentum: float | None = None) -> None:
        """Called once after optimiser step ``step`` (0-based) of ``total_steps``; default: nothing."""
