"""Property-based tests of the audio decoder: any bytes give a waveform or an AudioError, never a
crash or a hang (random bytes, and valid FLAC/WAV files with bytes flipped, cut or zeroed)."""

import io
import time

import numpy as np
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mast_core.audio import AudioError, encode_flac, read_audio

RATE = 16000
SLOW = 5.0  # seconds: far beyond any decode of these sub-second clips; a hang shows as this


def _wav(seconds: float) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, 0.3 * np.sin(np.arange(int(RATE * seconds)) / 7.0), RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


VALID = {
    "flac": encode_flac(torch.sin(torch.arange(8000) / 5.0) * 0.3),
    "wav": _wav(0.5),
}


def _decodes_or_refuses(data: bytes) -> None:
    started = time.monotonic()
    try:
        wave = read_audio(data)
    except AudioError as error:
        assert error.args and isinstance(error.args[0], str)  # the reason a skipped clip is counted under
    else:
        assert wave.dtype == torch.float32 and wave.ndim == 1 and wave.numel() > 0
        assert torch.isfinite(wave).all()
    assert time.monotonic() - started < SLOW


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_random_bytes_give_a_waveform_or_an_audio_error(data):
    _decodes_or_refuses(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(sorted(VALID)),
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=12),
    cut=st.one_of(st.none(), st.floats(0, 1)),
    zero_from=st.one_of(st.none(), st.floats(0, 1)),
)
def test_damaged_audio_files_give_a_waveform_or_an_audio_error(kind, edits, cut, zero_from):
    data = bytearray(VALID[kind])
    for where, value in edits:  # bytes overwritten anywhere, the header included
        data[int(where * len(data))] = value
    if zero_from is not None:  # the frames zeroed from some point on, as a bad disk block leaves them
        start = int(zero_from * len(data))
        data[start:] = bytes(len(data) - start)
    if cut is not None:  # cut short, as an interrupted copy leaves it
        data = data[: int(cut * len(data))]
    _decodes_or_refuses(bytes(data))
