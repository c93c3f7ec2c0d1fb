"""Long clips embedded window by window (``Embedder.embed_long``) match the whole-clip path."""

import pytest
import torch

from mast_core.ast import ast_tiny
from mast_core.checkpoint import FeatureSettings
from mast_core.embed import Embedder
from mast_core.mast import mast_tiny

RATE = 16000


def _embedder(arch: str, batch_size: int) -> Embedder:
    torch.manual_seed(0)
    model = (mast_tiny if arch == "mast" else ast_tiny)(max_frames=256).eval()
    return Embedder(model, FeatureSettings(mean=-4.0, std=4.0), batch_size=batch_size)


@pytest.mark.parametrize("arch", ["mast", "ast"])
@pytest.mark.parametrize("seconds", [0.05, 1.3, 9.7])  # shorter than a patch, one window, several windows and a remainder
def test_window_by_window_equals_the_whole_clip(arch, seconds):
    embedder = _embedder(arch, batch_size=2)
    generator = torch.Generator().manual_seed(int(seconds * 100))
    wave = (torch.rand(int(seconds * RATE), generator=generator) * 2 - 1) * 0.3 + 0.01  # a DC offset too
    reads = []

    def read(start: int, count: int) -> torch.Tensor:
        reads.append(count)
        return wave[start : start + count]

    whole = embedder.embed([wave], frames=True)
    long = embedder.embed_long(read, wave.numel(), frames=True)
    torch.testing.assert_close(long.clip, whole.clip, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(long.frames[0], whole.frames[0], rtol=1e-4, atol=1e-5)
    assert torch.equal(long.timestamps[0], whole.timestamps[0])
    # never more than one window (and a half, the merged remainder) of samples at a time
    longest = int(1.5 * embedder.window_frames) * embedder.frame_hop + embedder.frame_window
    assert max(reads) <= longest and sum(reads) <= wave.numel() + len(reads) * embedder.frame_window + embedder.min_samples
    clip_only = embedder.embed_long(read, wave.numel())
    assert clip_only.frames is None and torch.equal(clip_only.clip, long.clip)


def test_bad_reads_and_lengths_are_refused():
    embedder = _embedder("mast", batch_size=1)
    with pytest.raises(ValueError, match="empty clip"):
        embedder.embed_long(lambda start, count: torch.zeros(count), 0)
    with pytest.raises(ValueError, match="mono float samples"):
        embedder.embed_long(lambda start, count: torch.zeros(count, dtype=torch.int16), 16000)
    with pytest.raises(ValueError, match="NaN or infinite"):
        embedder.embed_long(lambda start, count: torch.full((count,), float("nan")), 16000)


@pytest.mark.parametrize("rate,channels", [(16000, 1), (44100, 2), (22050, 1)])
def test_a_file_read_span_by_span_matches_the_file_decoded_whole(tmp_path, rate, channels):
    import numpy as np
    import soundfile as sf

    from mast_core.audio import AudioReader
    from mast_core.embed import read_clip

    generator = np.random.default_rng(rate)
    path = tmp_path / f"long-{rate}.flac"
    sf.write(path, (generator.uniform(-0.3, 0.3, (int(7.3 * rate), channels))).squeeze(), rate, subtype="PCM_16")
    whole = read_clip(path, RATE)
    reader = AudioReader(path, RATE)
    assert reader.num_samples == whole.numel()
    for start, count in ((0, 4000), (12345, 16000), (whole.numel() - 5000, 16000), (80000, 1)):
        span = reader(start, count)
        torch.testing.assert_close(span, whole[start : start + count], rtol=0, atol=0 if rate == RATE else 1e-5)
    embedder = _embedder("mast", batch_size=2)
    long = embedder.embed_long(reader, reader.num_samples, frames=True)
    torch.testing.assert_close(long.clip, embedder.embed([whole]).clip, rtol=1e-4, atol=1e-4)
