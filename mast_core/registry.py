"""Every encoder and objective by name: the one list that configs, ``--checkpoint random:ARCH``
and checkpoints use.

A *configuration* name (``mast_small``) builds a model through its factory; the saved config of
an export records the *class* name (``MAST``/``AST``, the ``arch`` attribute) with the exact
constructor arguments, so any configuration round-trips. Objectives (``ssmast``, ``ssast``) are
classes; :func:`check_pairing` says whether one can train a configuration.

Example::

    model = build_encoder("mast_tiny", max_frames=512)
    ARCHITECTURES            # ('mast_tiny', 'mast_small', 'mast_base', 'ast_tiny', 'ast_base')
    check_pairing("ssast", "mast_tiny")      # ValueError: ssast needs an AST arch (ast_tiny, ast_base), ...
"""

from __future__ import annotations

from collections.abc import Callable

from .ast import AST, ast_base, ast_tiny
from .contracts import Encoder, Objective
from .mast import MAST, mast_base, mast_small, mast_tiny
from .ssast import SSAST
from .ssmast import SSMAST

# Configuration name -> (the encoder class it builds, its factory).
_CONFIGURATIONS: dict[str, tuple[type[Encoder], Callable[..., Encoder]]] = {
    "mast_tiny": (MAST, mast_tiny),
    "mast_small": (MAST, mast_small),
    "mast_base": (MAST, mast_base),
    "ast_tiny": (AST, ast_tiny),
    "ast_base": (AST, ast_base),
}
FACTORIES: dict[str, Callable[..., Encoder]] = {name: factory for name, (_, factory) in _CONFIGURATIONS.items()}
ARCHITECTURES = tuple(FACTORIES)
# Encoder classes by the ``arch`` name written into an export's config.json.
CLASSES: dict[str, type[Encoder]] = {MAST.arch: MAST, AST.arch: AST}
OBJECTIVES: dict[str, type[Objective]] = {"ssmast": SSMAST, "ssast": SSAST}


class UnknownArchitecture(ValueError):
    """A name that is neither a registered configuration nor an encoder class."""


def _known(name: str) -> None:
    if name not in FACTORIES:
        raise UnknownArchitecture(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}")


def build_encoder(name: str, **overrides) -> Encoder:
    """The encoder configuration ``name`` (one of :data:`ARCHITECTURES`) with keyword overrides."""
    _known(name)
    return FACTORIES[name](**overrides)


def configuration_class(name: str) -> type[Encoder]:
    """The encoder class that configuration ``name`` builds (``mast_tiny`` -> ``MAST``), without building it."""
    _known(name)
    return _CONFIGURATIONS[name][0]


def encoder_class(arch: str) -> type[Encoder]:
    """The encoder class recorded as ``arch`` in an export (``MAST``, ``AST``)."""
    if arch not in CLASSES:
        raise UnknownArchitecture(f"unknown encoder architecture {arch!r}; known: {sorted(CLASSES)}")
    return CLASSES[arch]


def objective_class(name: str) -> type[Objective]:
    """The objective class registered as ``name`` (one of :data:`OBJECTIVES`)."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; known: {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]


def check_pairing(objective: str, arch: str) -> None:
    """Raise ``ValueError`` unless objective ``objective`` can train configuration ``arch``."""
    needed = objective_class(objective).encoder_type
    if not issubclass(configuration_class(arch), needed):
        fitting = [name for name in ARCHITECTURES if issubclass(configuration_class(name), needed)]
        raise ValueError(f"{objective} needs an {needed.__name__} arch ({', '.join(fitting)}), got {arch}")
