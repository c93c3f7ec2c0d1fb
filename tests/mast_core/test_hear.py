"""HEAR 2021 API over exported tiny encoders."""

import numpy as np
import pytest
import torch

from mast_core import Embedder, FeatureSettings, hear, load_encoder, save_encoder
from mast_core.ast import ast_tiny
from mast_core.mast import mast_tiny

RATE = 16_000


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("hear")
    torch.manual_seed(1)
    return {
        "mast": save_encoder(mast_tiny().eval(), root / "mast", FeatureSettings(mean=-5.0, std=4.0)),
        "ast": save_encoder(ast_tiny().eval(), root / "ast", FeatureSettings(mean=-5.0, std=4.0)),
    }


def audio(n_sounds: int, seconds: float, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(n_sounds, int(seconds * RATE), generator=generator) * 2 - 1) * 0.5


@pytest.mark.parametrize("arch, dim, count, first_ms, hop_ms", [("mast", 256, 3, 87.5, 800.0), ("ast", 192, 19, 87.5, 100.0)])
def test_model_attributes_and_shapes(exported, arch, dim, count, first_ms, hop_ms):
    model = hear.load_model(str(exported[arch]), device="cpu", hop_ms=None)  # the encoder's own tokens
    assert isinstance(model, torch.nn.Module)
    assert (model.sample_rate, model.scene_embedding_size, model.timestamp_embedding_size) == (RATE, dim, dim)
    sounds = audio(3, 2.0)
    scene = hear.get_scene_embeddings(sounds, model)
    assert scene.shape == (3, dim) and scene.dtype == torch.float32 and torch.isfinite(scene).all()
    frames, ms = hear.get_timestamp_embeddings(sounds, model)
    assert frames.shape == (3, count, dim) and ms.shape == (3, count) and ms.dtype == torch.float32
    expected = first_ms + hop_ms * torch.arange(count, dtype=torch.float32)
    assert torch.allclose(ms, expected.expand(3, -1), atol=1e-3)  # milliseconds, centre of each token
    assert (ms[:, -1] < 2000.0).all()
    # the same numbers as the embedding API
    embedder = Embedder(*load_encoder(exported[arch]))
    assert torch.equal(scene, embedder.embed(list(sounds)).clip)
    assert torch.equal(model(sounds), scene)


@pytest.mark.parametrize("arch", ["mast", "ast"])
def test_timestamps_every_50_ms_interpolate_between_the_tokens(exported, arch):
    tokens_model = hear.load_model(exported[arch], device="cpu", hop_ms=None)
    model = hear.load_model(exported[arch], device="cpu")  # HEAR's 50 ms by default
    sounds = audio(2, 2.0, seed=3)
    tokens, centres = hear.get_timestamp_embeddings(sounds, tokens_model)
    frames, ms = hear.get_timestamp_embeddings(sounds, model)
    assert torch.equal(ms[0], torch.arange(0.0, 2000.0, 50.0)) and torch.equal(ms[1], ms[0])
    assert frames.shape == (2, 40, tokens.shape[2])
    for k, t in enumerate(ms[0].tolist()):
        c = centres[0].tolist()
        if t <= c[0]:
            expected = tokens[:, 0]
        elif t >= c[-1]:
            expected = tokens[:, -1]
        else:  # between the two tokens around it, in proportion to the distances
            upper = next(i for i, centre in enumerate(c) if centre >= t)
            w = (t - c[upper - 1]) / (c[upper] - c[upper - 1])
            expected = tokens[:, upper - 1] * (1 - w) + tokens[:, upper] * w
        torch.testing.assert_close(frames[:, k], expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="hop_ms must be positive"):
        hear.load_model(exported[arch], device="cpu", hop_ms=0)


def test_a_long_sound_is_embedded_window_by_window_with_the_same_result(exported):
    model = hear.load_model(exported["mast"], device="cpu", hop_ms=None)
    embedder = model.embedder
    sounds = audio(2, 4 * embedder.window_frames / 100 + 5, seed=7)  # past the 4-window threshold
    frames, ms = hear.get_timestamp_embeddings(sounds, model)
    whole = embedder.embed(list(sounds), frames=True)
    torch.testing.assert_close(hear.get_scene_embeddings(sounds, model), whole.clip, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(frames, torch.stack(whole.frames), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("seconds", [0.1, 1.0, 10.0, 60.0])
def test_any_length(exported, seconds):
    model = hear.load_model(exported["mast"], device="cpu")
    sounds = audio(2, seconds, seed=int(seconds * 10))
    scene = hear.get_scene_embeddings(sounds, model)
    frames, ms = hear.get_timestamp_embeddings(sounds, model)
    assert scene.shape == (2, 256) and torch.isfinite(scene).all()
    assert frames.shape[:2] == ms.shape and frames.shape[1] == max(1, round(seconds * 20))  # every 50 ms
    assert ms[0, -1] < max(seconds, 0.175) * 1000


def test_rejects_what_hear_does_not_allow(exported):
    model = hear.load_model(exported["mast"], device="cpu")
    with pytest.raises(ValueError, match=r"has a channel axis; HEAR audio is mono \(n_sounds, n_samples\)"):
        hear.get_scene_embeddings(torch.zeros(2, 2, RATE), model)
    with pytest.raises(ValueError, match=r"audio\[None\]"):
        hear.get_timestamp_embeddings(torch.zeros(RATE), model)
    with pytest.raises(ValueError, match="audio at 44100 Hz: this model takes 16000 Hz"):
        hear.get_scene_embeddings(torch.zeros(1, 44_100), model, sample_rate=44_100)
    with pytest.raises(TypeError, match="float"):
        hear.get_scene_embeddings(torch.zeros(1, RATE, dtype=torch.int16), model)
    with pytest.raises(ValueError, match="needs model_file_path"):
        hear.load_model("")
    # the rate, when given and right, is accepted; numpy input works; no sounds give empty outputs
    ok = hear.get_scene_embeddings(np.zeros((1, RATE), np.float32), model, sample_rate=RATE)
    assert ok.shape == (1, 256)
    assert hear.get_scene_embeddings(torch.zeros(0, RATE), model).shape == (0, 256)
    frames, ms = hear.get_timestamp_embeddings(torch.zeros(0, RATE), model)
    assert frames.shape == (0, 0, 256) and ms.shape == (0, 0)
