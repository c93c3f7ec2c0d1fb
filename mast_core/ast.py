"""AST: the Audio Spectrogram Transformer baseline (ViT-B/16 over overlapping spectrogram patches).

The encoder follows the shared MAST encoder contract: it takes a ``(batch, mel bins, frames)``
log-mel spectrogram of any length and returns a ``(batch, embed_dim)`` clip embedding (the final
cls token). Parameter names follow timm's ``VisionTransformer`` (``blocks.{i}.attn.qkv`` ...), so
:func:`adapt_imagenet_state_dict` is mostly a copy.

Positions (the released code's defect 6 in docs/design.md, fixed): the absolute position table is stored for the patch grid of
``(num_mel_bins, max_frames)``. A shorter input uses the first time columns of the table
(truncation, as AST did), a longer one interpolates the table's time axis linearly to the needed
number of columns. Any length from one patch up works without rebuilding the model.

Example::

    model = ast_base()                               # ViT-B, ~86 M parameters
    spec = torch.randn(4, 128, 1024)                 # (batch, mel bins, frames)
    clip = model(spec)                               # (4, 768)
    short = model(torch.randn(4, 128, 98))           # 1 s clips: same model, fewer columns
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mast_core.contracts import Encoder, TokenOutput
from mast_core.layers import (
    DropPath,
    Mlp,
    PatchEmbed,
    check_spectrogram,
    column_mask,
    grid_size,
    layer_norm,
    resize_patch_kernel,
    valid_patch_columns,
)
from mast_core.patch_drop import drop_time_columns

__all__ = ["AST", "Attention", "Block", "adapt_imagenet_state_dict", "ast_base", "ast_tiny"]


class Attention(nn.Module):
    """Multi-head self-attention on ``scaled_dot_product_attention`` (flash / efficient kernels on GPU).

    ``attn_mask`` is a boolean ``(B, 1, 1, N)`` key mask, True where a token may be attended to.

    Example::

        attn = Attention(dim=192, num_heads=3)
        y = attn(torch.randn(2, 50, 192))            # (2, 50, 192)
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        batch, tokens, dim = x.shape
        # Same (3, heads, head_dim) layout as timm, so ImageNet qkv weights can be copied as is.
        qkv = self.qkv(x).view(batch, tokens, 3, self.num_heads, dim // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(x.transpose(1, 2).reshape(batch, tokens, dim))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``, with drop path.

    Example::

        block = Block(dim=192, num_heads=3)
        y = block(torch.randn(2, 50, 192))           # (2, 50, 192)
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = layer_norm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = layer_norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), attn_mask))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class AST(Encoder):
    """Audio Spectrogram Transformer :class:`~mast_core.contracts.Encoder`: ``(B, n_mels, T)`` -> ``(B, D)``.

    Patches are ``patch_size`` squares taken every ``patch_stride`` bins/frames (AST: 16 at stride
    10, so 128 x 1024 gives a 12 x 101 grid = 1212 patches). A cls token is prepended and its final
    (LayerNorm-ed) state is the clip embedding.

    Positions: ``grid_pos_embed`` is stored for the grid of ``(num_mel_bins, max_frames)``. For a
    shorter input the first time columns of the table are used (truncation, as in AST); for a
    longer input the table's time axis is interpolated linearly to the needed number of columns.
    In a right-padded batch every clip gets the positions it would get alone (see ``lengths``).

    Args:
        embed_dim: token width ``D`` (also the clip-embedding width).
        depth: number of transformer blocks.
        num_heads: attention heads per block.
        mlp_ratio: hidden width of the MLP relative to ``embed_dim``.
        patch_size: side of the square patches (in mel bins and frames).
        patch_stride: step between patches; smaller than ``patch_size`` gives overlapping patches.
        num_mel_bins: mel bins the model expects on axis 1 of ``spec``.
        max_frames: frames the position table is stored for; longer inputs still work.
        drop_path_rate: stochastic-depth rate of the last block (linearly increasing from 0).

    Example::

        model = ast_tiny()
        spec = torch.randn(3, 128, 300)
        lengths = torch.tensor([300, 250, 98])       # clips right-padded to 300 frames
        clip = model(spec, lengths)                  # (3, 192); each row as if the clip were alone
        dropped = model(spec, patch_drop=0.2)        # training-time patch-drop of time columns
    """

    arch = "ast"

    def __init__(
        self,
        *,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        patch_size: int = 16,
        patch_stride: int = 10,
        num_mel_bins: int = 128,
        max_frames: int = 1024,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if embed_dim <= 0 or depth <= 0 or num_heads <= 0:
            raise ValueError(f"embed_dim, depth and num_heads must be positive, got {embed_dim}, {depth}, {num_heads}")
        if embed_dim % num_heads != 0:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        if patch_size <= 0 or patch_stride <= 0:
            raise ValueError(f"patch_size and patch_stride must be positive, got {patch_size}, {patch_stride}")
        if num_mel_bins < patch_size or max_frames < patch_size:
            raise ValueError(f"num_mel_bins ({num_mel_bins}) and max_frames ({max_frames}) must be at least patch_size ({patch_size})")
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
        self.embed_dim = embed_dim
        self.depth = depth
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.patch_size = patch_size
        self.patch_stride = patch_stride
        self.num_mel_bins = num_mel_bins
        self.max_frames = max_frames
        self.drop_path_rate = drop_path_rate

        self.num_freq_patches = grid_size(num_mel_bins, patch_size, patch_stride)
        self.max_time_patches = grid_size(max_frames, patch_size, patch_stride)

        self.patch_embed = PatchEmbed(embed_dim, patch_size, patch_stride)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.cls_pos_embed = nn.Parameter(torch.zeros(1, 1, embed_dim))
        # Stored as an image (1, D, F, T) so truncating or interpolating the time axis is direct.
        self.grid_pos_embed = nn.Parameter(torch.zeros(1, embed_dim, self.num_freq_patches, self.max_time_patches))
        rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio, rate) for rate in rates)
        self.norm = layer_norm(embed_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        for param in (self.cls_token, self.cls_pos_embed, self.grid_pos_embed):
            nn.init.trunc_normal_(param, std=0.02)
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def config(self) -> dict[str, Any]:
        """Constructor kwargs (JSON-serialisable): ``type(self)(**self.config())`` rebuilds the model."""
        return {
            "embed_dim": self.embed_dim,
            "depth": self.depth,
            "num_heads": self.num_heads,
            "mlp_ratio": self.mlp_ratio,
            "patch_size": self.patch_size,
            "patch_stride": self.patch_stride,
            "num_mel_bins": self.num_mel_bins,
            "max_frames": self.max_frames,
            "drop_path_rate": self.drop_path_rate,
        }

    @property
    def token_stride(self) -> int:
        """One output column per patch column: ``patch_stride`` frames (0.1 s at stride 10)."""
        return self.patch_stride

    def ordered_blocks(self) -> list[nn.Module]:
        return list(self.blocks)

    def adapt_imagenet(self, state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
        """timm ViT / DeiT weights for this model: see :func:`adapt_imagenet_state_dict`."""
        return adapt_imagenet_state_dict(state_dict, self)

    def export_frame_range(self) -> tuple[int, int | None]:
        """Up to ``max_frames``: beyond it the position table is interpolated, a branch on the length."""
        return self.patch_size, self.max_frames

    def patch_grid(self, num_frames: int) -> tuple[int, int]:
        """``(freq patches, time patches)`` for an input of ``num_frames`` frames."""
        return self.num_freq_patches, grid_size(num_frames, self.patch_size, self.patch_stride)

    def positions_for(self, num_time: int) -> torch.Tensor:
        """Grid position table ``(1, D, F, num_time)``: truncated if shorter than stored, else interpolated."""
        if num_time <= self.max_time_patches:
            return self.grid_pos_embed[..., :num_time]
        # Linear in time only: the frequency axis always has exactly the stored size.
        return F.interpolate(self.grid_pos_embed, size=(self.num_freq_patches, num_time), mode="bilinear", align_corners=False)

    def _batch_positions(self, num_time: int, valid_columns: torch.Tensor | None) -> torch.Tensor:
        """Position grid for the batch, ``(1 or B, D, F, num_time)``.

        Truncation is consistent across lengths, so one table serves the whole batch while the padded
        length fits the stored table. Beyond it, interpolation depends on the length, so each clip
        gets the table for its own valid columns: a padded clip then sees the same positions as alone.
        """
        if valid_columns is None or num_time <= self.max_time_patches:
            return self.positions_for(num_time)
        tables = {columns: F.pad(self.positions_for(columns), (0, num_time - columns)) for columns in valid_columns.unique().tolist()}
        return torch.cat([tables[columns] for columns in valid_columns.tolist()])

    def forward_tokens(
        self,
        spec: torch.Tensor,
        lengths: torch.Tensor | None = None,
        *,
        patch_drop: float = 0.0,
        generator: torch.Generator | None = None,
        token_mask: torch.Tensor | None = None,
        mask_token: torch.Tensor | None = None,
    ) -> TokenOutput:
        """Run the encoder: the final patch tokens ``(B, F * T, D)`` on the grid ``(F, T)``, the cls token as ``clip``.

        Patch tokens are in row-major ``(freq, time)`` order (the order of ``Conv2d`` outputs and of
        ``F.unfold``). ``T`` is the number of time columns after patch-drop.

        Args:
            spec: ``(B, num_mel_bins, frames)`` log-mel spectrogram.
            lengths: valid frames per clip of a right-padded batch; padded patches are masked out of
                attention. A time column is valid iff its whole window lies inside the valid frames.
            patch_drop: fraction of time columns to drop (training only; equal-length batches only).
            generator: random source for patch-drop.
            token_mask: boolean ``(B, F * T)``, True where the patch embedding is replaced by
                ``mask_token`` before positions are added (SSAST's masked patch modelling).
            mask_token: ``(D,)`` (or anything reshapable to it) embedding used where ``token_mask`` is True.

        Example::

            out = model.forward_tokens(torch.randn(2, 128, 1024))
            # out.tokens: (2, 12 * 101, D), out.grid: (12, 101), out.clip: (2, D)
        """
        check_spectrogram(spec, self.num_mel_bins, self.patch_size, lengths, patch_drop)
        grid = self.patch_embed(spec)  # (B, D, F, T)
        batch, dim, num_freq, num_time = grid.shape

        if token_mask is not None:
            if mask_token is None:
                raise ValueError("token_mask needs a mask_token")
            if token_mask.shape != (batch, num_freq * num_time) or token_mask.dtype != torch.bool:
                raise ValueError(
                    f"token_mask must be a bool tensor of shape ({batch}, {num_freq * num_time}) for a "
                    f"{num_freq} x {num_time} grid, got {token_mask.dtype} {tuple(token_mask.shape)}"
                )
            replace = token_mask.view(batch, 1, num_freq, num_time)
            grid = torch.where(replace, mask_token.reshape(1, dim, 1, 1).to(grid.dtype), grid)

        valid_columns = None
        if lengths is not None:
            valid_columns = valid_patch_columns(lengths.to(spec.device), self.patch_size, self.patch_stride)
        grid = grid + self._batch_positions(num_time, valid_columns)
        if patch_drop:
            grid = drop_time_columns(grid, patch_drop, generator)
            num_time = grid.shape[-1]

        patches = grid.flatten(2).transpose(1, 2)  # (B, F * T, D), row-major over (freq, time)
        cls = (self.cls_token + self.cls_pos_embed).expand(batch, -1, -1)
        tokens = torch.cat([cls, patches], dim=1)

        attn_mask = None
        if valid_columns is not None and bool((valid_columns < num_time).any()):
            patch_valid = column_mask(valid_columns, num_time)[:, None, :].expand(batch, num_freq, num_time).reshape(batch, -1)
            key_valid = torch.cat([patch_valid.new_ones(batch, 1), patch_valid], dim=1)
            attn_mask = key_valid[:, None, None, :]  # broadcast over heads and queries

        for block in self.blocks:
            tokens = block(tokens, attn_mask)
        tokens = self.norm(tokens)
        valid = None if valid_columns is None else valid_columns.clamp(max=num_time)  # after patch-drop
        return TokenOutput(tokens[:, 1:], (num_freq, num_time), tokens[:, 0], valid, self.token_stride)


def ast_base(**overrides: Any) -> AST:
    """AST-B: ViT-B/16 (768 wide, 12 blocks, 12 heads, ~86 M parameters) at stride 10 over 128 mel bins.

    Example::

        model = ast_base(max_frames=512)             # e.g. for 5 s clips
    """
    settings: dict[str, Any] = {"embed_dim": 768, "depth": 12, "num_heads": 12}
    settings.update(overrides)
    return AST(**settings)


def ast_tiny(**overrides: Any) -> AST:
    """A ~2 M-parameter AST (192 wide, 4 blocks, 3 heads) for tests and CPU demos.

    Width and heads match timm's ``deit_tiny_*`` / ``vit_tiny_*`` models, so ImageNet-adaptation
    tests can build such a model with ``depth=4``.

    Example::

        model = ast_tiny()
        clip = model(torch.randn(2, 128, 98))        # (2, 192)
    """
    settings: dict[str, Any] = {"embed_dim": 192, "depth": 4, "num_heads": 3}
    settings.update(overrides)
    return AST(**settings)


# --------------------------------------------------------------------------------------------------
# ImageNet initialisation


_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.(.+)$")
# Block parameters that are copied unchanged (identical names and layout in timm and here).
# A tuple, not a set: a shape mismatch should always be reported on the same (first) key.
_BLOCK_COPIED = tuple(
    f"{module}.{kind}" for module in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2") for kind in ("weight", "bias")
)


def _source_prefix_positions(state_dict: dict[str, torch.Tensor]) -> tuple[int, int]:
    """``(prefix positions in pos_embed, source grid side)`` for a timm ViT state dict."""
    pos = state_dict["pos_embed"]
    prefix_tokens = int("cls_token" in state_dict) + int("dist_token" in state_dict)
    if "reg_token" in state_dict:
        prefix_tokens += state_dict["reg_token"].shape[1]
    # timm's no_embed_class models (e.g. DeiT III) store positions for patches only.
    for prefix in (prefix_tokens, 0):
        side = math.isqrt(pos.shape[1] - prefix)
        if side * side == pos.shape[1] - prefix:
            return prefix, side
    raise ValueError(
        f"pos_embed of shape {tuple(pos.shape)} is not a square patch grid plus {prefix_tokens} prefix "
        "positions; only square ImageNet grids are supported"
    )


def adapt_imagenet_state_dict(state_dict: dict[str, torch.Tensor], model: AST) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map a timm ViT / DeiT ImageNet state dict onto ``model``'s parameter names and shapes.

    - Stem: RGB kernels summed to one input channel (a grey image in all three channels gives the
      same response), resized to ``model.patch_size`` if it differs (:func:`resize_patch_kernel`).
    - Positions: the cls position is kept (for distilled models the mean of the cls and dist
      positions, as AST did); the square image grid is interpolated bilinearly to the model's
      ``(freq, time)`` grid, image rows becoming frequency.
    - Blocks and final norm: copied (timm's layer-scale ``ls1/ls2.gamma``, if present, is folded
      into ``attn.proj`` / ``mlp.fc2``, which computes the same function).

    Widths and depth must match (e.g. :func:`ast_base` for ViT-B / DeiT-B); a mismatch raises
    ``ValueError`` naming the keys and shapes. The head count cannot be checked from weights: build the
    model with the source's heads (12 for ViT-B). Load the file yourself, never download::

        state = torch.load("deit_base_distilled_patch16_384.pth", map_location="cpu", weights_only=True)
        model = ast_base()
        adapted, unmapped = adapt_imagenet_state_dict(state, model)
        model.load_state_dict(adapted, strict=True)  # unmapped: dist_token, head.*, head_dist.*

    Returns:
        ``(adapted, unmapped)``: a state dict holding exactly the model keys that could be mapped,
        and the source keys that were not used, in source order.
    """
    # Official DeiT / AST files wrap the weights in {"model": ...}.
    for wrapper in ("model", "state_dict"):
        if wrapper in state_dict and isinstance(state_dict[wrapper], dict):
            state_dict = state_dict[wrapper]
    target = model.state_dict()
    adapted: dict[str, torch.Tensor] = {}
    used: set[str] = set()

    def put(target_key: str, value: torch.Tensor, *source_keys: str) -> None:
        expected = target[target_key].shape
        if value.shape != expected:
            raise ValueError(
                f"source {' + '.join(source_keys)} maps to {target_key} with shape {tuple(value.shape)}, "
                f"but the model has {tuple(expected)}; build the AST with the source's width/mlp_ratio"
            )
        adapted[target_key] = value.to(target[target_key].dtype)
        used.update(source_keys)

    stem_key = "patch_embed.proj.weight"
    if stem_key in state_dict:
        stem = state_dict[stem_key]
        if stem.shape[0] != model.embed_dim:
            raise ValueError(
                f"width mismatch: source {stem_key} has shape {tuple(stem.shape)} ({stem.shape[0]} wide), "
                f"model patch_embed.proj.weight is {tuple(target[stem_key].shape)} ({model.embed_dim} wide)"
            )
        stem = stem.float().sum(dim=1, keepdim=True)
        put(stem_key, resize_patch_kernel(stem, model.patch_size), stem_key)
    if "patch_embed.proj.bias" in state_dict:
        put("patch_embed.proj.bias", state_dict["patch_embed.proj.bias"], "patch_embed.proj.bias")
    if "cls_token" in state_dict:
        put("cls_token", state_dict["cls_token"], "cls_token")

    if "pos_embed" in state_dict:
        pos = state_dict["pos_embed"].float()
        prefix, side = _source_prefix_positions(state_dict)
        if prefix == 0:
            cls_pos = pos.new_zeros(1, 1, pos.shape[-1])  # the source added no position to cls
        elif "dist_token" in state_dict:
            cls_pos = pos[:, :2].mean(dim=1, keepdim=True)
        else:
            cls_pos = pos[:, :1]
        put("cls_pos_embed", cls_pos, "pos_embed")
        image = pos[:, prefix:].transpose(1, 2).reshape(1, pos.shape[-1], side, side)
        grid = F.interpolate(image, size=(model.num_freq_patches, model.max_time_patches), mode="bilinear", align_corners=False)
        put("grid_pos_embed", grid, "pos_embed")

    source_depth = 1 + max((int(match.group(1)) for key in state_dict if (match := _BLOCK_KEY.match(key))), default=-1)
    if source_depth != model.depth:
        raise ValueError(
            f"depth mismatch: source has {source_depth} blocks (blocks.0 .. blocks.{source_depth - 1}), "
            f"model has {model.depth} (blocks.0 .. blocks.{model.depth - 1}); build the AST with depth={source_depth}"
        )
    for index in range(model.depth):
        prefix_key = f"blocks.{index}."
        for name in _BLOCK_COPIED:
            key = prefix_key + name
            if key in state_dict:
                put(key, state_dict[key], key)
        # timm models without qkv bias are the same as a zero bias.
        qkv_bias = prefix_key + "attn.qkv.bias"
        if qkv_bias not in adapted and prefix_key + "attn.qkv.weight" in state_dict:
            put(qkv_bias, torch.zeros_like(target[qkv_bias]), prefix_key + "attn.qkv.weight")
        for scale_name, layer in (("ls1.gamma", "attn.proj"), ("ls2.gamma", "mlp.fc2")):
            scale_key = prefix_key + scale_name
            if scale_key in state_dict and prefix_key + layer + ".weight" in adapted:
                gamma = state_dict[scale_key].float()
                weight, bias = prefix_key + layer + ".weight", prefix_key + layer + ".bias"
                put(weight, adapted[weight].float() * gamma[:, None], weight, scale_key)
                if bias in adapted:
                    put(bias, adapted[bias].float() * gamma, bias, scale_key)

    for name in ("norm.weight", "norm.bias"):
        if name in state_dict:
            put(name, state_dict[name], name)

    unmapped = [key for key in state_dict if key not in used]
    return adapted, unmapped
