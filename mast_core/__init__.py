"""MAST / SS-MAST library: features, augmentations, encoders, objectives, checkpoint I/O.

PyTorch and torchaudio only; the Ray and MLflow recipes live in ``pipelines/``. Remote
checkpoints come through resolvers registered per URI prefix (``import pipelines`` registers
MLflow's ``runs:/``, ``models:/`` and ``mlflow-artifacts:/``).

Example::

    from mast_core import Embedder, load_encoder
    from mast_core import hear                      # HEAR 2021 API

    embedder = Embedder(*load_encoder("exports/mast-s"))   # or "runs:/<run id>/encoder" after `import pipelines`
    clip = embedder.embed([wave]).clip                      # (1, 768)
"""

from .ast import AST, ast_base, ast_tiny
from .checkpoint import CheckpointError, FeatureSettings, load_encoder, resolve_checkpoint, save_encoder
from .contracts import Encoder, Objective, TokenOutput
from .embed import Embedder, Embeddings, read_clip
from .features import compute_stats, log_mel, normalize
from .imagenet import init_from_imagenet
from .mast import MAST, mast_base, mast_small, mast_tiny
from .registry import ARCHITECTURES, OBJECTIVES, build_encoder
from .ssast import SSAST
from .ssmast import SSMAST

__all__ = [
    "AST",
    "ARCHITECTURES",
    "MAST",
    "OBJECTIVES",
    "SSAST",
    "SSMAST",
    "CheckpointError",
    "Embedder",
    "Embeddings",
    "Encoder",
    "FeatureSettings",
    "Objective",
    "TokenOutput",
    "ast_base",
    "ast_tiny",
    "build_encoder",
    "compute_stats",
    "init_from_imagenet",
    "load_encoder",
    "log_mel",
    "mast_base",
    "mast_small",
    "mast_tiny",
    "normalize",
    "read_clip",
    "resolve_checkpoint",
    "save_encoder",
]
