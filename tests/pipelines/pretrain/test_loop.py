"""Tests for pieces of the worker loop that need no Ray: the collapse warning."""

from pipelines.pretrain.loop import COLLAPSE_FRACTION, collapse_warning


def test_the_collapse_warning_names_the_spread_and_what_to_change():
    spread = 1 / 16  # proj_dim 256
    assert collapse_warning(0.060, 256) is None  # well spread
    assert collapse_warning(COLLAPSE_FRACTION * spread * 1.01, 256) is None
    warning = collapse_warning(0.024, 256)  # the collapsing chain of issue 12
    assert warning and "query_std 0.0240" in warning and "0.0625" in warning and "data.augment" in warning
    assert collapse_warning(float("nan"), 256) is None  # SSAST reports no query_std
