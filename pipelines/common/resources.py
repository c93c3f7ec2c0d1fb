"""Where the configs that ship with MAST are found: the task registry, the tune spaces, and the
pretraining and demo configs.

In a checkout (or an editable install) they are the repository's ``configs/`` and
``tune_spaces/`` folders; a wheel (``pip install .``) carries the same files as package data
under ``pipelines/_resources/``. ``MAST_CONFIG_ROOT`` points at another folder of the same shape
(``configs/tasks``, ``configs/pretrain``, ``configs/demo``, ``tune_spaces``), for a user's own registry.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[1]  # the installed pipelines package: always a local folder


def config_root() -> Path:
    """The folder holding ``configs/`` and ``tune_spaces/``."""
    if os.environ.get("MAST_CONFIG_ROOT"):
        return Path(os.environ["MAST_CONFIG_ROOT"])
    installed = _PACKAGE / "_resources"
    return installed if installed.is_dir() else _PACKAGE.parent


def config_dir(*parts: str) -> Path:
    """``config_dir("configs", "tasks")``, ``config_dir("tune_spaces", "finetune")``."""
    return config_root().joinpath(*parts)
