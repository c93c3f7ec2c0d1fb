"""CPU log-mel of a batch, side by side: the whole batch in one FFT pass against a few clips per pass
(``mast_core.features``, ``_CPU_PASS_BYTES``), with the page faults and kernel time each costs.

A batch of 32 ten-second clips needs FFT buffers of 65 MB; glibc maps allocations that large
freshly from the kernel every time (its mmap threshold is 32 MB at most), and every 4 KB page of
them then costs a page fault. Passes of about 4 MB reuse the heap's pages. One thread, as in a
decoding task or a train worker on a CPU.

    python benchmarks/log_mel.py --batch 32 --seconds 10 --repeat 8
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timed(waves, pass_bytes: int, repeat: int) -> tuple[float, float, float]:
    """(ms per batch, kernel ms per batch, page faults per batch)."""
    import mast_core.features as features

    features._CPU_PASS_BYTES = pass_bytes
    features.log_mel(waves)  # warm: caches, the mel banks, the heap
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(repeat):
        features.log_mel(waves)
    seconds, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
    return 1000 * seconds / repeat, 1000 * (after.ru_stime - before.ru_stime) / repeat, (after.ru_minflt - before.ru_minflt) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=8)
    args = parser.parse_args()

    import torch

    import mast_core.features as features

    torch.set_num_threads(1)
    waves = torch.randn(args.batch, int(args.seconds * 16000), generator=torch.Generator().manual_seed(0))
    default = features._CPU_PASS_BYTES
    rows = [("whole batch in one pass (before)", 1 << 40), (f"passes of at most {default >> 20} MB (now)", default)]
    results = [(name, *timed(waves, pass_bytes, args.repeat)) for name, pass_bytes in rows]
    features._CPU_PASS_BYTES = default
    print(f"\nlog-mel of {args.batch} clips of {args.seconds:g} s on one CPU thread, mean of {args.repeat} batches\n")
    print("| pass | ms per batch | kernel ms | page faults | speed-up |")
    print("|---|---|---|---|---|")
    base = results[0][1]
    for name, ms, kernel, faults in results:
        print(f"| {name} | {ms:.0f} | {kernel:.0f} | {faults:.0f} | {base / ms:.2f}x |")


if __name__ == "__main__":
    main()
