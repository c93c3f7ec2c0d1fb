import pytest
import torch

from mast_core.layers import grid_size
from mast_core.mast import (
    MAST,
    MultiScalePoolingAttention,
    mast_base,
    mast_small,
    mast_tiny,
    pooled_grid,
    relative_distance_index,
)
from mast_core.patch_drop import drop_time_columns


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def small() -> MAST:
    torch.manual_seed(0)
    return mast_small().eval()


def stage_shapes(model: MAST, spec: torch.Tensor) -> list[tuple[int, int, tuple[int, int], int]]:
    """(tokens, width, grid, heads) after each stage."""
    image = model.patch_embed(spec)
    grid = (image.shape[2], image.shape[3])
    x = image.flatten(2).transpose(1, 2)
    shapes = []
    for stage in model.stages:
        x, grid, _, _ = stage(x, grid, None)
        shapes.append((x.shape[1], x.shape[2], grid, stage.blocks[0].attn.num_heads))
    return shapes


def test_stage_token_counts_widths_and_heads_for_128x512(small):
    with torch.no_grad():
        shapes = stage_shapes(small, torch.randn(1, 128, 512))
    assert small.patch_embed(torch.randn(1, 128, 512)).flatten(2).shape[-1] == 600
    assert [s[0] for s in shapes] == [600, 150, 39, 14]
    assert [s[2] for s in shapes] == [(12, 50), (6, 25), (3, 13), (2, 7)]
    assert [s[1] for s in shapes] == [96, 192, 384, 768]
    assert [s[3] for s in shapes] == [1, 2, 4, 8]


@pytest.mark.parametrize("length", [1, 2, 3, 7, 12, 25, 50, 101, 299])
@pytest.mark.parametrize("stride", [1, 2, 4])
def test_pooled_length_follows_the_formula(length, stride):
    expected = (length + 2 * 1 - 3) // stride + 1
    assert grid_size(length, 3, stride, 1) == expected
    assert pooled_grid((length, length), stride) == (expected, expected)
    attention = MultiScalePoolingAttention(8, 8, 1, (12, length), stride_q=stride, stride_kv=stride)
    x = torch.randn(1, 12 * length, 8)
    out, grid, _ = attention(x, (12, length))
    assert grid == (grid_size(12, 3, stride, 1), expected)
    assert out.shape == (1, grid[0] * grid[1], 8)


def test_kv_stride_is_adaptive(small):
    strides = [[(b.attn.stride_q, b.attn.stride_kv) for b in stage.blocks] for stage in small.stages]
    assert strides[0] == [(1, 4)]
    assert strides[1] == [(2, 2), (1, 2)]
    assert all(s == (1, 1) for s in strides[2][1:]) and strides[2][0] == (2, 1)
    assert strides[3] == [(2, 1), (1, 1)]


def test_parameter_counts_without_head():
    # The reference implementation (timm mvitv2_small/base with the AST stem) has 34.1 M and
    # 50.7 M. Ours differs only in the relative-position tables (sized per axis for 128 x 1024).
    small, base = count_parameters(mast_small()), count_parameters(mast_base())
    print(f"mast_small {small / 1e6:.3f} M, mast_base {base / 1e6:.3f} M, mast_tiny {count_parameters(mast_tiny()) / 1e6:.3f} M")
    assert abs(small - 34.1e6) < 0.1e6
    assert abs(base - 50.7e6) < 0.1e6


def test_relative_tables_are_sized_per_axis(small):
    attention = small.stages[0].blocks[0].attn
    # 12 x 101 grid, K/V stride 4: distances up to 11 along frequency and 100 along time.
    assert attention.rel_pos_freq.shape == (23, 96)
    assert attention.rel_pos_time.shape == (201, 96)


def test_relative_distance_uses_the_finer_grid():
    index = relative_distance_index(5, 2, stride_q=1, stride_kv=4, max_distance=4, device=torch.device("cpu"))
    distance = index - 4
    # query i at i, key j at 4 j; clamped to +-4
    assert distance.tolist() == [[0, -4], [1, -3], [2, -2], [3, -1], [4, 0]]


@pytest.mark.parametrize("frames", [98, 512, 1024, 3000])
def test_forward_accepts_any_length(small, frames):
    with torch.no_grad():
        out = small(torch.randn(2, 128, frames))
    assert out.shape == (2, 768)
    assert torch.isfinite(out).all()


def test_padded_batch_matches_each_clip_alone():
    torch.manual_seed(1)
    model = mast_tiny().eval()
    lengths = [98, 300, 517, 1024]
    clips = [torch.randn(128, n) for n in lengths]
    batch = torch.zeros(len(clips), 128, max(lengths))
    for i, clip in enumerate(clips):
        batch[i, :, : clip.shape[1]] = clip
    with torch.no_grad():
        padded = model(batch, torch.tensor(lengths))
        alone = torch.cat([model(clip[None]) for clip in clips])
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=1e-5)


def test_patch_drop_keeps_a_valid_grid_and_removes_the_fraction():
    model = mast_tiny().train()
    spec = torch.randn(3, 128, 1024)  # 12 x 101 patches
    generator = torch.Generator().manual_seed(0)
    out = model.forward_tokens(spec, patch_drop=0.2, generator=generator)
    tokens, grid = out.tokens, out.grid
    assert tokens.shape[0] == 3
    # 101 - round(0.2 * 101) = 81 columns reach stage 1; pooling proceeds from there.
    expected = (12, 81)
    for _ in range(3):
        expected = pooled_grid(expected, 2)
    assert grid == expected
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(spec), model(spec, patch_drop=0.0))


def test_bad_inputs_get_clear_errors():
    model = mast_tiny()
    with pytest.raises(ValueError, match="128 mel bins"):
        model(torch.randn(1, 64, 200))
    with pytest.raises(ValueError, match="fewer than one patch"):
        model(torch.randn(1, 128, 10))
    with pytest.raises(ValueError, match="batch"):
        model(torch.randn(128, 200))
    with pytest.raises(ValueError, match=r"must be in \[16, 200\]"):
        model(torch.randn(2, 128, 200), torch.tensor([200, 300]))
    with pytest.raises(ValueError, match="equal-length"):
        model(torch.randn(2, 128, 200), torch.tensor([200, 100]), patch_drop=0.2)
    with pytest.raises(ValueError, match="patch-drop rate"):
        model(torch.randn(2, 128, 200), patch_drop=1.5)


def test_config_round_trip():
    model = mast_tiny(max_frames=512)
    rebuilt = MAST(**model.config())
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in rebuilt.state_dict().items()}


def test_gradients_reach_every_parameter():
    model = mast_tiny().train()
    model(torch.randn(2, 128, 300)).sum().backward()
    for name, param in model.named_parameters():  # a zero gradient trains nothing, like a missing one
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, f"{name}: all-zero gradient"


def test_relative_distance_after_patch_drop_is_the_true_distance():
    # columns 3 and 4 dropped: kept 0, 1, 2, 5, 6, 7, 8; columns 2 and 5 are 3 apart, not 1
    positions = torch.tensor([[0.0, 1, 2, 5, 6, 7, 8]])
    index = relative_distance_index(7, 7, stride_q=1, stride_kv=1, max_distance=8, device=torch.device("cpu"), positions=positions)
    distance = index[0] - 8
    assert distance[2, 3] == -3 and distance[3, 2] == 3
    assert torch.equal(distance, (positions[0][:, None] - positions[0][None, :]).long())
    # without positions, the same call gives the compacted distances the old code used
    compact = relative_distance_index(7, 7, 1, 1, 8, torch.device("cpu")) - 8
    assert compact[2, 3] == -1


def test_every_stage_measures_true_time_distances_after_patch_drop(monkeypatch):
    """Through the pooled stages too: each attention's time index equals the distance between the
    original (pre-drop) positions of its query and key columns, in units of its finer grid."""
    torch.manual_seed(0)
    model = mast_tiny().train()
    spec = torch.randn(2, 128, 1024)  # 101 patch columns, 20 dropped
    seen = []
    original = MultiScalePoolingAttention.time_index

    def recording(self, q_grid, k_grid, positions, device):
        index = original(self, q_grid, k_grid, positions, device)
        seen.append((self, q_grid, k_grid, index))
        return index

    monkeypatch.setattr(MultiScalePoolingAttention, "time_index", recording)
    model.forward_tokens(spec, patch_drop=0.2, generator=torch.Generator().manual_seed(3))
    # the same draw of kept columns as the encoder made
    _, kept = drop_time_columns(model.patch_embed(spec), 0.2, torch.Generator().manual_seed(3), return_columns=True)
    assert kept.shape == (2, 81)
    position = kept.double()  # true position of each column, in columns of the current stage's input grid
    for attention, q_grid, k_grid, index in seen:
        assert index.shape == (2, q_grid[1], k_grid[1])  # per clip: the clips dropped different columns
        finer = min(attention.stride_q, attention.stride_kv)
        q_pos, k_pos = position[:, :: attention.stride_q][:, : q_grid[1]], position[:, :: attention.stride_kv][:, : k_grid[1]]
        true = torch.round((q_pos[:, :, None] - k_pos[:, None, :]) / finer).long()
        limit = attention.max_distance[1]
        assert torch.equal(index - limit, true.clamp(-limit, limit))
        position = q_pos / attention.stride_q
    assert len(seen) == len(model.ordered_blocks())
    # and they are not the compacted distances: the gaps show in every clip's first-stage index
    attention, q_grid, k_grid, index = seen[0]
    compact = relative_distance_index(q_grid[1], k_grid[1], attention.stride_q, attention.stride_kv, attention.max_distance[1], spec.device)
    assert all(not torch.equal(index[clip], compact) for clip in range(2))


def test_patch_drop_positions_change_the_output():
    """The true positions are used: the same kept columns at compacted positions give another output."""
    torch.manual_seed(0)
    model = mast_tiny().eval()
    spec = torch.randn(1, 128, 400)
    with torch.no_grad():
        dropped = model.forward_tokens(spec, patch_drop=0.3, generator=torch.Generator().manual_seed(1)).clip
        image, kept = drop_time_columns(model.patch_embed(spec), 0.3, torch.Generator().manual_seed(1), return_columns=True)
        grid, x = (image.shape[2], image.shape[3]), image.flatten(2).transpose(1, 2)
        true, compact = x, x
        true_grid = compact_grid = grid
        positions = kept.float()
        for stage in model.stages:
            true, true_grid, _, positions = stage(true, true_grid, None, positions)
            compact, compact_grid, _, _ = stage(compact, compact_grid, None, None)
    torch.testing.assert_close(model.norm(true).mean(1), dropped)
    assert not torch.allclose(model.norm(compact).mean(1), dropped, atol=1e-4)
