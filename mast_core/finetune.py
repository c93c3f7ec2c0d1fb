"""Fine-tuning pieces: an encoder with a linear head, layer-wise learning-rate decay, a schedule.

The paper's downstream setting (docs/design.md, "Evaluation protocols", b) trains a linear head while the pretrained
encoder is updated too. The head and the encoder get separate learning rates, and with
``layer_decay < 1`` each encoder layer's rate shrinks geometrically with its distance from the
top, so the layers nearest the input (which hold the most general features) move least.

Example::

    model = EncoderClassifier(encoder, num_classes=35, dropout=0.1)
    groups = layer_decay_groups(model, head_lr=1e-3, encoder_lr=1e-4, layer_decay=0.75, weight_decay=1e-4)
    optimizer = torch.optim.AdamW(groups)
    for epoch in range(max_epochs):
        scale_learning_rates(optimizer, lr_factor(epoch, max_epochs, warmup_epochs=1))
        ...
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .contracts import Encoder
from .optim import decays


@dataclass(frozen=True)
class FinetuneSettings:
    """Hyperparameters of one fine-tuning run (the keys a fine-tune search space may set)."""

    lr: float = 1e-3  # the head's learning rate
    encoder_lr: float = 1e-4  # the top encoder layer's learning rate
    layer_decay: float = 1.0  # 1 disables layer-wise decay
    weight_decay: float = 1e-4
    batch_size: int = 32
    max_epochs: int = 20
    warmup_epochs: int = 1
    patience: int = 5  # epochs without a better validation accuracy before stopping
    dropout: float = 0.0
    mixup_ratio: float = 0.0  # log-mixup-exp strength on the training clips (0 disables)
    freq_mask: int = 0  # SpecAugment mask widths in bins / frames (0 disables)
    time_mask: int = 0
    seed: int = 0

    def validate(self) -> None:
        problems = []
        if not (self.lr > 0 and self.encoder_lr >= 0):
            problems.append("lr must be > 0 and encoder_lr >= 0")
        if not 0 < self.layer_decay <= 1:
            problems.append(f"layer_decay must be in (0, 1], got {self.layer_decay}")
        if self.weight_decay < 0 or self.batch_size < 1 or self.max_epochs < 1 or self.patience < 1 or self.warmup_epochs < 0:
            problems.append("weight_decay >= 0, batch_size, max_epochs, patience >= 1 and warmup_epochs >= 0")
        if not 0 <= self.dropout < 1 or not 0 <= self.mixup_ratio < 1:
            problems.append("dropout and mixup_ratio must be in [0, 1)")
        if self.freq_mask < 0 or self.time_mask < 0:
            problems.append("freq_mask and time_mask must be >= 0")
        if problems:
            raise ValueError(f"bad fine-tune settings: {'; '.join(problems)}")


class EncoderClassifier(nn.Module):
    """``encoder`` (an :class:`Encoder`'s clip embedding) -> dropout -> ``nn.Linear`` to ``num_classes``."""

    def __init__(self, encoder: Encoder, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.embed_dim, num_classes)
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, spec: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.dropout(self.encoder(spec, lengths)))


def encoder_layer_ids(encoder: Encoder) -> tuple[dict[str, int], int]:
    """({parameter name: layer id}, number of layers). Id 0 is the patch embedding (and AST's
    tokens and position tables), ids 1..N are the blocks in order, N + 1 the final norm
    (:meth:`Encoder.layer_ids`)."""
    if not isinstance(encoder, Encoder):
        raise TypeError(f"layer-wise decay needs a mast_core Encoder (MAST, AST), not {type(encoder).__name__}")
    return encoder.layer_ids()


def layer_decay_groups(
    model: EncoderClassifier, head_lr: float, encoder_lr: float, layer_decay: float = 1.0, weight_decay: float = 0.0
) -> list[dict]:
    """AdamW parameter groups: the head at ``head_lr``; encoder layer ``i`` of ``N + 1`` at
    ``encoder_lr * layer_decay ** (N + 1 - i)``. Biases, norms (rank <= 1), AST's tokens and
    position tables and MAST's relative-position tables get no weight decay. Each group keeps its base
    rate in ``"base_lr"`` for :func:`scale_learning_rates`."""
    ids, blocks = encoder_layer_ids(model.encoder)
    groups: dict[tuple[str, int, bool], dict] = {}

    def add(key: tuple[str, int, bool], param: nn.Parameter, lr: float) -> None:
        group = groups.setdefault(key, {"params": [], "lr": lr, "base_lr": lr, "weight_decay": 0.0 if key[2] else weight_decay})
        group["params"].append(param)

    for name, param in model.encoder.named_parameters():
        if not param.requires_grad:
            continue
        layer = ids[name]
        no_decay = not decays(name, param)
        add(("encoder", layer, no_decay), param, encoder_lr * layer_decay ** (blocks + 1 - layer))
    for param in model.head.parameters():
        add(("head", 0, param.ndim <= 1), param, head_lr)
    return list(groups.values())


def lr_factor(epoch: int, max_epochs: int, warmup_epochs: int = 0) -> float:
    """Linear warm-up over ``warmup_epochs`` then half-cosine to 0 at ``max_epochs`` (epoch is 0-based)."""
    if epoch < warmup_epochs:
        return (epoch + 1) / (warmup_epochs + 1)
    span = max(max_epochs - warmup_epochs, 1)
    return 0.5 * (1 + math.cos(math.pi * (epoch - warmup_epochs) / span))


def scale_learning_rates(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group.get("base_lr", group["lr"]) * factor
