import math

import pytest
import torch
import torch.nn.functional as F

from mast_core.mast import mast_tiny
from mast_core.ssmast import (
    SSMAST,
    CrossContrastiveLoss,
    KeyQueue,
    ProjectionHead,
    ema_update,
    momentum_schedule,
)


def reference_loss(query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor, tau: float) -> float:
    """The SS-MAST loss of docs/design.md, one clip at a time, in float64."""
    total = 0.0
    for i in range(query.shape[0]):
        f, h = query[i].double(), key[i].double()
        positive = math.exp(float(f @ h) / tau)
        negatives = sum(math.exp(float(f @ n.double()) / tau) for n in queue)
        total += -math.log(positive / (positive + negatives))
    return total / query.shape[0]


def unit(*shape: int) -> torch.Tensor:
    return F.normalize(torch.randn(*shape), dim=-1)


def test_loss_equals_slow_reference():
    torch.manual_seed(0)
    query, key, queue = unit(6, 16), unit(6, 16), unit(40, 16)
    loss, _ = CrossContrastiveLoss(0.07)(query, key, queue)
    assert float(loss) == pytest.approx(reference_loss(query, key, queue, 0.07), rel=1e-5)


def test_ssmast_loss_is_the_symmetric_sum_of_both_directions():
    torch.manual_seed(0)
    model = SSMAST(mast_tiny(), proj_dim=16, queue_size=32, patch_drop=0.0).eval()
    view_a, view_b = torch.randn(3, 128, 200), torch.randn(3, 128, 200)
    queue_before = model.queue.keys.clone()
    loss, _ = model({"view_a": view_a, "view_b": view_b})
    with torch.no_grad():
        f_a, f_b = model.query(view_a), model.query(view_b)
        h_a, h_b = model.key(view_a), model.key(view_b)
    expected = reference_loss(f_a, h_b, queue_before, 0.07) + reference_loss(f_b, h_a, queue_before, 0.07)
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-4)
    assert torch.equal(model.queue.keys, queue_before)  # eval mode does not enqueue


def test_gradients_reach_the_student_only():
    torch.manual_seed(0)
    model = SSMAST(mast_tiny(), proj_dim=16, queue_size=64, patch_drop=0.2).train()
    loss, stats = model({"view_a": torch.randn(4, 128, 300), "view_b": torch.randn(4, 128, 300)})
    loss.backward()
    student = [*model.student.named_parameters(), *model.student_head.named_parameters(prefix="head")]
    for name, param in student:  # a zero gradient trains nothing, like a missing one
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, f"{name}: all-zero gradient"
    assert all(p.grad is None and not p.requires_grad for p in model.teacher.parameters())
    assert all(p.grad is None for p in model.teacher_head.parameters())
    assert not model.teacher.training  # teacher stays in eval mode under model.train()
    assert set(stats) == {"loss", "accuracy", "positive_similarity", "query_std"}


def test_training_step_enqueues_both_views_keys():
    torch.manual_seed(0)
    model = SSMAST(mast_tiny(), proj_dim=16, queue_size=64, patch_drop=0.0).train()
    view_a, view_b = torch.randn(2, 128, 200), torch.randn(2, 128, 200)
    with torch.no_grad():
        keys = torch.cat([model.key(view_a), model.key(view_b)])
    model({"view_a": view_a, "view_b": view_b})
    torch.testing.assert_close(model.queue.keys[:4], keys)
    assert int(model.queue.pointer) == 4


def test_queue_is_fifo_with_wrap_around():
    queue = KeyQueue(size=5, dim=2)
    batches = [torch.full((2, 2), float(i)) for i in range(1, 4)]  # 6 keys into 5 slots
    for batch in batches:
        queue.enqueue(batch)
    # slots 0-1 got batch 1, 2-3 batch 2, 4 and 0 batch 3 (wrapped): oldest (1) overwritten first
    assert queue.keys[:, 0].tolist() == [3.0, 1.0, 2.0, 2.0, 3.0]
    assert int(queue.pointer) == 1
    queue.enqueue(torch.arange(14, dtype=torch.float).reshape(7, 2))  # more than the queue holds
    assert sorted(queue.keys[:, 0].tolist()) == [4.0, 6.0, 8.0, 10.0, 12.0]


def test_ema_update_and_momentum_schedule():
    teacher, student = ProjectionHead(4, 3), ProjectionHead(4, 3)
    before = [p.clone() for p in teacher.parameters()]
    ema_update(teacher, student, 0.9)
    for old, new, s in zip(before, teacher.parameters(), student.parameters()):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * s)
    ema_update(teacher, student, 0.0)
    for new, s in zip(teacher.parameters(), student.parameters()):
        torch.testing.assert_close(new, s)
    assert momentum_schedule(0, 100) == pytest.approx(0.99)
    assert momentum_schedule(50, 100) == pytest.approx(0.995)
    assert momentum_schedule(100, 100) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        ema_update(teacher, student, 1.5)


def test_update_teacher_moves_towards_student():
    torch.manual_seed(0)
    model = SSMAST(mast_tiny(), proj_dim=16, queue_size=16, patch_drop=0.0)
    with torch.no_grad():
        for p in model.student.parameters():
            p.add_(1.0)
    gap = lambda: sum(float((t - s).detach().abs().sum()) for t, s in zip(model.teacher.parameters(), model.student.parameters()))
    before = gap()
    model.update_teacher(0.5)
    assert gap() == pytest.approx(before / 2, rel=1e-4)


def test_bad_settings_fail_early():
    with pytest.raises(ValueError, match="patch_drop"):
        SSMAST(mast_tiny(), patch_drop=1.2)
    with pytest.raises(ValueError, match="temperature"):
        CrossContrastiveLoss(0.0)
    with pytest.raises(ValueError, match="'linear' or 'mlp'"):
        ProjectionHead(8, 4, kind="deep")


def _enqueue_on_rank(rank: int, world_size: int, init_file: str, results) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        queue = KeyQueue(size=8, dim=2)
        queue.enqueue(torch.full((2, 2), float(rank + 1)))  # rank 0 sends 1s, rank 1 sends 2s
        results[rank] = (queue.keys[:4, 0].tolist(), int(queue.pointer))
    finally:
        dist.destroy_process_group()


def test_keys_are_gathered_across_ranks_before_enqueue(tmp_path):
    import torch.multiprocessing as mp

    manager = mp.get_context("spawn").Manager()
    results = manager.dict()
    mp.spawn(_enqueue_on_rank, args=(2, str(tmp_path / "rendezvous"), results), nprocs=2, join=True)
    # both ranks hold the same queue: rank 0's keys, then rank 1's
    assert results[0] == results[1] == ([1.0, 1.0, 2.0, 2.0], 4)
