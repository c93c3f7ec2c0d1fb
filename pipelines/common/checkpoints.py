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
import tempfile
from pathlib import Path

import torch

from mast_core.checkpoint import CheckpointError, register_uri_resolver, resolve_checkpoint
from pipelines.common import storage
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

# an exported folder in a bucket (``s3://bucket/runs/NAME/encoder``) is copied to a local cache once
STORAGE_SCHEMES = ("s3://", "gs://", "gcs://", "abfs://", "abfss://", "az://", "hdfs://", "viewfs://", "file://")


def fetch_storage_folder(uri: str, _tracking_uri: str | None = None) -> Path:
    try:
        return storage.fetch_folder(uri)
    except storage.StorageError as error:  # its message names the URI
        raise CheckpointError(str(error)) from None
    except OSError as error:
        raise CheckpointError(f"{uri}: {error}") from None


register_uri_resolver(STORAGE_SCHEMES, fetch_storage_folder)


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


def resolve_encoder(spec: str, storage_location: str | Path, tracking_uri: str | None = None) -> str:
    """The location (local folder or URI) of the exported encoder that ``--checkpoint`` names.

    Initialisations are exported once under ``<storage>/encoders/`` so every sweep of the same init
    shares its embedding cache, and MLflow checkpoints are copied there once, so a rerun (or
    ``--resume``) sees the same files. ``storage`` may be a bucket: then every node of a cluster
    reads the encoder from there.
    """
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
        folder = storage.join(storage_location, "encoders", name)
        if not storage.is_file(storage.join(folder, "encoder.safetensors")):
            model = init_encoder(arch)
            if kind == "imagenet":
                from mast_core.imagenet import init_from_imagenet

                init_from_imagenet(model, weights)
            with tempfile.TemporaryDirectory() as scratch:
                save_encoder(model, Path(scratch) / name)
                storage.publish(Path(scratch) / name, folder)
        return folder
    source, tracking = checkpoint_source(str(spec), tracking_uri)
    if source.startswith(MLFLOW_SCHEMES):
        folder = storage.join(storage_location, "encoders", "mlflow-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", source).strip("-"))
        if not storage.is_file(storage.join(folder, "encoder.safetensors")):
            print(f"[sweep] downloading {source} from {tracking}", flush=True)
            try:
                downloaded = resolve_checkpoint(source, tracking)
            except CheckpointError as error:
                raise ConfigError(f"--checkpoint {spec}: {error}") from None
            storage.publish(downloaded, folder)
        return folder
    return storage.absolute(spec)


def local_encoder(location: str | Path) -> Path:
    """A local folder holding the exported encoder at ``location`` (a remote one is fetched once)."""
    try:
        return resolve_checkpoint(str(location))
    except CheckpointError as error:
        raise ConfigError(f"--checkpoint {location}: {error}") from None
