import pytest
import torch

from mast_core.probe import ProbeSettings, fit_linear_probe


def blobs(n: int, classes: int = 4, dim: int = 16, spread: float = 1.0, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=torch.Generator().manual_seed(99)) * 4
    labels = torch.randint(0, classes, (n,), generator=generator)
    # a large offset and scale: standardisation is what makes the probe train at all
    return (centres[labels] + spread * torch.randn(n, dim, generator=generator)) * 50 + 1000, labels


def test_probe_learns_separable_classes_and_keeps_the_best_epoch():
    train_x, train_y = blobs(400)
    val_x, val_y = blobs(200, seed=1)
    test_x, test_y = blobs(200, seed=2)
    seen = []
    probe = fit_linear_probe(
        train_x,
        train_y,
        val_x,
        val_y,
        ProbeSettings(max_epochs=30, patience=5),
        on_epoch=lambda epoch, metrics: seen.append(metrics["val_accuracy"]),
    )
    assert probe.accuracy(test_x, test_y) > 0.95
    assert probe.val_accuracy == max(seen) == seen[probe.best_epoch]
    assert probe.accuracy(val_x, val_y) == pytest.approx(probe.val_accuracy)  # the kept weights are the best epoch's
    assert len(seen) == len(probe.history) <= 30


def test_early_stopping_and_determinism():
    train_x, train_y = blobs(200, spread=8.0)  # noisy: validation accuracy plateaus
    val_x, val_y = blobs(100, spread=8.0, seed=1)
    settings = ProbeSettings(max_epochs=200, patience=3, lr=1e-2)
    first = fit_linear_probe(train_x, train_y, val_x, val_y, settings)
    second = fit_linear_probe(train_x, train_y, val_x, val_y, settings)
    assert len(first.history) < 200 and len(first.history) == first.best_epoch + 1 + 3
    assert torch.equal(first.linear.weight, second.linear.weight)


def test_constant_dimensions_and_bad_inputs():
    train_x, train_y = blobs(100)
    train_x[:, 0] = 5.0  # a dead embedding dimension
    probe = fit_linear_probe(train_x, train_y, train_x, train_y, ProbeSettings(max_epochs=3))
    assert torch.isfinite(probe.logits(train_x)).all()
    with pytest.raises(ValueError, match="validation"):
        fit_linear_probe(train_x, train_y, train_x[:0], train_y[:0])
    with pytest.raises(ValueError, match="dropout"):
        fit_linear_probe(train_x, train_y, train_x, train_y, ProbeSettings(dropout=1.0))
