"""Downstream evaluation: the task registry, Tune search spaces, the embedding cache, the linear
and fine-tune protocols, sweeps and the results report."""
