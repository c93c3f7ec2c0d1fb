"""ImageNet ("IN weights") initialisation from local timm checkpoint files.

MAST takes timm's ``mvitv2_small`` (or ``mvitv2_base`` for MAST-B), AST takes a DeiT / ViT-B/16.
The file path is always an argument: nothing is downloaded.

Example::

    model = mast_small()
    unmapped = init_from_imagenet(model, "weights/mvitv2_small.pth")
    print(unmapped)        # ['head.fc.bias', 'head.fc.weight']
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from .ast import adapt_imagenet_state_dict as adapt_vit_state_dict
from .checkpoint import CheckpointError, read_state_dict
from .contracts import Encoder
from .layers import resize_stem
from .mast import adapt_imagenet_state_dict as adapt_mvit_state_dict
from .mast import resample_relative_table

__all__ = ["adapt_mvit_state_dict", "adapt_vit_state_dict", "init_from_imagenet", "resample_relative_table", "resize_stem"]


def init_from_imagenet(model: nn.Module, path: str | Path) -> list[str]:
    """Load ImageNet weights from a local timm checkpoint into ``model`` (an :class:`Encoder`) in place.

    The encoder maps the file's keys itself (:meth:`Encoder.adapt_imagenet`). Returns the source
    keys that did not map (classifier heads, distillation tokens). Raises :class:`CheckpointError`
    if the file cannot be read, a shape does not fit or a model key is left without a value.
    """
    state = read_state_dict(path)
    if not isinstance(model, Encoder):
        raise CheckpointError(f"no ImageNet mapping for {type(model).__name__}: expected a mast_core Encoder")
    try:
        adapted, unmapped = model.adapt_imagenet(state)
    except ValueError as error:
        raise CheckpointError(f"{path}: {error}") from error
    missing = sorted(set(model.state_dict()) - set(adapted))
    if missing:
        raise CheckpointError(f"{path}: these model keys found no ImageNet weights: {missing}")
    model.load_state_dict(adapted)
    return unmapped
