"""Every encoder by name: the one list that configs, ``--checkpoint random:ARCH`` and
checkpoints use.

A *configuration* name (``mast_small``) builds a model through its factory; the saved config of
an export records the *class* name (``MAST``/``AST``, the ``arch`` attribute) with the exact
constructor arguments, so any configuration round-trips.

Example::

    model = build_encoder("mast_tiny", max_frames=512)
    ARCHITECTURES            # ('mast_tiny', 'mast_small', 'mast_base', 'ast_tiny', 'ast_base')
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .ast import AST, ast_base, ast_tiny
from .mast import MAST, mast_base, mast_small, mast_tiny

FACTORIES: dict[str, Callable[..., nn.Module]] = {
    "mast_tiny": mast_tiny,
    "mast_small": mast_small,
    "mast_base": mast_base,
    "ast_tiny": ast_tiny,
    "ast_base": ast_base,
}
ARCHITECTURES = tuple(FACTORIES)
# Encoder classes by the ``arch`` name written into an export's config.json.
CLASSES: dict[str, type[nn.Module]] = {MAST.arch: MAST, AST.arch: AST}


class UnknownArchitecture(ValueError):
    """A name that is neither a registered configuration nor an encoder class."""


def build_encoder(name: str, **overrides) -> nn.Module:
    """The encoder configuration ``name`` (one of :data:`ARCHITECTURES`) with keyword overrides."""
    if name not in FACTORIES:
        raise UnknownArchitecture(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}")
    return FACTORIES[name](**overrides)


def encoder_class(arch: str) -> type[nn.Module]:
    """The encoder class recorded as ``arch`` in an export (``MAST``, ``AST``)."""
    if arch not in CLASSES:
        raise UnknownArchitecture(f"unknown encoder architecture {arch!r}; known: {sorted(CLASSES)}")
    return CLASSES[arch]
