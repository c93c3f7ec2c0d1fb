"""Data throughput on the same shards in one run: decode + crop + log-mel, three ways.

(a) a single process looping over the shards with the featurizer,
(b) the Ray Data pipeline (`pipelines.data.build_stream`) with 2 decoding actors,
(c) a torch DataLoader with 2 worker processes running the same featurizer.

All three do the same work per clip (FLAC decode, centre crop to --frames, batched Kaldi log-mel,
normalisation), so clips/s compare directly; (b)/(a) is reported per decoding CPU. Run
``benchmarks/ingest.py`` first (it leaves shards in --work/shards).

    python benchmarks/data_pipeline.py --work /tmp/mast-bench --frames 998
"""

from __future__ import annotations

import argparse
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


def single_process(files, settings, stats) -> int:
    from pipelines.data import ClipFeaturizer

    featurizer = ClipFeaturizer(settings, *stats)
    return sum(len(featurizer(batch)["label"]) for batch in shard_batches(files, settings.batch_size))


def ray_pipeline(sources, settings, stats) -> int:
    from pipelines.data import build_stream

    count = 0
    for batch in build_stream(sources, settings, stats).iter_batches(batch_size=settings.batch_size):
        count += len(batch["label"])
    return count


def dataloader(files, settings, stats, workers: int) -> int:
    import torch
    from torch.utils.data import DataLoader, IterableDataset, get_worker_info

    from pipelines.data import ClipFeaturizer

    class Shards(IterableDataset):
        def __iter__(self):
            info = get_worker_info()
            mine = files[info.id :: info.num_workers] if info else files
            featurizer = ClipFeaturizer(settings, *stats)
            for batch in shard_batches(mine, settings.batch_size):
                yield {key: torch.from_numpy(value) for key, value in featurizer(batch).items() if key != "id"}

    loader = DataLoader(Shards(), batch_size=None, num_workers=workers)
    return sum(len(batch["label"]) for batch in loader)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/mast-bench"))
    parser.add_argument("--frames", type=int, default=998, help="frames per clip (998 = 10 s)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="decoding actors / DataLoader workers")
    args = parser.parse_args()

    from pipelines.data import Source, StreamSettings, mixture_files, normalisation_stats
    from pipelines.runtime import init_ray

    sources = [Source(str(args.work / "shards"))]
    files = mixture_files(sources)
    stats = normalisation_stats(sources)
    settings = StreamSettings(frames_per_clip=args.frames, mode="eval", batch_size=args.batch, decode_actors=args.workers)
    # Ray gets 2 more logical CPUs than decoding actors: the file listing and the read tasks each
    # need a whole logical CPU (platform notes), though they use almost none.
    init_ray(num_cpus=args.workers + 2)

    rows = []
    for name, run, cpus in (
        ("(a) single process", lambda: single_process(files, settings, stats), 1),
        (f"(b) Ray Data, {args.workers} actors", lambda: ray_pipeline(sources, settings, stats), args.workers),
        (f"(c) DataLoader, {args.workers} workers", lambda: dataloader(files, settings, stats, args.workers), args.workers),
    ):
        print(f"running {name} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        clips = run()
        seconds = time.perf_counter() - started
        rows.append((name, clips, seconds, cpus))

    base = rows[0][1] / rows[0][2]
    print(f"\ndecode + crop + log-mel, {args.frames} frames, batch {args.batch}, {os.cpu_count()} cores, {len(files)} shards\n")
    print("| pipeline | clips | seconds | clips/s | clips/s per CPU | per-CPU vs (a) |")
    print("|---|---|---|---|---|---|")
    for name, clips, seconds, cpus in rows:
        rate = clips / seconds
        print(f"| {name} | {clips} | {seconds:.1f} | {rate:.1f} | {rate / cpus:.1f} | {rate / cpus / base:.2f} |")


if __name__ == "__main__":
    main()
