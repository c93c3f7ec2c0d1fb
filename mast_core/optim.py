"""Which parameters get weight decay, for pretraining and fine-tuning alike.

Weight decay shrinks weights towards 0. That regularises the matrices of linear layers and
convolutions, but pulling a LayerNorm's gain, a bias, a learned token or a position table
towards 0 only distorts what it encodes, so (as in MoCo v3, MViTv2, BEiT and timm) those get none.

Example::

    groups = weight_decay_groups(objective, weight_decay=0.05)
    optimizer = torch.optim.AdamW(groups, lr=5e-4)
"""

from __future__ import annotations

from torch import nn


def decays(name: str, param: nn.Parameter) -> bool:
    """Whether the parameter ``name`` gets weight decay: not biases and norms (rank <= 1), AST's
    tokens and absolute position tables, or MAST's relative-position tables."""
    leaf = name.rsplit(".", 1)[-1]
    return param.ndim > 1 and not leaf.endswith(("token", "pos_embed")) and not leaf.startswith("rel_pos_")


def weight_decay_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups of ``module``'s trainable parameters: those that decay at ``weight_decay``
    and the rest at 0 (a group is left out when empty). Each group lists its ``names``."""
    groups = {True: {"params": [], "names": [], "weight_decay": weight_decay}, False: {"params": [], "names": [], "weight_decay": 0.0}}
    for name, param in module.named_parameters():
        if param.requires_grad:
            group = groups[decays(name, param)]
            group["params"].append(param)
            group["names"].append(name)
    return [group for group in groups.values() if group["params"]]
