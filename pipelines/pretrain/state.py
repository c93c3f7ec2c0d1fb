"""What a pretraining checkpoint holds and how it is fingerprinted; rank 0's metric buffer; the
data position that makes a resume continue the same sequence of clips."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch

from pipelines.common.runtime import worker_print


class MetricBuffer:
    """Rank 0's metrics on their way to MLflow (exactly once per step, see the module doc)."""

    def __init__(self, tracking_uri: str, run_id: str) -> None:
        self.tracking_uri, self.run_id = tracking_uri, run_id
        self.pending: list[tuple[int, dict[str, float]]] = []
        self.logged_through = self._last_logged_step()

    def _last_logged_step(self) -> int:
        try:
            from mlflow import MlflowClient

            history = MlflowClient(self.tracking_uri).get_metric_history(self.run_id, "loss")
            return max((m.step for m in history), default=0)
        except Exception as error:
            worker_print(f"[pretrain] warning: MLflow not reachable ({type(error).__name__}); buffering metrics", error=True)
            return 0

    def add(self, step: int, metrics: dict[str, float]) -> None:
        if step <= self.logged_through:
            return
        if self.pending and self.pending[-1][0] == step:
            self.pending[-1][1].update(metrics)
        else:
            self.pending.append((step, dict(metrics)))

    def flush(self) -> bool:
        if not self.pending:
            return True
        try:
            from mlflow import MlflowClient
            from mlflow.entities import Metric

            client = MlflowClient(self.tracking_uri)
            stamp = int(time.time() * 1000)
            entries = [Metric(key, float(value), stamp, step) for step, metrics in self.pending for key, value in metrics.items()]
            for start in range(0, len(entries), 900):  # MLflow accepts 1000 metrics per batch
                client.log_batch(self.run_id, metrics=entries[start : start + 900], synchronous=True)
        except Exception as error:  # an unreachable server must not end training
            worker_print(
                f"[pretrain] warning: MLflow not reachable ({type(error).__name__}: {error}); "
                f"{len(self.pending)} steps kept for the next flush",
                error=True,
            )
            return False
        self.logged_through = self.pending[-1][0]
        self.pending.clear()
        return True


def digest(value) -> str:
    """A 16-hex fingerprint of tensors, dicts, lists and plain values (bit-exact for tensors)."""
    hasher = hashlib.sha256()

    def feed(value) -> None:
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().contiguous()
            hasher.update(f"{value.dtype}{tuple(value.shape)}".encode())
            hasher.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(value, dict):
            for key in sorted(value, key=str):
                hasher.update(repr(key).encode())
                feed(value[key])
        elif isinstance(value, (list, tuple)):
            hasher.update(f"[{len(value)}]".encode())
            for item in value:
                feed(item)
        else:
            hasher.update(repr(value).encode())

    feed(value)
    return hasher.hexdigest()[:16]


def state_digest(model: torch.nn.Module, optimizer, scheduler, progress: dict) -> str:
    """A fingerprint of everything a resume must restore: the weights and buffers (for SS-MAST the
    teacher, the heads and the key queue with its pointer), the optimiser's moments, the schedule's
    position, torch's RNG and the data position. Computed when a checkpoint is written and again
    after it is loaded, so a restore that misses any of them shows as two different digests."""
    return digest({**training_state(model, optimizer, scheduler), "progress": {k: v for k, v in progress.items() if k != "state_hash"}})


def broadcast_buffers(model: torch.nn.Module) -> None:
    """Rank 0's buffers (SS-MAST's key queue and its pointer) on every rank. DDP broadcasts the
    parameters when it wraps the model, but with ``broadcast_buffers=False`` not the buffers."""
    for buffer in model.buffers():
        torch.distributed.broadcast(buffer, src=0)


def training_state(model: torch.nn.Module, optimizer, scheduler) -> dict:
    """What ``training_state.pt`` holds, and what :func:`state_digest` fingerprints."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(),
    }


def save_training_state(directory: Path, model, optimizer, scheduler, state: dict) -> None:
    torch.save(training_state(model, optimizer, scheduler), directory / "training_state.pt")
    (directory / "progress.json").write_text(json.dumps(state))


def load_training_state(directory: Path, model, optimizer, scheduler, device) -> dict:
    # weights_only: a checkpoint folder is data, never code
    saved = torch.load(directory / "training_state.pt", map_location=device, weights_only=True)
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["torch_rng"].cpu())
    return json.loads((directory / "progress.json").read_text())


# --- the data position: where each rank is in its stream, so a resume continues the same clips ---


def step_seed(seed: int, rank: int, step: int, micro: int) -> int:
    """torch's seed for one micro-batch of one rank (patch-drop columns, SSAST's masks): a function of
    the run's seed and the position only, so a resumed run draws what the uninterrupted one drew."""
    digest = hashlib.sha1(f"{seed}:{rank}:{step}:{micro}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def gather_positions(position: tuple[int, int], world: int, ddp: bool) -> list[list[int]]:
    """Every rank's ``(epoch, batches into it)``, in rank order (a collective: call it on every rank)."""
    if not ddp:
        return [list(position)]
    positions: list = [None] * world
    torch.distributed.all_gather_object(positions, list(position))
    return positions


def position_of(progress: dict, rank: int, world: int) -> tuple[int, int, str | None]:
    """Where ``rank`` continues after loading ``progress``: its saved ``(epoch, batches into it)``, and
    a warning instead when the checkpoint is from a group of another size (its epoch starts over)."""
    positions = progress.get("positions")
    if positions and len(positions) == world:
        epoch, batches = positions[rank]
        return int(epoch), int(batches), None
    epoch = int(progress.get("epoch", 0))
    saved = len(positions) if positions else "an unknown number of"
    return (
        epoch,
        0,
        (
            f"the checkpoint is from {saved} workers and this group has {world}: epoch {epoch} starts over "
            "(an exact resume of the data needs the same run.num_workers)"
        ),
    )


class DataTrace:
    """``run.data_trace``: each rank appends one JSON line per trained batch to ``rank<R>.jsonl`` in a
    local folder (``step``, ``micro`` (the batch's index in the step), ``epoch``, ``ids``): which clips went into which step. A resumed run
    appends too, so a step replayed after a crash appears again; its last line is what counted."""

    def __init__(self, folder: str, rank: int) -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        self.file = open(Path(folder) / f"rank{rank}.jsonl", "a", buffering=1)  # noqa: SIM115 (open for the run)

    def add(self, step: int, micro: int, epoch: int, ids: list[str]) -> None:
        self.file.write(json.dumps({"step": step, "micro": micro, "epoch": epoch, "ids": list(ids)}) + "\n")


def read_trace(folder: str | Path) -> dict[int, dict[int, list[list[str]]]]:
    """A data trace as ``{rank: {step: [ids of each batch of that step]}}``, the last attempt of each step."""
    traced: dict[int, dict[int, list[list[str]]]] = {}
    for path in sorted(Path(folder).glob("rank*.jsonl")):
        steps: dict[int, list[list[str]]] = {}
        lines = [json.loads(line) for line in path.read_text().splitlines() if line]
        for entry in lines:
            if entry["micro"] == 0:  # a step's first batch: its record begins (again, when replayed after a restart)
                steps[entry["step"]] = []
            steps[entry["step"]].append(entry["ids"])
        traced[int(path.stem[4:])] = steps
    return traced
