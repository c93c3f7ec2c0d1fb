"""MAST recipes: ingest, stream, pretrain, evaluate and serve, composed from :mod:`mast_core`
with Ray and MLflow. ``mast`` (or ``python -m pipelines``) is the command line.

Importing the package registers MLflow's checkpoint URIs with :mod:`mast_core.checkpoint`
(see :mod:`pipelines.common.checkpoints`).
"""

from pipelines.common import checkpoints as _checkpoints  # noqa: F401  (registers the MLflow resolver)
