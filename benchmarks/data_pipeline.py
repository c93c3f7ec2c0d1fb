"""Data throughput on the same shards in one run: decode + crop + log-mel + normalise, three ways.

(a) a single process looping over the shards: ``decode_clips`` then ``ViewMaker`` (the features),
(a2) the same loop in --workers independent processes started together, each on its share of the
    shards: the most this machine's cores give for the work with nothing shared (on the 2-core
    machine two processes each ran at 0.78-0.90 of one alone), the ceiling of (b) and (c),
(b) the Ray Data pipeline (`pipelines.data.stream.build_stream`) on --workers decoding tasks, both
    feature paths: ``device`` ships int16 waveforms and the consuming process computes the log-mel
    (as a train worker does on its GPU), ``tasks`` computes it in the decoding tasks (the CPU-only
    choice of ``data.features: auto``); each iterated for --epochs epochs of one lazy dataset; and
    pretraining's ordered per-rank stream (``epoch_stream``: a new dataset per epoch, block order
    preserved, so that a resume continues the same clips), features in the consumer,
(c) a torch DataLoader with --workers worker processes doing (a)'s work.

All three do the same work per clip (FLAC decode, centre crop to --frames, batched Kaldi log-mel,
normalisation), so clips/s compare directly; (b)/(a) is reported per decoding CPU. Each pass
reads the shards ``--repeat`` times (a source weight), like one long epoch. The time includes
start-up: the first epoch of (b) and (c) pays for worker processes and their torch import, and the
"first batch" column shows how much; later epochs of (b) reuse Ray's worker processes. Run
``benchmarks/ingest.py`` first (it leaves shards in --work/shards).

    python benchmarks/data_pipeline.py --work /tmp/mast-bench --frames 998 --repeat 1
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def shard_batches(files: list[str], batch_size: int):
    import pyarrow.parquet as pq

    for name in files:
        table = pq.read_table(name, columns=["id", "audio", "label_indices", "split"])
        for batch in table.to_batches(max_chunksize=batch_size):
            yield {column: batch.column(column).to_numpy(zero_copy_only=False) for column in batch.schema.names}


def timed(batches) -> tuple[int, float, float, int]:
    """(clips, seconds to the first batch, total seconds, clips in the first batch)."""
    started = time.perf_counter()
    first, clips, first_clips = None, 0, 0
    for batch in batches:
        if first is None:
            first, first_clips = time.perf_counter() - started, len(batch["label"])
        clips += len(batch["label"])
    return clips, first or 0.0, time.perf_counter() - started, first_clips


def featurized(batch: dict, views) -> dict:
    """A decoded batch with its features computed, as a train worker computes them."""
    import torch

    from pipelines.data.stream import clip_input

    (spec,) = views(torch.as_tensor(clip_input(batch)))
    return {"spec": spec, "label": batch["label"]}


def single_process(files, settings, stats):
    import torch

    from mast_core.views import ViewMaker
    from pipelines.data.stream import decode_clips

    torch.set_num_threads(1)
    views = ViewMaker(*stats)
    return (featurized(decode_clips(batch, settings), views) for batch in shard_batches(files, settings.batch_size))


def _half(files, settings, stats, ready, start, results) -> None:
    """One of the independent processes of (a2): imports first, then waits for the common start."""
    import torch

    torch.set_num_threads(1)
    batches = single_process(files, settings, stats)
    ready.wait()
    start.wait()
    clips, _, seconds, _ = timed(batches)
    results.put((clips, seconds))


def independent_processes(files, settings, stats, processes: int) -> tuple[int, float]:
    """(a2): (a)'s loop in ``processes`` separate processes, each on its share of the shards, started
    together after their imports: what this machine's cores give for the same work with nothing
    shared (no Ray, no transfer), the ceiling any parallel pipeline here can reach. (clips, seconds)"""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    ready, start, results = context.Barrier(processes + 1), context.Event(), context.Queue()
    workers = [context.Process(target=_half, args=(files[i::processes], settings, stats, ready, start, results)) for i in range(processes)]
    for worker in workers:
        worker.start()
    ready.wait()
    started = time.perf_counter()
    start.set()
    done = [results.get() for _ in workers]
    seconds = time.perf_counter() - started
    for worker in workers:
        worker.join()
    return sum(clips for clips, _ in done), seconds


def ray_pipeline(dataset, settings, stats):
    from mast_core.views import ViewMaker

    views = ViewMaker(*stats)
    return (featurized(batch, views) for batch in dataset.iter_batches(batch_size=settings.batch_size))


def ordered_pipeline(sources, settings, stats, epoch: int):
    """Pretraining's stream of one rank (world 1): a new dataset per epoch, in the fixed order that
    makes a resume exact (``epoch_stream``); building it is timed too."""
    from pipelines.data.stream import epoch_stream

    yield from ray_pipeline(epoch_stream(sources, settings, epoch)[0], settings, stats)


def dataloader(files, settings, stats, workers: int):
    import torch
    from torch.utils.data import DataLoader, IterableDataset, get_worker_info

    from mast_core.views import ViewMaker
    from pipelines.data.stream import decode_clips

    class Shards(IterableDataset):
        def __iter__(self):
            info = get_worker_info()
            torch.set_num_threads(1)
            mine = files[info.id :: info.num_workers] if info else files
            views = ViewMaker(*stats)
            for batch in shard_batches(mine, settings.batch_size):
                yield featurized(decode_clips(batch, settings), views)

    return iter(DataLoader(Shards(), batch_size=None, num_workers=workers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/mast-bench"))
    parser.add_argument("--frames", type=int, default=998, help="frames per clip (998 = 10 s)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="decoding actors / DataLoader workers")
    parser.add_argument("--repeat", type=int, default=1, help="read the shards this many times per pass")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the Ray pipeline (the first pays start-up)")
    args = parser.parse_args()

    from pipelines.common.runtime import init_ray
    from pipelines.data.stream import Source, StreamSettings, build_stream, mixture_files, normalisation_stats

    sources = [Source(str(args.work / "shards"), weight=float(args.repeat))]
    files = mixture_files(sources)
    stats = normalisation_stats(sources)
    settings = StreamSettings(frames_per_clip=args.frames, mode="eval", batch_size=args.batch, decode_actors=args.workers)
    # Ray gets 2 more logical CPUs than decoding tasks: the file listing and the read tasks each
    # need a whole logical CPU (docs/design.md, "Platform notes"), though they use almost none.
    init_ray(num_cpus=args.workers + 2)
    passes = [("(a) single process", lambda: single_process(files, settings, stats), 1)]
    for features, where in (("device", "features in the consumer"), ("tasks", "features in the tasks")):
        # one lazy dataset per feature path, iterated once per epoch
        dataset = build_stream(sources, dataclasses.replace(settings, features=features))
        for epoch in range(1, args.epochs + 1):
            name = f"(b) Ray Data, {args.workers} tasks, {where}, epoch {epoch}"
            passes.append((name, lambda dataset=dataset: ray_pipeline(dataset, settings, stats), args.workers))
    for epoch in range(1, args.epochs + 1):  # what a pretraining worker streams (the order a resume continues)
        name = f"(b) Ray Data, {args.workers} tasks, ordered per-rank stream (pretraining), epoch {epoch}"
        passes.append((name, lambda epoch=epoch: ordered_pipeline(sources, settings, stats, epoch - 1), args.workers))
    passes.append((f"(c) DataLoader, {args.workers} workers", lambda: dataloader(files, settings, stats, args.workers), args.workers))
    rows = []
    for name, run, cpus in passes:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows.append((name, *timed(run()), cpus))  # (name, clips, first, seconds, first clips, cpus)
        if len(rows) == 1:  # right after (a): the machine's parallel ceiling for the same work
            name = f"(a2) {args.workers} independent single processes (this machine's ceiling)"
            print(f"running {name} ...", file=sys.stderr, flush=True)
            clips, seconds = independent_processes(files, settings, stats, args.workers)
            rows.append((name, clips, 0.0, seconds, 0, args.workers))

    base = rows[0][1] / rows[0][3]
    steady_base = (rows[0][1] - rows[0][4]) / (rows[0][3] - rows[0][2])
    print(
        f"\ndecode + crop + log-mel, {args.frames} frames, batch {args.batch}, {os.cpu_count()} cores, "
        f"{len(files)} shard reads ({args.repeat} x the shards)\n"
    )
    ceiling = rows[1][1] / rows[1][3]
    print(
        "| pipeline | clips | first batch (s) | seconds | clips/s | per CPU | per-CPU vs (a) | vs (a2) "
        "| after first batch: per CPU | vs (a) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, clips, first, seconds, first_clips, cpus in rows:
        rate = clips / seconds
        steady = (clips - first_clips) / (seconds - first) / cpus
        vs_ceiling = f"{rate / ceiling:.2f}" if cpus == args.workers else ""
        print(
            f"| {name} | {clips} | {first:.1f} | {seconds:.1f} | {rate:.1f} | {rate / cpus:.1f} | {rate / cpus / base:.2f} "
            f"| {vs_ceiling} | {steady:.1f} | {steady / steady_base:.2f} |"
        )


if __name__ == "__main__":
    main()
