"""What ``--checkpoint`` names, resolved to a local exported-encoder folder.

Accepted: an exported folder (or a file in it), an MLflow URI (``runs:/<id>/encoder``,
``models:/<name>/<version>``, ``mlflow-artifacts:/...``), a bare 32-hex MLflow run id, and the
initialisations ``random:ARCH`` and ``imagenet:ARCH:TIMM_FILE``. Importing this module (which
``import pipelines`` does) registers the MLflow resolver with :mod:`mast_core.checkpoint`, so
``mast_core.load_encoder("runs:/...")`` works in any program that imported ``pipelines``.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import torch

from mast_core.checkpoint import CheckpointError, register_uri_resolver, resolve_checkpoint, uri_resolver
from pipelines.common.config import ConfigError
from pipelines.common.tracking import default_tracking_uri

MLFLOW_SCHEMES = ("runs:/", "models:/", "mlflow-artifacts:/")
RUN_ID = re.compile(r"[0-9a-f]{32}")


def download_mlflow_artifacts(uri: str, tracking_uri: str | None = None) -> Path:
    """Download the artifacts at an MLflow ``uri`` to a local folder and return it. Without
    ``tracking_uri`` MLflow's own default applies (``MLFLOW_TRACKING_URI`` or its local store)."""
    from mlflow.artifacts import download_artifacts

    where = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "MLflow's default tracking URI"
    try:
        local = download_artifacts(artifact_uri=uri, tracking_uri=tracking_uri)
    except Exception as error:  # MLflow raises MlflowException, OSError or HTTP errors by store
        raise CheckpointError(f"{uri}: cannot be downloaded from MLflow at {where} ({type(error).__name__}: {error})") from None
    return Path(local)


register_uri_resolver(MLFLOW_SCHEMES, download_mlflow_artifacts)


def checkpoint_source(checkpoint: str, tracking_uri: str | None = None) -> tuple[str, str]:
    """``(source, tracking URI)`` for a folder, an MLflow URI or a bare 32-hex MLflow run id.

    Example::

        checkpoint_source("0123456789abcdef0123456789abcdef")   # ("runs:/0123.../encoder", "sqlite:///.../mlflow.db")
    """
    tracking = tracking_uri or default_tracking_uri()
    if RUN_ID.fullmatch(checkpoint) and not Path(checkpoint).exists():
        return f"runs:/{checkpoint}/encoder", tracking
    return checkpoint, tracking


def init_encoder(arch: str, seed: int = 0) -> torch.nn.Module:
    """A seeded random initialisation of a registered architecture (also the demo's baseline)."""
    from mast_core.registry import build_encoder

    torch.manual_seed(seed)
    return build_encoder(arch)


def resolve_encoder(spec: str, storage: str | Path, tracking_uri: str | None = None) -> Path:
    """The exported encoder folder that ``--checkpoint`` names. Initialisations are exported once
    under ``<storage>/encoders/`` so every sweep of the same init shares its embedding cache, and
    MLflow checkpoints are copied there once, so a rerun (or ``--resume``) sees the same files."""
    from mast_core.checkpoint import save_encoder
    from mast_core.registry import ARCHITECTURES

    kind, _, rest = str(spec).partition(":")
    if kind in ("random", "imagenet"):
        arch, _, weights = rest.partition(":")
        if arch not in ARCHITECTURES:
            raise ConfigError(f"--checkpoint {spec}: architecture {arch!r} is not one of {', '.join(ARCHITECTURES)}")
        if kind == "imagenet" and not Path(weights).is_file():
            raise ConfigError(f"--checkpoint {spec}: give imagenet:ARCH:TIMM_FILE with a local timm checkpoint file")
        name = f"random-{arch}-seed0" if kind == "random" else f"imagenet-{arch}-{Path(weights).stem}"
        folder = Path(storage).absolute() / "encoders" / name
        if not (folder / "encoder.safetensors").is_file():
            model = init_encoder(arch)
            if kind == "imagenet":
                from mast_core.imagenet import init_from_imagenet

                init_from_imagenet(model, weights)
            save_encoder(model, folder)
        return folder
    source, tracking = checkpoint_source(str(spec), tracking_uri)
    if uri_resolver(source) is not None:
        folder = Path(storage).absolute() / "encoders" / ("mlflow-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", source).strip("-"))
        if not (folder / "encoder.safetensors").is_file():
            print(f"[sweep] downloading {source} from {tracking}", flush=True)
            try:
                downloaded = resolve_checkpoint(source, tracking)
            except CheckpointError as error:
                raise ConfigError(f"--checkpoint {spec}: {error}") from None
            partial = folder.with_name(folder.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            shutil.copytree(downloaded, partial)
            partial.rename(folder)
        return folder
    return Path(spec)
