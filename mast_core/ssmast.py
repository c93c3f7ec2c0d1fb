"""SS-MAST: cross-contrastive self-supervised pretraining with an EMA teacher and a key queue.

Pieces, each usable alone: :class:`KeyQueue` (FIFO of teacher keys, gathered across ranks),
:class:`CrossContrastiveLoss` (InfoNCE of one query against its key and the queue),
:func:`ema_update` and :func:`momentum_schedule` (teacher updates), :class:`ProjectionHead`.
:class:`SSMAST` composes them around any :class:`~mast_core.contracts.Encoder` (MAST or AST) and
follows the :class:`~mast_core.contracts.Objective` contract.

Example::

    model = SSMAST(mast_tiny(), queue_size=4096)
    loss, stats = model({"view_a": view_a, "view_b": view_b})   # two augmented views, (B, mel, frames) each
    loss.backward(); optimizer.step()
    model.after_step(step, total_steps)       # EMA teacher update, momentum_schedule(step, total_steps)
    export = model.encoder                    # the student
"""

from __future__ import annotations

import copy
import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .contracts import Encoder, Objective


class KeyQueue(nn.Module):
    """FIFO queue of L2-normalised keys used as negatives (MoCo).

    Starts filled with random unit vectors, as MoCo does, so the first steps already have a full
    set of (uninformative) negatives. When ``torch.distributed`` is initialised, :meth:`enqueue`
    gathers the keys of every rank first (in rank order), so all ranks hold the same queue.
    """

    def __init__(self, size: int = 65536, dim: int = 256) -> None:
        super().__init__()
        if size < 1 or dim < 1:
            raise ValueError(f"queue size and dim must be positive, got size={size} dim={dim}")
        self.register_buffer("keys", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    @property
    def size(self) -> int:
        return self.keys.shape[0]

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Append ``keys`` (N, dim), overwriting the oldest entries; wraps around the end."""
        keys = gather_from_all_ranks(keys.detach()).to(self.keys.dtype)
        if keys.shape[0] > self.size:  # only the newest ``size`` keys can stay
            keys = keys[-self.size :]
        count = keys.shape[0]
        index = (self.pointer + torch.arange(count, device=self.keys.device)) % self.size
        self.keys[index] = keys
        self.pointer.copy_((self.pointer + count) % self.size)


def gather_from_all_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from every rank along dim 0 (identity without torch.distributed)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    gathered = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, tensor.contiguous())
    return torch.cat(gathered, dim=0)


class CrossContrastiveLoss(nn.Module):
    """InfoNCE of queries against their positive key and a bank of negatives.

    ``loss_i = -log( exp(q_i.k_i/tau) / (exp(q_i.k_i/tau) + sum_j exp(q_i.n_j/tau)) )``,
    averaged over the batch. All inputs are expected L2-normalised.
    """

    def __init__(self, temperature: float = 0.07) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature

    def forward(self, query: torch.Tensor, key: torch.Tensor, negatives: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (mean loss, per-sample accuracy of the positive being the top logit)."""
        positive = (query * key).sum(dim=1, keepdim=True)
        negative = query @ negatives.to(query.dtype).t()
        logits = torch.cat([positive, negative], dim=1).float() / self.temperature
        target = torch.zeros(query.shape[0], dtype=torch.long, device=query.device)
        return F.cross_entropy(logits, target), (logits.argmax(dim=1) == 0).float()


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """theta_teacher <- m * theta_teacher + (1 - m) * theta_student; buffers are copied."""
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")
    teacher_params = list(teacher.parameters())
    student_params = list(student.parameters())
    if len(teacher_params) != len(student_params):
        raise ValueError("teacher and student have different parameter lists")
    torch._foreach_lerp_(teacher_params, [p.detach() for p in student_params], 1.0 - momentum)
    for teacher_buffer, student_buffer in zip(teacher.buffers(), student.buffers()):
        teacher_buffer.copy_(student_buffer)


def momentum_schedule(step: int, total_steps: int, base: float = 0.99, final: float = 1.0) -> float:
    """Cosine schedule of the EMA momentum from ``base`` (step 0) to ``final`` (last step)."""
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    progress = min(max(step / total_steps, 0.0), 1.0)
    return final - (final - base) * (math.cos(math.pi * progress) + 1.0) / 2.0


class ProjectionHead(nn.Module):
    """Clip embedding -> projection (``linear``: one Linear; ``mlp``: Linear-GELU-Linear)."""

    def __init__(self, in_dim: int, out_dim: int = 256, kind: str = "linear", hidden_dim: int = 2048) -> None:
        super().__init__()
        if kind == "linear":
            self.net = nn.Linear(in_dim, out_dim)
        elif kind == "mlp":
            self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, out_dim))
        else:
            raise ValueError(f"projection head kind must be 'linear' or 'mlp', got {kind!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SSMAST(Objective):
    """Student encoder + head trained against an EMA teacher with the cross-contrastive loss.

    ``loss = L(f(x_a), h(x_b)) + L(f(x_b), h(x_a))``: the student's query of each view is
    contrasted with the teacher's key of the other view and the queue of past teacher keys. The
    teacher (a frozen copy, never touched by gradients) sees the full views; patch-drop applies
    to the student only. Both views' teacher keys are enqueued after the loss is computed.
    ``model(batch)`` reads ``view_a`` and ``view_b``; :meth:`after_step` updates the teacher by EMA;
    ``model.encoder`` is the student.
    """

    views = ("view_a", "view_b")

    def __init__(
        self,
        encoder: Encoder,
        *,
        proj_dim: int = 256,
        head: str = "linear",
        queue_size: int = 65536,
        temperature: float = 0.07,
        patch_drop: float = 0.2,
    ) -> None:
        super().__init__()
        if not 0.0 <= patch_drop < 1.0:
            raise ValueError(f"patch_drop must be in [0, 1), got {patch_drop}")
        self.student = encoder
        self.student_head = ProjectionHead(encoder.embed_dim, proj_dim, head)
        self.teacher = copy.deepcopy(encoder)
        self.teacher_head = copy.deepcopy(self.student_head)
        for param in list(self.teacher.parameters()) + list(self.teacher_head.parameters()):
            param.requires_grad_(False)
        self.queue = KeyQueue(queue_size, proj_dim)
        self.criterion = CrossContrastiveLoss(temperature)
        self.patch_drop = patch_drop
        self.teacher.eval()

    @property
    def encoder(self) -> Encoder:
        """The student: the encoder that pretraining produces."""
        return self.student

    def train(self, mode: bool = True) -> SSMAST:
        super().train(mode)
        self.teacher.eval()  # no drop-path noise in the keys
        self.teacher_head.eval()
        return self

    def query(self, spec: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        rate = self.patch_drop if self.training else 0.0
        return F.normalize(self.student_head(self.student(spec, patch_drop=rate, generator=generator)), dim=1)

    @torch.no_grad()
    def key(self, spec: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.teacher_head(self.teacher(spec)), dim=1)

    def loss(
        self, view_a: torch.Tensor, view_b: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Returns the loss and float stats (loss, accuracy, positive_similarity, query_std)."""
        query_a, query_b = self.query(view_a, generator), self.query(view_b, generator)
        key_a, key_b = self.key(view_a), self.key(view_b)
        negatives = self.queue.keys.clone().detach()
        loss_ab, correct_ab = self.criterion(query_a, key_b, negatives)
        loss_ba, correct_ba = self.criterion(query_b, key_a, negatives)
        loss = loss_ab + loss_ba
        if self.training:
            self.queue.enqueue(torch.cat([key_a, key_b]))
        with torch.no_grad():
            stats = {
                "loss": float(loss.detach()),
                "accuracy": float(torch.cat([correct_ab, correct_ba]).mean()),
                "positive_similarity": float(((query_a * key_b).sum(1).mean() + (query_b * key_a).sum(1).mean()) / 2),
                # Collapse check: std over the batch of each normalised projection dim, averaged;
                # 1/sqrt(proj_dim) for well-spread outputs, 0 when every clip maps to one point.
                "query_std": float(query_a.float().std(dim=0).mean()) if query_a.shape[0] > 1 else float("nan"),
            }
        return loss, stats

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        ema_update(self.teacher, self.student, momentum)
        ema_update(self.teacher_head, self.student_head, momentum)

    def after_step(self, step: int, total_steps: int, momentum: float | None = None) -> None:
        """EMA teacher update with ``momentum`` (default: :func:`momentum_schedule` at ``step``)."""
        self.update_teacher(momentum_schedule(step, total_steps) if momentum is None else momentum)
