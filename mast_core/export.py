"""ONNX export of an encoder: normalised log-mel ``(B, mel, T)`` in, clip and frame embeddings out.

The graph is the encoder alone, with a dynamic batch and time axis: feature extraction
(:func:`mast_core.features.log_mel` + :func:`mast_core.features.normalize` with the encoder's
mean/std) and the windowing of long clips (:mod:`mast_core.embed`) stay with the caller. All
clips of one call share the same length (no ``lengths`` input; pad nothing, or batch by length).

Example::

    model, features = load_encoder("exports/mast-s")
    export_onnx(model, "mast-s.onnx", features)

    import onnxruntime
    session = onnxruntime.InferenceSession("mast-s.onnx")
    x = normalize(log_mel(wave[None]), features.mean, features.std).numpy()   # (1, 128, T)
    embedding, frames = session.run(None, {"spec": x})     # (1, 768), (1, T', 768)

Inputs and outputs:

- ``spec``: float32 ``(batch, num_mel_bins, frames)``, frames in the encoder's
  :meth:`~mast_core.contracts.Encoder.export_frame_range`. MAST takes any length from one patch
  (16) up (its relative positions are clamped beyond what it was built for). AST's position
  table is truncated for inputs up to ``max_frames`` and interpolated beyond, a branch ONNX cannot
  hold: its graph is exported for ``16 <= frames <= max_frames`` (1024).
- ``embedding``: ``(batch, D)``, what ``model(spec)`` returns.
- ``frames``: ``(batch, T', D)``, last-stage tokens averaged over frequency (see
  :mod:`mast_core.embed` for their timestamps).

The file's metadata (``metadata_props``) holds the feature settings (``mast.features``: sample
rate, mel bins, mean, std), the architecture and the frame range, so the graph can be used
without the JSON config. Exporting uses ``torch.onnx.export(..., dynamo=True)``, which needs the
``onnxscript`` package (``pip install 'mast[export]'``).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from .checkpoint import FeatureSettings
from .contracts import Encoder

__all__ = ["EncoderGraph", "export_onnx", "onnx_frame_range"]


class EncoderGraph(nn.Module):
    """The exported function: ``spec -> (clip embedding (B, D), frame embeddings (B, T', D))``.

    Example::

        embedding, frames = EncoderGraph(mast_tiny().eval())(torch.randn(2, 128, 300))
    """

    def __init__(self, encoder: Encoder) -> None:
        super().__init__()
        if not isinstance(encoder, Encoder):
            raise TypeError(f"EncoderGraph takes an mast_core Encoder (MAST, AST), got {type(encoder).__name__}")
        self.encoder = encoder

    def forward(self, spec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.encoder.forward_tokens(spec)
        return out.clip, out.frames()


def onnx_frame_range(encoder: Encoder) -> tuple[int, int | None]:
    """``(min, max)`` input frames the exported graph accepts (max None: unbounded)."""
    return encoder.export_frame_range()


def export_onnx(
    encoder: Encoder,
    path: str | Path,
    features: FeatureSettings | None = None,
    *,
    example_frames: int = 300,
    opset_version: int | None = None,
) -> Path:
    """Write ``encoder`` as ONNX to ``path`` with dynamic batch and frame axes; returns the path.

    ``features`` (default: :class:`FeatureSettings` defaults) is stored in the file's metadata.
    Check the result with ``mast export --onnx`` (it compares onnxruntime with PyTorch) or
    ``pipelines.export.check_onnx``.

    Example::

        export_onnx(*load_encoder("exports/mast-s")[:1], "mast-s.onnx")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = EncoderGraph(encoder.eval()).eval()
    low, high = onnx_frame_range(encoder)
    example = torch.zeros(2, encoder.num_mel_bins, max(example_frames, 2 * low))
    if high is None:
        # Dim.DYNAMIC lets torch.export derive the shape guards of MAST's pooled grids itself
        time_axis = torch.export.Dim.DYNAMIC
    else:
        time_axis = torch.export.Dim("frames", min=low, max=high)
        example = example[..., : min(example.shape[-1], high)]
    kwargs = {} if opset_version is None else {"opset_version": opset_version}
    with torch.no_grad():
        program = torch.onnx.export(
            graph,
            (example,),
            dynamo=True,
            input_names=["spec"],
            output_names=["embedding", "frames"],
            dynamic_shapes={"spec": {0: torch.export.Dim.DYNAMIC, 2: time_axis}},
            verbose=False,
            **kwargs,
        )
    program.model.metadata_props.update(
        {
            "mast.arch": encoder.arch,
            "mast.model": json.dumps(encoder.config()),
            "mast.features": json.dumps(asdict(features or FeatureSettings())),
            "mast.min_frames": str(low),
            "mast.max_frames": "" if high is None else str(high),
        }
    )
    program.save(str(path))
    return path
