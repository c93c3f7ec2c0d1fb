"""MAST: Multiscale Audio Spectrogram Transformer (MViTv2-style, four stages).

A log-mel image (1, mel, frames) is cut into overlapping 16 x 16 patches at stride 10 (AST's
stem), then four stages of multi-head pooling attention shrink the token grid while widening the
channels (96 -> 192 -> 384 -> 768 for MAST-S). The grid shape ``(freq, time)`` travels with the
tokens from block to block, so any number of frames works without rebuilding the model.

Example::

    model = mast_small()
    spec = torch.randn(2, 128, 512)           # (batch, mel bins, frames), normalised log-mel
    embedding = model(spec)                   # (2, 768) clip embeddings
    out = model.forward_tokens(spec)          # out.tokens (2, 14, 768) on out.grid (2, 7)

Variable lengths: right-pad a batch and pass ``lengths`` (valid frames per clip). Padded patch
columns are zeroed before every pooling convolution, excluded from every attention and from the
final mean, so each clip's embedding equals the one it gets alone.

ImageNet: :func:`adapt_imagenet_state_dict` maps timm's ``mvitv2_small`` / ``mvitv2_base`` weights.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .contracts import Encoder, TokenOutput
from .layers import (
    DropPath,
    Mlp,
    PatchEmbed,
    check_spectrogram,
    column_mask,
    grid_size,
    init_transformer_weights,
    layer_norm,
    resize_stem,
    valid_patch_columns,
)
from .patch_drop import drop_time_columns

Grid = tuple[int, int]  # (freq, time) patches

POOL_KERNEL = 3
POOL_PADDING = 1


def pooled_grid(grid: Grid, stride: int) -> Grid:
    """Grid after a 3x3 pooling of the given stride (padding 1) along both axes."""
    return grid_size(grid[0], POOL_KERNEL, stride, POOL_PADDING), grid_size(grid[1], POOL_KERNEL, stride, POOL_PADDING)


def pooled_valid(valid: torch.Tensor | None, stride: int) -> torch.Tensor | None:
    """Valid time columns after pooling: the same formula as :func:`pooled_grid` per clip."""
    if valid is None or stride == 1:
        return valid
    return torch.div(valid + 2 * POOL_PADDING - POOL_KERNEL, stride, rounding_mode="floor") + 1


def relative_distance_index(
    num_query: int,
    num_key: int,
    stride_q: int,
    stride_kv: int,
    max_distance: int,
    device: torch.device,
    positions: torch.Tensor | None = None,
) -> torch.Tensor:
    """Index into a relative-position table for every (query, key) pair along one axis.

    Query ``i`` sits at input position ``i * stride_q`` and key ``j`` at ``j * stride_kv``; the
    distance is measured in units of the finer of the two grids (as MViTv2 does). Distances
    beyond the table (inputs longer than the model was built for) are clamped to its edge, so
    the table never has to be rebuilt or resized at run time.

    ``positions`` ``(B, num_input)``: the true position of each input column, in input columns,
    when they are not ``0, 1, 2, ...`` (after patch-drop, see :func:`column_positions`). The
    index is then per clip, ``(B, num_query, num_key)``, from the true distances, rounded to the
    nearest table entry where pooling made them fractional.
    """
    finer = min(stride_q, stride_kv)
    if positions is None:
        q_pos = torch.arange(num_query, device=device) * (stride_q // finer)
        k_pos = torch.arange(num_key, device=device) * (stride_kv // finer)
        distance = q_pos[:, None] - k_pos[None, :]
    else:
        q_pos = positions[:, ::stride_q][:, :num_query]
        k_pos = positions[:, ::stride_kv][:, :num_key]
        distance = torch.round((q_pos[:, :, None] - k_pos[:, None, :]) / finer).long()
    return distance.clamp(-max_distance, max_distance) + max_distance


def column_positions(positions: torch.Tensor | None, stride: int, num_columns: int) -> torch.Tensor | None:
    """True positions of the columns after a pooling of ``stride`` (column ``i`` is centred on input
    column ``i * stride``), in units of the pooled grid; None stays None (columns ``0, 1, 2, ...``)."""
    if positions is None or stride == 1:
        return positions
    return positions[:, ::stride][:, :num_columns] / stride


class MultiScalePoolingAttention(nn.Module):
    """Multi-head pooling attention (MHPA) with decomposed relative positions and residual pooling.

    Q, K and V are pooled per head by a depthwise 3x3 convolution (stride ``stride_q`` for Q and
    ``stride_kv`` for K/V, padding 1) followed by LayerNorm over the head dimension. Attention is
    ``softmax(Q K^T / sqrt(d) + B_rel) V + Q``, then a Linear. ``B_rel`` adds learned tables along
    frequency and time separately; each axis has its own table sized from that axis of the grid
    the model was built for.
    """

    def __init__(
        self,
        dim: int,
        dim_out: int,
        num_heads: int,
        input_grid: Grid,
        stride_q: int = 1,
        stride_kv: int = 1,
        qkv_bias: bool = True,
    ) -> None:
        super().__init__()
        if dim_out % num_heads:
            raise ValueError(f"width {dim_out} is not divisible by {num_heads} heads")
        if max(stride_q, stride_kv) % min(stride_q, stride_kv):
            raise ValueError(f"Q stride {stride_q} and K/V stride {stride_kv} must divide one another")
        self.num_heads = num_heads
        self.head_dim = dim_out // num_heads
        self.stride_q = stride_q
        self.stride_kv = stride_kv
        self.qkv = nn.Linear(dim, 3 * dim_out, bias=qkv_bias)
        self.proj = nn.Linear(dim_out, dim_out)

        def depthwise(stride: int) -> nn.Conv2d:
            return nn.Conv2d(self.head_dim, self.head_dim, POOL_KERNEL, stride, POOL_PADDING, groups=self.head_dim, bias=False)

        self.pool_q, self.norm_q = depthwise(stride_q), layer_norm(self.head_dim)
        self.pool_k, self.norm_k = depthwise(stride_kv), layer_norm(self.head_dim)
        self.pool_v, self.norm_v = depthwise(stride_kv), layer_norm(self.head_dim)

        q_grid, k_grid = pooled_grid(input_grid, stride_q), pooled_grid(input_grid, stride_kv)
        self.max_distance = tuple(self._max_distance(q_grid[axis], k_grid[axis]) for axis in range(2))  # (freq, time)
        self.rel_pos_freq = nn.Parameter(torch.zeros(2 * self.max_distance[0] + 1, self.head_dim))
        self.rel_pos_time = nn.Parameter(torch.zeros(2 * self.max_distance[1] + 1, self.head_dim))
        nn.init.trunc_normal_(self.rel_pos_freq, std=0.02)
        nn.init.trunc_normal_(self.rel_pos_time, std=0.02)

    def _max_distance(self, num_query: int, num_key: int) -> int:
        finer = min(self.stride_q, self.stride_kv)
        return max((num_query - 1) * (self.stride_q // finer), (num_key - 1) * (self.stride_kv // finer))

    def _pool(self, x: torch.Tensor, grid: Grid, pool: nn.Conv2d, norm: nn.LayerNorm) -> tuple[torch.Tensor, Grid]:
        batch, heads, _, dim = x.shape
        x = x.transpose(2, 3).reshape(batch * heads, dim, *grid)
        x = pool(x)
        new_grid = (x.shape[2], x.shape[3])
        x = x.reshape(batch, heads, dim, -1).transpose(2, 3)
        return norm(x), new_grid

    def time_index(self, q_grid: Grid, k_grid: Grid, positions: torch.Tensor | None, device: torch.device) -> torch.Tensor:
        """Relative-time table index of every (query, key) column pair: ``(Tq, Tk)``, or per clip
        ``(B, Tq, Tk)`` from the true column ``positions`` after patch-drop."""
        return relative_distance_index(q_grid[1], k_grid[1], self.stride_q, self.stride_kv, self.max_distance[1], device, positions)

    def _relative_bias(self, q: torch.Tensor, q_grid: Grid, k_grid: Grid, positions: torch.Tensor | None) -> torch.Tensor:
        batch, heads, _, dim = q.shape
        index_f = relative_distance_index(q_grid[0], k_grid[0], self.stride_q, self.stride_kv, self.max_distance[0], q.device)
        index_t = self.time_index(q_grid, k_grid, positions, q.device)
        q_image = q.reshape(batch, heads, q_grid[0], q_grid[1], dim)
        bias_f = torch.einsum("bhftd,fkd->bhftk", q_image, self.rel_pos_freq[index_f].to(q.dtype))
        equation = "bhftd,tkd->bhftk" if index_t.dim() == 2 else "bhftd,btkd->bhftk"
        bias_t = torch.einsum(equation, q_image, self.rel_pos_time[index_t].to(q.dtype))
        bias = bias_f[..., :, None] + bias_t[..., None, :]  # (B, H, Fq, Tq, Fk, Tk)
        return bias.reshape(batch, heads, q_grid[0] * q_grid[1], k_grid[0] * k_grid[1])

    def forward(
        self, x: torch.Tensor, grid: Grid, valid: torch.Tensor | None = None, positions: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, Grid, torch.Tensor | None]:
        """x: (B, F*T, dim) tokens on ``grid``; ``valid``: (B,) valid time columns or None;
        ``positions``: (B, T) true time position of each column (after patch-drop) or None."""
        batch, num_tokens, _ = x.shape
        qkv = self.qkv(x)
        if valid is not None:
            # Zero the padded columns so the pooling convolutions see what an unpadded clip sees.
            mask = column_mask(valid, grid[1]).repeat(1, grid[0])  # (B, F*T), row-major (f, t)
            qkv = qkv * mask[:, :, None].to(qkv.dtype)
        qkv = qkv.reshape(batch, num_tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, q_grid = self._pool(q, grid, self.pool_q, self.norm_q)
        k, k_grid = self._pool(k, grid, self.pool_k, self.norm_k)
        v, _ = self._pool(v, grid, self.pool_v, self.norm_v)

        bias = self._relative_bias(q, q_grid, k_grid, positions)
        if valid is not None:
            key_valid = column_mask(pooled_valid(valid, self.stride_kv), k_grid[1]).repeat(1, k_grid[0])
            bias = bias.masked_fill(~key_valid[:, None, None, :], float("-inf"))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        out = out + q  # residual pooling
        out = out.transpose(1, 2).reshape(batch, q_grid[0] * q_grid[1], self.num_heads * self.head_dim)
        return self.proj(out), q_grid, pooled_valid(valid, self.stride_q)


class MultiScaleBlock(nn.Module):
    """Pre-norm MViTv2 block. At a stage transition the width doubles and Q is pooled with stride
    2; the shortcut then goes through a Linear (to the new width) and a 3x3 max-pool of the same
    stride so that its shape matches the attention output."""

    def __init__(
        self,
        dim: int,
        dim_out: int,
        num_heads: int,
        input_grid: Grid,
        stride_q: int = 1,
        stride_kv: int = 1,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
        qkv_bias: bool = True,
    ) -> None:
        super().__init__()
        self.norm1 = layer_norm(dim)
        self.shortcut_proj_attn = nn.Linear(dim, dim_out) if dim != dim_out else None
        self.shortcut_pool_attn = nn.MaxPool2d(POOL_KERNEL, stride_q, POOL_PADDING) if stride_q > 1 else None
        self.attn = MultiScalePoolingAttention(dim, dim_out, num_heads, input_grid, stride_q, stride_kv, qkv_bias)
        self.drop_path = DropPath(drop_path)
        self.norm2 = layer_norm(dim_out)
        self.mlp = Mlp(dim_out, int(dim_out * mlp_ratio))
        self.stride_q = stride_q

    def _shortcut(self, x: torch.Tensor, x_norm: torch.Tensor, grid: Grid, valid: torch.Tensor | None) -> torch.Tensor:
        if self.shortcut_proj_attn is not None:
            x = self.shortcut_proj_attn(x_norm)
        if self.shortcut_pool_attn is None:
            return x
        batch, _, dim = x.shape
        image = x.transpose(1, 2).reshape(batch, dim, *grid)
        if valid is not None:
            # Padded columns must never win the max: an unpadded clip sees -inf padding there.
            image = image.masked_fill(~column_mask(valid, grid[1])[:, None, None, :], float("-inf"))
        image = self.shortcut_pool_attn(image)
        if valid is not None:
            new_valid = pooled_valid(valid, self.stride_q)
            image = image.masked_fill(~column_mask(new_valid, image.shape[3])[:, None, None, :], 0.0)
        return image.flatten(2).transpose(1, 2)

    def forward(
        self, x: torch.Tensor, grid: Grid, valid: torch.Tensor | None = None, positions: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, Grid, torch.Tensor | None, torch.Tensor | None]:
        """Returns the tokens, their grid, valid columns and column positions after this block."""
        x_norm = self.norm1(x)
        shortcut = self._shortcut(x, x_norm, grid, valid)
        attended, grid, valid = self.attn(x_norm, grid, valid, positions)
        x = shortcut + self.drop_path(attended)
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x, grid, valid, column_positions(positions, self.stride_q, grid[1])


class MASTStage(nn.Module):
    """The blocks of one resolution; the first one performs the transition from the previous stage."""

    def __init__(self, blocks: Sequence[MultiScaleBlock]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(
        self, x: torch.Tensor, grid: Grid, valid: torch.Tensor | None, positions: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, Grid, torch.Tensor | None, torch.Tensor | None]:
        for block in self.blocks:
            x, grid, valid, positions = block(x, grid, valid, positions)
        return x, grid, valid, positions


class MAST(Encoder):
    """Four-stage multiscale encoder (an :class:`~mast_core.contracts.Encoder`); see the module docstring.

    Stage ``s`` has width ``embed_dim * 2**s`` and ``num_heads * 2**s`` heads. Q is pooled with
    stride 2 in the first block of stages 2-4; the K/V stride starts at ``kv_stride`` and halves
    at each of those transitions (4, 2, 1, 1 for the default), which keeps K/V small.
    """

    arch = "mast"

    def __init__(
        self,
        *,
        embed_dim: int = 96,
        depths: Sequence[int] = (1, 2, 11, 2),
        num_heads: int = 1,
        mlp_ratio: float = 4.0,
        patch_size: int = 16,
        patch_stride: int = 10,
        num_mel_bins: int = 128,
        max_frames: int = 1024,
        kv_stride: int = 4,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if num_mel_bins < patch_size or max_frames < patch_size:
            raise ValueError(f"num_mel_bins ({num_mel_bins}) and max_frames ({max_frames}) must be >= patch_size ({patch_size})")
        self._config = dict(
            embed_dim=embed_dim,
            depths=list(depths),
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            patch_size=patch_size,
            patch_stride=patch_stride,
            num_mel_bins=num_mel_bins,
            max_frames=max_frames,
            kv_stride=kv_stride,
            qkv_bias=qkv_bias,
            drop_path_rate=drop_path_rate,
        )
        self.patch_size = patch_size
        self.patch_stride = patch_stride
        self.num_mel_bins = num_mel_bins
        self.max_frames = max_frames
        self.patch_embed = PatchEmbed(embed_dim, patch_size, patch_stride)

        grid = (grid_size(num_mel_bins, patch_size, patch_stride), grid_size(max_frames, patch_size, patch_stride))
        drop_rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        dim, heads, stride_kv, block_index = embed_dim, num_heads, kv_stride, 0
        stages = []
        for stage, depth in enumerate(depths):
            blocks = []
            for i in range(depth):
                transition = stage > 0 and i == 0
                stride_q = 2 if transition else 1
                if transition:
                    stride_kv = max(stride_kv // 2, 1)
                    dim_out, heads = dim * 2, heads * 2
                else:
                    dim_out = dim
                blocks.append(MultiScaleBlock(dim, dim_out, heads, grid, stride_q, stride_kv, mlp_ratio, drop_rates[block_index], qkv_bias))
                grid = pooled_grid(grid, stride_q)
                dim, block_index = dim_out, block_index + 1
            stages.append(MASTStage(blocks))
        self.stages = nn.ModuleList(stages)
        self.norm = layer_norm(dim)
        self.embed_dim = dim
        self.apply(init_transformer_weights)

    def config(self) -> dict:
        """Constructor arguments (JSON-serialisable): ``MAST(**model.config())`` rebuilds the model."""
        return dict(self._config)

    @property
    def token_stride(self) -> int:
        """``patch_stride`` times the Q strides of the pooling blocks: 10 * 2 * 2 * 2 = 80 frames (0.8 s)."""
        stride = self.patch_stride
        for block in self.ordered_blocks():
            stride *= block.stride_q
        return stride

    def ordered_blocks(self) -> list[nn.Module]:
        return [block for stage in self.stages for block in stage.blocks]

    def adapt_imagenet(self, state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
        """timm MViTv2 weights for this model: see :func:`adapt_imagenet_state_dict`."""
        return adapt_imagenet_state_dict(state_dict, self)

    def forward_tokens(
        self,
        spec: torch.Tensor,
        lengths: torch.Tensor | None = None,
        *,
        patch_drop: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> TokenOutput:
        """Last-stage tokens after the final LayerNorm, on the last grid (row-major over (freq, time)).

        ``lengths`` of the result holds each clip's valid time columns of the last grid (None
        without input ``lengths``); ``clip`` is the mean of the valid tokens.
        """
        check_spectrogram(spec, self.num_mel_bins, self.patch_size, lengths, patch_drop)
        image = self.patch_embed(spec)
        positions = None  # true time position of each column: 0, 1, 2, ... unless patch-drop removed some
        if patch_drop > 0.0:
            image, kept = drop_time_columns(image, patch_drop, generator, return_columns=True)
            if kept is not None:
                positions = kept.to(image.device, torch.float32)
        grid: Grid = (image.shape[2], image.shape[3])
        valid = valid_patch_columns(lengths.to(spec.device), self.patch_size, self.patch_stride) if lengths is not None else None
        x = image.flatten(2).transpose(1, 2)
        for stage in self.stages:
            x, grid, valid, positions = stage(x, grid, valid, positions)
        tokens = self.norm(x)
        if valid is None:
            return TokenOutput(tokens, grid, tokens.mean(1), None, self.token_stride)
        valid = valid.clamp(max=grid[1])  # patch-drop shortened the grid the lengths were counted on
        weights = column_mask(valid, grid[1]).repeat(1, grid[0]).to(tokens.dtype)  # (B, F*T)
        clip = (tokens * weights[:, :, None]).sum(1) / weights.sum(1, keepdim=True)
        return TokenOutput(tokens, grid, clip, valid, self.token_stride)


def mast_small(**overrides) -> MAST:
    """MAST-S, the paper's model: blocks (1, 2, 11, 2), widths 96-768, heads 1-8."""
    return MAST(**{"embed_dim": 96, "depths": (1, 2, 11, 2), "num_heads": 1, **overrides})


def mast_base(**overrides) -> MAST:
    """MAST-B: blocks (2, 3, 16, 3), same widths as MAST-S."""
    return MAST(**{"embed_dim": 96, "depths": (2, 3, 16, 3), "num_heads": 1, **overrides})


def mast_tiny(**overrides) -> MAST:
    """A ~1 M parameter MAST for CPU tests and demos: blocks (1, 1, 2, 1), widths 32-256."""
    return MAST(**{"embed_dim": 32, "depths": (1, 1, 2, 1), "num_heads": 1, **overrides})


# --------------------------------------------------------------------------------------------------
# ImageNet initialisation

_REL_POS = re.compile(r"^(stages\.\d+\.blocks\.\d+\.attn)\.rel_pos_([hw])$")


def resample_relative_table(table: torch.Tensor, length: int, key_ratio: int) -> torch.Tensor:
    """Map a timm MViTv2 relative-position table onto one of ours, entry by entry by distance.

    timm indexes distance ``d`` at ``q_size - key_ratio + d`` in a table of ``2 q_size - 1``
    rows; ours indexes it at ``(length - 1) / 2 + d``. Distances that the image model never saw
    take its nearest edge value, so each learned entry keeps its meaning (one patch apart is one
    patch apart in both models) instead of being stretched by interpolation.
    """
    q_size = (table.shape[0] + 1) // 2
    source_zero = q_size - key_ratio
    max_distance = (length - 1) // 2
    distance = torch.arange(-max_distance, max_distance + 1)
    source = (source_zero + distance).clamp(0, table.shape[0] - 1)
    return table[source]


def adapt_imagenet_state_dict(state: dict[str, torch.Tensor], model: MAST) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Adapt a timm MViTv2 state dict to ``model``; returns (mapped state, sorted unmapped source keys).

    The RGB stem is summed to one channel and resized to ``patch_size`` (:func:`resize_stem`);
    relative-position tables are re-indexed by distance (:func:`resample_relative_table`); every
    other key with our name is copied. Raises ``ValueError`` naming every key whose shape differs.
    """
    target = model.state_dict()
    adapted: dict[str, torch.Tensor] = {}
    unmapped: list[str] = []
    for name, tensor in state.items():
        match = _REL_POS.match(name)
        if name == "patch_embed.proj.weight":
            adapted[name] = resize_stem(tensor, model.patch_size)
        elif match:
            prefix, axis = match.groups()
            new_name = f"{prefix}.rel_pos_{'freq' if axis == 'h' else 'time'}"
            if new_name not in target:
                unmapped.append(name)
                continue
            attn = model.get_submodule(prefix)
            key_ratio = max(attn.stride_kv // attn.stride_q, 1)
            adapted[new_name] = resample_relative_table(tensor, target[new_name].shape[0], key_ratio)
        elif name in target:
            adapted[name] = tensor
        else:
            unmapped.append(name)
    mismatched = [
        f"{name}: file {tuple(tensor.shape)} vs model {tuple(target[name].shape)}"
        for name, tensor in adapted.items()
        if tensor.shape != target[name].shape
    ]
    if mismatched:
        raise ValueError("ImageNet checkpoint does not fit this MAST (width/depth differ): " + "; ".join(mismatched))
    return adapted, sorted(unmapped)
