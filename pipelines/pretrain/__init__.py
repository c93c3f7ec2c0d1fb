"""SS-MAST / SSAST pretraining on Ray Train: the typed config, the per-worker loop and the driver."""
