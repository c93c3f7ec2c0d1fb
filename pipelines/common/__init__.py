"""Plumbing every recipe shares: the config loader, the Ray runtime, MLflow tracking, the shipped
config folders and ``--checkpoint`` resolution."""
