"""SSAST: masked spectrogram patch modelling on AST (the baseline objective for the AST rows).

An :class:`~mast_core.ast.AST` with non-overlapping patches (stride == patch size) sees a
spectrogram in which ``num_masked`` patch embeddings per clip were replaced by a learnable mask
token, chosen by :func:`cluster_mask`. From the encoder's outputs at the masked positions two heads
predict the raw input patches:

- contrastive (InfoNCE): each prediction must pick its own patch among the clip's masked patches;
- generative (reconstruction): mean squared error to the patch values.

``loss = nce + recon_weight * mse`` (SSAST: recon_weight 10, 400 masked patches of 16 x 16).

Example::

    model = SSAST(ast_base(patch_stride=16))
    loss, stats = model({"view_a": torch.randn(8, 128, 1024)})   # stats: loss, nce, mse, nce_accuracy, num_masked
    loss.backward()
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mast_core.ast import AST
from mast_core.contracts import Objective

__all__ = ["SSAST", "cluster_mask"]


def cluster_mask(
    num_freq: int,
    num_time: int,
    num_masked: int,
    cluster_factor: int = 3,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """SSAST cluster masking: a boolean ``(num_freq * num_time,)`` mask with exactly ``num_masked`` True.

    Random centre patches are drawn and the square cluster around each is masked, until
    ``num_masked`` patches are masked. Each cluster's side is drawn from
    ``[cluster_factor, 2 * cluster_factor - 1]`` (3 to 5 patches for the default 3, as in SSAST;
    ``cluster_factor=1`` gives plain random masking). Clusters are clipped at the grid edges; when the
    last cluster overshoots, a random subset of its new patches is kept so the count is exact.
    Masking whole regions forces the model to use wider context than the neighbouring patch.
    The mask is row-major over ``(freq, time)``, the encoder's token order.

    Example::

        mask = cluster_mask(8, 64, num_masked=400)      # 128 x 1024 at 16 x 16 patches
        assert int(mask.sum()) == 400
    """
    num_patches = num_freq * num_time
    if num_freq <= 0 or num_time <= 0:
        raise ValueError(f"grid must be non-empty, got {num_freq} x {num_time}")
    if not 0 < num_masked < num_patches:
        raise ValueError(
            f"num_masked must be in [1, {num_patches - 1}] for a {num_freq} x {num_time} grid ({num_patches} patches), got {num_masked}"
        )
    if cluster_factor < 1:
        raise ValueError(f"cluster_factor must be >= 1, got {cluster_factor}")
    device = generator.device if generator is not None else torch.device("cpu")
    mask = torch.zeros(num_freq, num_time, dtype=torch.bool, device=device)
    count = 0
    while count < num_masked:
        centre = int(torch.randint(num_patches, (1,), generator=generator, device=device))
        side = cluster_factor + int(torch.randint(cluster_factor, (1,), generator=generator, device=device))
        freq, time = divmod(centre, num_time)
        # Square around the centre (for even sides, one more patch after it than before).
        f0, t0 = max(freq - (side - 1) // 2, 0), max(time - (side - 1) // 2, 0)
        f1, t1 = min(freq + side // 2 + 1, num_freq), min(time + side // 2 + 1, num_time)
        cluster = torch.zeros_like(mask)
        cluster[f0:f1, t0:t1] = True
        new = (cluster & ~mask).flatten().nonzero().squeeze(1)
        if count + new.numel() > num_masked:
            keep = torch.randperm(new.numel(), generator=generator, device=device)[: num_masked - count]
            new = new[keep]
        mask.view(-1)[new] = True
        count += new.numel()
    return mask.flatten()


def _head(dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, out_dim))


class SSAST(Objective):
    """Masked patch modelling (contrastive + reconstruction) around an AST encoder.

    An :class:`~mast_core.contracts.Objective` on one view: ``model(batch)`` reads ``batch["view_a"]``;
    :meth:`after_step` does nothing; ``model.encoder`` is the AST to export.

    Args:
        encoder: an :class:`AST` with ``patch_stride == patch_size`` (non-overlapping patches, so
            each target is one clean patch of the input).
        num_masked: patches masked per clip (the same count for every clip, a different mask each).
        cluster_factor: see :func:`cluster_mask`.
        recon_weight: weight of the reconstruction MSE in the loss.

    Attributes:
        mask_token: learnable ``(D,)`` embedding that replaces masked patch embeddings (before
            positions are added, so the encoder still knows where each masked patch sits).
        contrastive_head, reconstruction_head: ``Linear(D, D) -> ReLU -> Linear(D, patch_size ** 2)``.

    Example::

        model = SSAST(ast_tiny(patch_stride=16), num_masked=40)
        loss, stats = model.loss(torch.randn(4, 128, 256), generator=torch.Generator().manual_seed(0))
        loss.backward()
        pretrained_encoder = model.encoder          # keep this for downstream tasks
    """

    views = ("view_a",)
    augmented_views = False  # SSAST corrupts by masking patches: it trains on clean spectrograms
    encoder_type = AST
    encoder_settings = {"patch_stride": 16}  # non-overlapping 16 x 16 patches, each target one clean patch

    def __init__(
        self,
        encoder: AST,
        num_masked: int = 400,
        cluster_factor: int = 3,
        recon_weight: float = 10.0,
    ) -> None:
        super().__init__()
        if encoder.patch_stride != encoder.patch_size:
            raise ValueError(
                f"SSAST needs non-overlapping patches (patch_stride == patch_size), got patch_size "
                f"{encoder.patch_size} and patch_stride {encoder.patch_stride}; build the encoder with "
                f"patch_stride={encoder.patch_size}"
            )
        if num_masked < 2:
            raise ValueError(f"InfoNCE needs at least 2 masked patches per clip, got num_masked={num_masked}")
        if cluster_factor < 1:
            raise ValueError(f"cluster_factor must be >= 1, got {cluster_factor}")
        self.encoder = encoder
        self.num_masked = num_masked
        self.cluster_factor = cluster_factor
        self.recon_weight = recon_weight
        dim, patch_values = encoder.embed_dim, encoder.patch_size**2
        self.mask_token = nn.Parameter(torch.zeros(dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.contrastive_head = _head(dim, patch_values)
        self.reconstruction_head = _head(dim, patch_values)

    def masks(self, batch: int, num_freq: int, num_time: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """One :func:`cluster_mask` per clip, stacked to a ``(batch, num_freq * num_time)`` bool tensor."""
        return torch.stack([cluster_mask(num_freq, num_time, self.num_masked, self.cluster_factor, generator) for _ in range(batch)])

    def loss(self, spec: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Masked-patch loss for an equal-length batch ``spec`` of shape ``(B, n_mels, frames)``.

        ``generator`` drives the masks (a CPU generator is cheapest: the masks are built patch by
        patch). Returns the scalar loss and float stats ``loss``, ``nce``, ``mse``, ``nce_accuracy``
        (fraction of masked patches whose contrastive prediction picks its own patch) and ``num_masked``.
        """
        if spec.dim() != 3:
            raise ValueError(f"spec must be (batch, mel bins, frames), got shape {tuple(spec.shape)}")
        batch = spec.shape[0]
        patch = self.encoder.patch_size
        num_freq, num_time = self.encoder.patch_grid(spec.shape[-1])
        if self.num_masked >= num_freq * num_time:
            raise ValueError(
                f"num_masked={self.num_masked} needs more than {self.num_masked} patches, but a clip of "
                f"{spec.shape[-1]} frames has {num_freq} x {num_time} = {num_freq * num_time}"
            )
        mask = self.masks(batch, num_freq, num_time, generator).to(spec.device)

        # Targets in the encoder's token order: unfold walks the same row-major (freq, time) grid.
        targets = F.unfold(spec.unsqueeze(1), kernel_size=patch, stride=patch).transpose(1, 2)
        patch_tokens = self.encoder.forward_tokens(spec, token_mask=mask, mask_token=self.mask_token).tokens
        # Every clip has the same count, so boolean selection reshapes to (B, K, ...).
        masked_tokens = patch_tokens[mask].view(batch, self.num_masked, -1)
        masked_targets = targets[mask].view(batch, self.num_masked, -1)

        predicted = self.contrastive_head(masked_tokens)
        logits = predicted @ masked_targets.transpose(1, 2)  # (B, K, K): prediction i vs target j
        labels = torch.arange(self.num_masked, device=spec.device).repeat(batch)
        nce = F.cross_entropy(logits.reshape(-1, self.num_masked), labels)
        mse = F.mse_loss(self.reconstruction_head(masked_tokens), masked_targets)
        loss = nce + self.recon_weight * mse

        with torch.no_grad():
            accuracy = (logits.argmax(dim=-1).reshape(-1) == labels).float().mean()
        stats = {
            "loss": float(loss.detach()),
            "nce": float(nce.detach()),
            "mse": float(mse.detach()),
            "nce_accuracy": float(accuracy),
            "num_masked": float(self.num_masked),
        }
        return loss, stats
