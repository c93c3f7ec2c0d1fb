"""`mast export`: a trained encoder as ONNX (checked against PyTorch) and/or an MLflow pyfunc model.

    mast export runs/pretrain/encoder --onnx mast-s.onnx
    mast export <run id> --mlflow                 # logs "model" into that pretraining run
    mast export runs/pretrain/encoder --mlflow --experiment mast-models --registered-model mast-s
    mlflow models serve -m runs:/<run id>/model --env-manager local -p 5001

CKPT: an exported encoder folder, an MLflow URI or a bare run id (as for `mast embed`).

``--onnx OUT``: the encoder on normalised log-mel ``(batch, mel, frames)`` with dynamic batch and
frame axes (see :mod:`mast_core.export`), then run with onnxruntime at several lengths and
compared with PyTorch; the export fails if any output differs by more than 1e-4 relative.

``--mlflow``: an ``mlflow.pyfunc`` model (models-from-code: nothing pickled) whose input is a
list of mono waveforms (lists of float samples in [-1, 1], any lengths) and whose output is one
embedding per waveform, computed by :class:`mast_core.embed.Embedder`. The parameter
``sample_rate`` (default: the encoder's) resamples other rates. The model carries the encoder
(safetensors + JSON) and a copy of ``mast_core``, with a signature and an input example, so
``mlflow models serve -m runs:/<id>/model --env-manager local`` serves it::

    curl -s localhost:5001/invocations -H 'Content-Type: application/json' \\
         -d '{"inputs": [[0.0, 0.1, ...], [0.2, ...]], "params": {"sample_rate": 16000}}'
    # {"predictions": [[...768 floats...], [...]]}

It is logged into ``--run-id``, else into the run the checkpoint came from (``runs:/`` URI or
run id), else into a new run of ``--experiment``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

import mast_core
from mast_core.checkpoint import load_encoder
from mast_core.export import EncoderGraph, onnx_frame_range
from pipelines.common.tracking import experiment_id_for

ONNX_TOLERANCE = 1e-4

# The pyfunc entry point (MLflow "models from code"): written next to the model at logging time.
# It imports only mlflow, numpy and mast_core (shipped with the model as a code path).
PYFUNC_CODE = '''"""MLflow pyfunc of a MAST / AST encoder, written by `mast export --mlflow`.

Input: a list of mono waveforms, each a list of float samples in [-1, 1] (any lengths).
Params: sample_rate (default: the encoder's rate); other rates are resampled.
Output: one embedding (list of floats) per waveform.
"""
from typing import Any

import mlflow
import numpy as np


class MASTEmbeddingModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        import torch
        from mast_core.embed import Embedder

        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.embedder = Embedder.from_checkpoint(context.artifacts["encoder"], device=device)

    def predict(self, model_input: list[list[float]], params: dict[str, Any] | None = None) -> list[list[float]]:
        rate = int((params or {}).get("sample_rate") or self.embedder.sample_rate)
        waves = [np.asarray(wave, dtype=np.float32) for wave in model_input]
        if not waves:
            return []
        return self.embedder.embed(waves, sample_rate=rate).clip.tolist()


mlflow.models.set_model(MASTEmbeddingModel())
'''


def check_onnx(
    path: str | Path, encoder: torch.nn.Module, frames: tuple[int, ...] | None = None, *, batch: int = 2, seed: int = 0
) -> list[dict]:
    """Run the ONNX file with onnxruntime and PyTorch on random inputs; one row per length.

    Each row holds ``frames`` and the relative error (max abs difference / max abs value) of
    ``embedding`` and ``frames``. Default lengths: one patch, 1 s, 5 s, 10 s and (MAST) 15 s.

    Example::

        rows = check_onnx("mast-s.onnx", model)
        assert max(r["embedding_error"] for r in rows) < 1e-4
    """
    import onnxruntime

    low, high = onnx_frame_range(encoder)
    if frames is None:
        frames = (low, 98, 501, 998) + ((1498,) if high is None else ())
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    graph = EncoderGraph(encoder.eval()).cpu()
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for count in frames:
        spec = torch.randn(batch, encoder.num_mel_bins, count, generator=generator)
        with torch.no_grad():
            expected = [t.numpy() for t in graph(spec)]
        got = session.run(["embedding", "frames"], {"spec": spec.numpy()})
        errors = [float(np.abs(g - e).max() / max(np.abs(e).max(), 1e-12)) for g, e in zip(got, expected)]
        rows.append({"frames": count, "embedding_error": errors[0], "frames_error": errors[1]})
    return rows


def _requirements() -> list[str]:
    names = ("torch", "torchaudio", "safetensors", "soundfile", "numpy", "mlflow")
    return [f"{name}=={importlib.metadata.version(name).split('+')[0]}" for name in names]


@contextlib.contextmanager
def _tracking_uri(uri: str):
    """MLflow's fluent API (``start_run``, ``log_model``) pointed at ``uri`` for a while, then restored.

    ``mlflow.set_tracking_uri`` also sets ``MLFLOW_TRACKING_URI`` in the environment; both are put
    back, so a caller in the same process (a test, a notebook) keeps its own setting.
    """
    import mlflow
    from mlflow.tracking._tracking_service import utils

    saved_uri, saved_env = getattr(utils, "_tracking_uri", None), os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved_uri)
        if saved_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved_env


def log_pyfunc(
    encoder_dir: str | Path,
    tracking_uri: str,
    *,
    run_id: str | None = None,
    experiment: str = "mast-models",
    registered_model: str | None = None,
    example_seconds: float = 0.25,
) -> str:
    """Log the encoder in ``encoder_dir`` as an MLflow pyfunc named ``model``; returns ``runs:/<run id>/model``.

    Example::

        uri = log_pyfunc("runs/pretrain/encoder", "sqlite:///mlflow.db")
        mlflow.pyfunc.load_model(uri).predict([wave.tolist()])     # [[...768 floats...]]
    """
    import mlflow
    from mlflow import MlflowClient

    encoder_dir = Path(encoder_dir)
    _, features = load_encoder(encoder_dir)  # fails early, naming the file, on a bad export
    client = MlflowClient(tracking_uri)
    if run_id is None:
        run_id = client.create_run(
            experiment_id_for(client, experiment, tracking_uri),
            run_name=f"export-{encoder_dir.absolute().name}",
            tags={"mast.export": "pyfunc"},
        ).info.run_id
    samples = max(1, int(example_seconds * features.sample_rate))
    time_axis = np.arange(samples) / features.sample_rate
    example = [(0.1 * np.sin(2 * math.pi * 440.0 * time_axis)).round(4).tolist()]
    with _tracking_uri(tracking_uri), tempfile.TemporaryDirectory() as scratch:
        code = Path(scratch) / "mast_pyfunc.py"
        code.write_text(PYFUNC_CODE)
        with mlflow.start_run(run_id=run_id):
            mlflow.pyfunc.log_model(
                name="model",
                python_model=str(code),
                artifacts={"encoder": str(encoder_dir)},
                code_paths=[str(Path(mast_core.__file__).parent)],
                input_example=(example, {"sample_rate": features.sample_rate}),
                pip_requirements=_requirements(),
                registered_model_name=registered_model,
            )
    return f"runs:/{run_id}/model"
