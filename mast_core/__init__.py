"""MAST / SS-MAST library: features, augmentations, encoders, objectives, checkpoint I/O.

PyTorch and torchaudio only; the Ray and MLflow recipes live in ``pipelines/``.
"""

from .ast import AST, ast_base, ast_tiny
from .checkpoint import FeatureSettings, load_encoder, save_encoder
from .features import compute_stats, log_mel, normalize
from .imagenet import init_from_imagenet
from .mast import MAST, mast_base, mast_small, mast_tiny
from .ssast import SSAST
from .ssmast import SSMAST

__all__ = [
    "AST", "MAST", "SSAST", "SSMAST", "FeatureSettings", "ast_base", "ast_tiny", "compute_stats",
    "init_from_imagenet", "load_encoder", "log_mel", "mast_base", "mast_small", "mast_tiny",
    "normalize", "save_encoder",
]
