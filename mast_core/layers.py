"""Small building blocks shared by the MAST and AST encoders."""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

# timm's ViT and MViTv2 use eps=1e-6; matching it keeps ImageNet weights numerically equivalent.
layer_norm = partial(nn.LayerNorm, eps=1e-6)


class Mlp(nn.Module):
    """Transformer feed-forward: Linear -> GELU -> Linear."""

    def __init__(self, dim: int, hidden_dim: int, out_dim: int | None = None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, out_dim or dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class PatchEmbed(nn.Module):
    """AST stem: Conv2d(1, dim, k x k, stride s) over the (1, mel, frames) image -> (B, dim, F, T)."""

    def __init__(self, dim: int, patch_size: int, patch_stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(1, dim, patch_size, patch_stride)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return self.proj(spec[:, None])


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch of a sample with probability ``rate``."""

    def __init__(self, rate: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"drop-path rate must be in [0, 1), got {rate}")
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rate == 0.0 or not self.training:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


def init_transformer_weights(module: nn.Module) -> None:
    """ViT-style init: truncated normal (std 0.02) for Linear weights, zero bias, unit LayerNorm."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def grid_size(length: int, kernel: int, stride: int, padding: int = 0) -> int:
    """Output length of a convolution or pooling along one axis: floor((L + 2p - k) / s) + 1."""
    return (length + 2 * padding - kernel) // stride + 1


def valid_patch_columns(lengths: torch.Tensor, patch_size: int, patch_stride: int) -> torch.Tensor:
    """Patch columns that lie entirely inside each clip's ``lengths`` valid frames."""
    return torch.div(lengths - patch_size, patch_stride, rounding_mode="floor") + 1


def column_mask(valid: torch.Tensor, num_time: int) -> torch.Tensor:
    """(B, T) boolean mask of each clip's valid time columns."""
    return torch.arange(num_time, device=valid.device)[None, :] < valid[:, None]


def check_spectrogram(
    spec: torch.Tensor, num_mel_bins: int, min_frames: int, lengths: torch.Tensor | None, patch_drop: float = 0.0
) -> None:
    """Raise a clear ValueError when an encoder input is not a (batch, mel, frames) log-mel batch."""
    if spec.dim() != 3:
        raise ValueError(f"spec must be (batch, mel bins, frames), got shape {tuple(spec.shape)}")
    if spec.shape[1] != num_mel_bins:
        raise ValueError(
            f"expected {num_mel_bins} mel bins on axis 1 of spec (batch, mel bins, frames), "
            f"got shape {tuple(spec.shape)}; is the spectrogram transposed?"
        )
    if spec.shape[2] < min_frames:
        raise ValueError(f"input has {spec.shape[2]} frames, fewer than one patch ({min_frames} frames)")
    if patch_drop and lengths is not None:
        raise ValueError("patch_drop is only supported for equal-length batches: pass lengths=None or patch_drop=0.0")
    if lengths is None:
        return
    if lengths.dim() != 1 or lengths.shape[0] != spec.shape[0]:
        raise ValueError(f"lengths must have shape ({spec.shape[0]},) (one per clip), got {tuple(lengths.shape)}")
    if lengths.dtype.is_floating_point or lengths.dtype == torch.bool or lengths.is_complex():
        raise ValueError(f"lengths must be an integer tensor of frame counts, got dtype {lengths.dtype}")
    if lengths.numel() and (int(lengths.min()) < min_frames or int(lengths.max()) > spec.shape[2]):
        raise ValueError(
            f"every length must be in [{min_frames}, {spec.shape[2]}] (one patch up to the padded frame count), got {lengths.tolist()}"
        )


def resize_patch_kernel(weight: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a ``(D, C, k, k)`` patch kernel to ``(D, C, size, size)``, preserving patch responses.

    Plain interpolation of the kernel changes what it computes (a doubled kernel sums four times as
    many pixels). Instead we solve for the kernel ``w'`` with ``<resize(x), w'> = <x, w>`` for every
    patch ``x`` (exactly when enlarging, in least squares when shrinking), the FlexiViT recipe: the
    new kernel on a resized patch gives what the old kernel gave on the original patch.

    Example::

        w32 = resize_patch_kernel(torch.randn(768, 1, 16, 16), 32)   # (768, 1, 32, 32)
    """
    old = weight.shape[-1]
    if weight.shape[-2] != old:
        raise ValueError(f"patch kernel must be square, got shape {tuple(weight.shape)}")
    if old == size:
        return weight
    basis = torch.eye(old * old, dtype=torch.float64, device=weight.device).view(old * old, 1, old, old)
    # Row i: the resized image of the i-th unit patch, i.e. resize(x) = x @ resize_matrix.
    resize_matrix = F.interpolate(basis, size=(size, size), mode="bilinear", align_corners=False)
    resize_matrix = resize_matrix.reshape(old * old, size * size)
    flat = weight.to(torch.float64).reshape(-1, old * old).T  # (old^2, D * C)
    resized = torch.linalg.pinv(resize_matrix) @ flat  # (size^2, D * C)
    return resized.T.reshape(*weight.shape[:-2], size, size).to(weight.dtype)


def resize_stem(weight: torch.Tensor, size: int) -> torch.Tensor:
    """RGB patch kernel (D, 3, k, k) -> one-channel (D, 1, size, size).

    The colour channels are summed (a grey image has equal R, G, B), then the kernel is resized so
    that it computes the same response on a resized patch (:func:`resize_patch_kernel`).
    MViTv2's 7x7 stem becomes AST's 16x16; the released code kept 7x7 at stride 10 and left gaps
    between patches.
    """
    return resize_patch_kernel(weight.sum(dim=1, keepdim=True), size)
