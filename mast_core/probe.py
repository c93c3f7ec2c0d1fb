"""Linear evaluation on frozen embeddings: standardise, one Linear layer, early stopping.

Protocol (a) of docs/design.md ("Evaluation protocols"): embeddings of a frozen encoder, standardised with the training
split's mean and std, a single ``nn.Linear`` trained with AdamW and cross-entropy, and the epoch
with the best *validation* accuracy kept. The test split is never passed in here: the caller
evaluates the returned probe on it once, after selection.

Example::

    probe = fit_linear_probe(train_x, train_y, val_x, val_y, ProbeSettings(lr=1e-3))
    test_accuracy = probe.accuracy(test_x, test_y)
"""

from __future__ import annotations

import copy
import statistics
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ProbeSettings:
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    max_epochs: int = 100
    patience: int = 10  # epochs without a better validation accuracy before stopping
    dropout: float = 0.0
    seed: int = 0

    def validate(self) -> None:
        if self.lr <= 0 or self.weight_decay < 0 or self.batch_size < 1 or self.max_epochs < 1 or self.patience < 1:
            raise ValueError(f"bad probe settings {self}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


@dataclass
class LinearProbe:
    """A fitted probe: standardisation statistics plus the Linear layer of the best epoch."""

    mean: torch.Tensor
    std: torch.Tensor
    linear: nn.Linear
    best_epoch: int
    val_accuracy: float
    history: list[dict[str, float]] = field(default_factory=list)

    @torch.no_grad()
    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.linear((embeddings.float() - self.mean) / self.std)

    @torch.no_grad()
    def accuracy(self, embeddings: torch.Tensor, labels: torch.Tensor) -> float:
        if len(labels) == 0:
            raise ValueError("accuracy of an empty set")
        return float((self.logits(embeddings).argmax(1) == labels).float().mean())


class ProbeAdamW:
    """``torch.optim.AdamW`` for a probe's few tensors: the same update (torch's functional
    ``adamw``, single-tensor form, which the class uses on CPU tensors; bit-identical, tested),
    without the optimiser class, whose constructor imports ``torch._dynamo``: 1.6 s of CPU in every
    fresh process, more than a linear probe's whole fit. A sweep's trials are such processes."""

    def __init__(self, params, lr: float, weight_decay: float) -> None:
        self.params = list(params)
        self.lr, self.weight_decay = lr, weight_decay
        self.exp_avgs = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sqs = [torch.zeros_like(p) for p in self.params]
        self.steps = [torch.tensor(0.0) for _ in self.params]

    def zero_grad(self) -> None:
        for param in self.params:
            param.grad = None

    @torch.no_grad()
    def step(self) -> None:
        from torch.optim.adamw import adamw

        with_grad = [i for i, p in enumerate(self.params) if p.grad is not None]
        adamw(
            [self.params[i] for i in with_grad],
            [self.params[i].grad for i in with_grad],
            [self.exp_avgs[i] for i in with_grad],
            [self.exp_avg_sqs[i] for i in with_grad],
            [],
            [self.steps[i] for i in with_grad],
            foreach=False,
            capturable=False,
            differentiable=False,
            fused=None,
            grad_scale=None,
            found_inf=None,
            has_complex=False,
            amsgrad=False,
            beta1=0.9,
            beta2=0.999,
            lr=self.lr,
            weight_decay=self.weight_decay,
            eps=1e-8,
            maximize=False,
        )


def _check(name: str, x: torch.Tensor, y: torch.Tensor) -> None:
    if x.dim() != 2 or y.dim() != 1 or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"{name}: expected embeddings (N, D) and labels (N,) with N > 0, got {tuple(x.shape)} and {tuple(y.shape)}")


def fit_linear_probe(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    val_x: torch.Tensor,
    val_y: torch.Tensor,
    settings: ProbeSettings = ProbeSettings(),
    num_classes: int | None = None,
    on_epoch=None,
) -> LinearProbe:
    """Train on (train_x, train_y), select the epoch on (val_x, val_y).

    ``on_epoch(epoch, metrics)`` is called after every epoch (for Ray Tune reports and early
    trial stopping); ``metrics`` has ``train_loss`` and ``val_accuracy``.
    """
    settings.validate()
    _check("train", train_x, train_y)
    _check("validation", val_x, val_y)
    num_classes = num_classes or int(max(train_y.max(), val_y.max())) + 1
    generator = torch.Generator().manual_seed(settings.seed)
    train_x = train_x.float()
    mean = train_x.mean(0)
    std = train_x.std(0).clamp_min(1e-6)  # constant dimensions must not divide by zero
    standard_train = (train_x - mean) / std
    linear = nn.Linear(train_x.shape[1], num_classes)
    torch.manual_seed(settings.seed)
    linear.reset_parameters()
    optimizer = ProbeAdamW(linear.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    probe = LinearProbe(mean, std, linear, best_epoch=-1, val_accuracy=-1.0)
    best_state, since_best = None, 0
    for epoch in range(settings.max_epochs):
        order = torch.randperm(len(standard_train), generator=generator)
        total, batches = 0.0, 0
        for start in range(0, len(order), settings.batch_size):
            index = order[start : start + settings.batch_size]
            inputs = F.dropout(standard_train[index], settings.dropout, training=True)
            loss = F.cross_entropy(linear(inputs), train_y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, batches = total + float(loss.detach()), batches + 1
        val_accuracy = probe.accuracy(val_x, val_y)
        metrics = {"epoch": epoch, "train_loss": total / batches, "val_accuracy": val_accuracy}
        probe.history.append(metrics)
        if on_epoch is not None:
            on_epoch(epoch, metrics)
        if val_accuracy > probe.val_accuracy:
            probe.val_accuracy, probe.best_epoch, best_state, since_best = val_accuracy, epoch, copy.deepcopy(linear.state_dict()), 0
        else:
            since_best += 1
            if since_best >= settings.patience:
                break
    linear.load_state_dict(best_state)
    return probe


@torch.no_grad()
def knn_accuracy(embeddings: torch.Tensor, labels: torch.Tensor, k: int = 20, temperature: float = 0.07) -> float:
    """Leave-one-out weighted kNN accuracy on one labelled set: each clip is classified by its ``k``
    nearest other clips (cosine similarity), each voting with weight ``exp(similarity / temperature)``
    (the monitor of solo-learn and DINO). Clips labelled ``-1`` are left out. Cheap enough to run
    during pretraining as an online monitor: no training, and it falls to chance when embeddings collapse."""
    keep = labels >= 0
    x, y = F.normalize(embeddings[keep].float(), dim=1), labels[keep].long()
    if len(y) < 2:
        raise ValueError(f"kNN accuracy needs at least 2 labelled clips, got {len(y)}")
    similarity = x @ x.t()
    similarity.fill_diagonal_(float("-inf"))  # leave each clip out of its own vote
    k = min(k, len(y) - 1)
    top, index = similarity.topk(k, dim=1)
    votes = torch.zeros(len(y), int(y.max()) + 1).scatter_add_(1, y[index], (top / temperature).exp())
    return float((votes.argmax(1) == y).float().mean())


@torch.no_grad()
def embedding_spread(embeddings: torch.Tensor) -> float:
    """Mean over dimensions of the std over clips of the L2-normalised embeddings, times sqrt(D):
    about 1 for embeddings spread evenly over the sphere, 0 when every clip maps to one point."""
    if len(embeddings) < 2:
        return float("nan")
    x = F.normalize(embeddings.float(), dim=1)
    return float(x.std(dim=0).mean() * x.shape[1] ** 0.5)


def accuracy_interval(rounds: list[tuple[float, int]], level: float = 0.95, resamples: int = 10000, seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval of a test accuracy over test clips: ``rounds`` holds ``(accuracy, clips)``
    per test round (one, or one per fold); the statistic is the mean accuracy over rounds.

    Resampling a round's 0/1 correctness vector with replacement draws its number of correct clips
    from Binomial(clips, accuracy), so the bootstrap needs only the two numbers (and is exact, not
    an approximation). Returns the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles."""
    if not rounds or any(clips < 1 or not 0.0 <= accuracy <= 1.0 for accuracy, clips in rounds):
        raise ValueError(f"accuracy_interval needs (accuracy in [0, 1], clips >= 1) per round, got {rounds}")
    generator = torch.Generator().manual_seed(seed)
    # in float64, so a degenerate interval (every round all right or all wrong) is the point itself
    draws = torch.stack(
        [
            torch.binomial(torch.full((resamples,), float(clips)), torch.full((resamples,), float(accuracy)), generator=generator).double()
            / clips
            for accuracy, clips in rounds
        ]
    ).mean(0)
    low, high = torch.quantile(draws, torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)).tolist()
    point = statistics.mean(accuracy for accuracy, _ in rounds)  # the sweep's test accuracy, to the bit
    # the point lies inside its interval (float rounding could put it a hair outside)
    return min(low, point), max(high, point)
