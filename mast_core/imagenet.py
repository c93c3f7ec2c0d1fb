"""ImageNet ("IN weights") initialisation from local timm checkpoint files.

MAST takes timm's ``mvitv2_small`` (or ``mvitv2_base`` for MAST-B), AST takes a DeiT / ViT-B/16.
The file path is always an argument: nothing is downloaded.

Example::

    model = mast_small()
    unmapped = init_from_imagenet(model, "weights/mvitv2_small.pth")
    print(unmapped)        # ['head.fc.bias', 'head.fc.weight']
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from .ast import AST
from .ast import adapt_imagenet_state_dict as adapt_vit_state_dict
from .checkpoint import CheckpointError, read_state_dict
from .layers import resize_patch_kernel
from .mast import MAST

_REL_POS = re.compile(r"^(stages\.\d+\.blocks\.\d+\.attn)\.rel_pos_([hw])$")


def resize_stem(weight: torch.Tensor, size: int) -> torch.Tensor:
    """RGB patch kernel (D, 3, k, k) -> one-channel (D, 1, size, size).

    The colour channels are summed (a grey image has equal R, G, B), then the kernel is resized so
    that it computes the same response on a resized patch (:func:`resize_patch_kernel`).
    MViTv2's 7x7 stem becomes AST's 16x16; the released code kept 7x7 at stride 10 and left gaps
    between patches.
    """
    return resize_patch_kernel(weight.sum(dim=1, keepdim=True), size)


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


def adapt_mvit_state_dict(state: dict[str, torch.Tensor], model: MAST) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Adapt a timm MViTv2 state dict to ``model``; returns (mapped state, unmapped source keys)."""
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
        raise CheckpointError("ImageNet checkpoint does not fit this MAST (width/depth differ): " + "; ".join(mismatched))
    return adapted, sorted(unmapped)


def init_from_imagenet(model: nn.Module, path: str | Path) -> list[str]:
    """Load ImageNet weights from a local timm checkpoint into ``model`` in place.

    Returns the source keys that did not map (classifier heads, distillation tokens). Raises
    :class:`CheckpointError` if a model key is left without a value or a shape does not fit.
    """
    state = read_state_dict(path)
    if isinstance(model, MAST):
        adapted, unmapped = adapt_mvit_state_dict(state, model)
    elif isinstance(model, AST):
        adapted, unmapped = adapt_vit_state_dict(state, model)
    else:
        raise CheckpointError(f"no ImageNet mapping for {type(model).__name__}")
    missing = sorted(set(model.state_dict()) - set(adapted))
    if missing:
        raise CheckpointError(f"{path}: these model keys found no ImageNet weights: {missing}")
    model.load_state_dict(adapted)
    return unmapped
