import statistics

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


def test_knn_accuracy_separates_clusters_and_falls_to_chance_on_collapse():
    from mast_core.probe import embedding_spread, knn_accuracy

    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 32, generator=generator) * 5
    labels = torch.arange(4).repeat_interleave(25)
    clustered = centres[labels] + torch.randn(100, 32, generator=generator)
    assert knn_accuracy(clustered, labels, k=10) == 1.0
    collapsed = torch.ones(100, 32) + 1e-4 * torch.randn(100, 32, generator=generator)
    assert knn_accuracy(collapsed, labels, k=10) < 0.5
    assert embedding_spread(collapsed) < 0.01 < 0.5 < embedding_spread(torch.randn(500, 32, generator=generator))
    # unlabelled clips (-1) are left out; a clip never votes for itself
    assert knn_accuracy(clustered, torch.where(torch.arange(100) % 2 == 0, labels, -1), k=5) == 1.0
    assert knn_accuracy(torch.eye(4), torch.tensor([0, 1, 2, 3]), k=1) == 0.0


def test_accuracy_interval_is_the_bootstrap_over_test_clips():
    from mast_core.probe import accuracy_interval

    low, high = accuracy_interval([(0.6, 280)])
    # the bootstrap of a 0/1 vector: about 1.96 * sqrt(p (1 - p) / n) = 5.7 points either side
    assert 0.53 < low < 0.55 and 0.65 < high < 0.67  # on the grid of 1/280 steps
    wide, narrow = accuracy_interval([(0.6, 50)]), accuracy_interval([(0.6, 5000)])
    assert wide[1] - wide[0] > high - low > narrow[1] - narrow[0]
    # folds: the interval of the mean accuracy over folds, narrower than one fold's
    folds = accuracy_interval([(0.6, 280)] * 5)
    assert folds[0] < 0.6 < folds[1] and folds[1] - folds[0] < (high - low) / 2
    assert accuracy_interval([(1.0, 30)]) == (1.0, 1.0)
    # folds each all right or all wrong: the interval is the mean itself, to the bit (the report's
    # error bars are accuracy - low and high - accuracy; float32 draws once put low above it)
    rounds = [(1.0, 3), (1.0, 2), (0.0, 4)]
    assert accuracy_interval(rounds) == (statistics.mean([1.0, 1.0, 0.0]),) * 2
    with pytest.raises(ValueError, match="clips >= 1"):
        accuracy_interval([(0.5, 0)])


def test_probe_optimiser_is_torch_adamw_bit_for_bit_and_does_not_import_dynamo():
    """The probe's AdamW takes the same steps as ``torch.optim.AdamW`` (weight decay, bias
    correction), and, unlike the class, leaves ``torch._dynamo`` unimported (checked in a fresh
    process: this one may have imported it already)."""
    import subprocess
    import sys

    from mast_core.probe import ProbeAdamW

    torch.manual_seed(0)
    ours, theirs = torch.nn.Linear(6, 3), torch.nn.Linear(6, 3)
    theirs.load_state_dict(ours.state_dict())
    mine = ProbeAdamW(ours.parameters(), lr=3e-2, weight_decay=0.1)
    reference = torch.optim.AdamW(theirs.parameters(), lr=3e-2, weight_decay=0.1)
    for step in range(5):
        x, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
        for layer, optimiser in ((ours, mine), (theirs, reference)):
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(layer(x), y).backward()
            optimiser.step()
        assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), theirs.parameters())), step
    assert not torch.equal(ours.weight, torch.nn.Linear(6, 3).weight)
    fresh = (
        "import sys, torch; from mast_core.probe import ProbeSettings, fit_linear_probe; "
        "x = torch.randn(20, 4); y = torch.arange(20) % 2; "
        "fit_linear_probe(x, y, x, y, ProbeSettings(max_epochs=2)); print('torch._dynamo' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", fresh], capture_output=True, text=True, check=True).stdout.strip() == "False"
