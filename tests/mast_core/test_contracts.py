"""The encoder and objective contracts: every registered model answers the same calls the same way."""

import typing

import pytest
import torch

from mast_core.contracts import Encoder, Objective, TokenOutput
from mast_core.registry import (
    ARCHITECTURES,
    FACTORIES,
    OBJECTIVES,
    build_encoder,
    check_pairing,
    configuration_class,
    encoder_class,
    objective_class,
)

TINY = [name for name in ARCHITECTURES if name.endswith("_tiny")]
# Small settings per objective, so a step runs in well under a second on a CPU.
SMALL = {"ssmast": {"proj_dim": 16, "queue_size": 32, "patch_drop": 0.2}, "ssast": {"num_masked": 12}}
PAIRS = [
    (objective, arch)
    for objective in OBJECTIVES
    for arch in TINY
    if issubclass(configuration_class(arch), objective_class(objective).encoder_type)
]


@pytest.fixture(scope="module", params=TINY)
def encoder(request) -> Encoder:
    torch.manual_seed(0)
    return build_encoder(request.param).eval()


def test_every_configuration_builds_its_class_and_an_encoder():
    for name in ARCHITECTURES:
        # building the large ones takes seconds on a CPU: their factories' return types say the class
        assert typing.get_type_hints(FACTORIES[name])["return"] is configuration_class(name), name
        assert issubclass(configuration_class(name), Encoder)
    for name in TINY:
        model = build_encoder(name)
        assert type(model) is configuration_class(name) and encoder_class(model.arch) is type(model)


def test_tokens_grid_lengths_and_clip(encoder: Encoder):
    frames, short = 300, 200
    spec = torch.randn(2, encoder.num_mel_bins, frames)
    spec[1, :, short:] = 0.0
    with torch.no_grad():
        out = encoder.forward_tokens(spec, torch.tensor([frames, short]))
        alone = encoder.forward_tokens(spec[1:, :, :short])
        plain = encoder(spec, torch.tensor([frames, short]))
    assert isinstance(out, TokenOutput)
    freq, time = out.grid
    assert out.tokens.shape == (2, freq * time, encoder.embed_dim)
    assert out.clip.shape == (2, encoder.embed_dim)
    torch.testing.assert_close(out.clip, plain, atol=0, rtol=0)  # forward is forward_tokens(...).clip
    # one column every token_stride frames, as long as the column's first patch starts in the clip
    assert out.token_stride == encoder.token_stride
    assert time == len(range(0, frames - encoder.patch_size + 1, encoder.token_stride))
    assert out.lengths.tolist() == [time, alone.grid[1]]
    assert alone.lengths is None and alone.valid_columns().all()
    assert out.valid_columns().sum(1).tolist() == out.lengths.tolist()
    # the padded clip's outputs are the ones it gets alone
    torch.testing.assert_close(out.clip[1], alone.clip[0], atol=1e-5, rtol=1e-5)
    frames_out = out.frames()
    assert frames_out.shape == (2, time, encoder.embed_dim)
    torch.testing.assert_close(frames_out[1, : alone.grid[1]], alone.frames()[0], atol=1e-5, rtol=1e-5)


def test_column_times_in_frames_and_seconds(encoder: Encoder):
    with torch.no_grad():
        out = encoder.forward_tokens(torch.randn(1, encoder.num_mel_bins, 500))
    time = out.grid[1]
    assert out.column_frames().tolist() == [k * encoder.token_stride for k in range(time)]
    seconds = encoder.timestamps(time)
    assert seconds.shape == (time,)
    # 25 ms window, 10 ms hop: a 16-frame patch is centred 87.5 ms after its first frame's start
    assert float(seconds[0]) == pytest.approx(0.0875)
    if time > 1:
        assert float(seconds[1] - seconds[0]) == pytest.approx(encoder.token_stride * 0.01)
    assert float(encoder.timestamps(2, sample_rate=8_000)[0]) == pytest.approx(0.0875)


def test_patch_drop_keeps_a_grid_and_zero_is_off(encoder: Encoder):
    spec = torch.randn(2, encoder.num_mel_bins, 500)
    with torch.no_grad():
        full = encoder.forward_tokens(spec)
        dropped = encoder.forward_tokens(spec, patch_drop=0.2, generator=torch.Generator().manual_seed(0))
        assert torch.equal(encoder(spec, patch_drop=0.0), full.clip)
    assert dropped.grid[0] == full.grid[0] and dropped.grid[1] < full.grid[1]
    assert dropped.tokens.shape == (2, dropped.grid[0] * dropped.grid[1], encoder.embed_dim)
    assert torch.isfinite(dropped.clip).all()


def test_layers_config_and_export_range(encoder: Encoder):
    ids, blocks = encoder.layer_ids()
    assert blocks == len(encoder.ordered_blocks())
    assert set(ids.values()) == set(range(blocks + 2)) and set(ids) == {n for n, _ in encoder.named_parameters()}
    assert ids["patch_embed.proj.weight"] == 0 and ids["norm.weight"] == blocks + 1
    rebuilt = encoder_class(encoder.arch)(**encoder.config())
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in encoder.state_dict().items()}
    low, high = encoder.export_frame_range()
    assert low == encoder.patch_size and (high is None or high == encoder.max_frames)


def build_objective(objective: str, arch: str) -> Objective:
    torch.manual_seed(0)
    kind = objective_class(objective)
    encoder = build_encoder(arch, max_frames=160, **kind.encoder_settings)
    return kind(encoder, **SMALL[objective]).train()


def stream_batch(batch: int = 3, frames: int = 160) -> dict[str, torch.Tensor]:
    """What the pretraining stream yields: two views of each clip (one-view objectives ignore view_b)."""
    return {"view_a": torch.randn(batch, 128, frames), "view_b": torch.randn(batch, 128, frames)}


@pytest.mark.parametrize("objective, arch", PAIRS)
def test_objective_takes_the_stream_batch(objective: str, arch: str):
    model = build_objective(objective, arch)
    assert isinstance(model, Objective) and isinstance(model.encoder, Encoder)
    assert any(module is model.encoder for module in model.modules())  # trained inside the objective
    assert set(model.views) <= set(stream_batch())
    loss, stats = model(stream_batch())
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert stats["loss"] == pytest.approx(float(loss.detach())) and all(isinstance(v, float) for v in stats.values())
    with pytest.raises(KeyError, match=model.views[-1]):
        model({key: value for key, value in stream_batch().items() if key != model.views[-1]})


@pytest.mark.parametrize("objective, arch", PAIRS)
def test_an_optimiser_step_trains_the_encoder(objective: str, arch: str):
    model = build_objective(objective, arch)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-3)
    before = {name: p.detach().clone() for name, p in model.encoder.named_parameters()}
    loss, _ = model(stream_batch())
    loss.backward()
    optimizer.step()
    changed = [name for name, p in model.encoder.named_parameters() if not torch.equal(p, before[name])]
    assert "patch_embed.proj.weight" in changed and len(changed) > len(before) // 2, changed
    # after_step touches no trained parameter (SS-MAST moves its frozen teacher, SSAST does nothing)
    trained = [p.detach().clone() for p in trainable]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.after_step(0, 10, momentum=0.5)
    assert all(torch.equal(p, q) for p, q in zip(trainable, trained))
    moved = {k for k, v in model.state_dict().items() if not torch.equal(v, state[k])}
    assert all(k.startswith("teacher") for k in moved)
    assert bool(moved) == (objective == "ssmast")


def test_pairings_are_checked_by_class():
    check_pairing("ssmast", "ast_tiny")
    check_pairing("ssast", "ast_base")
    with pytest.raises(ValueError, match=r"ssast needs an AST arch \(ast_tiny, ast_base\), got mast_tiny"):
        check_pairing("ssast", "mast_tiny")
    with pytest.raises(ValueError, match="unknown objective 'byol'"):
        check_pairing("byol", "mast_tiny")
    with pytest.raises(ValueError, match="unknown architecture 'mast_huge'"):
        check_pairing("ssmast", "mast_huge")
