"""Tests for mast_core.ast: shapes at any length, padding masks, patch-drop, config and ImageNet init."""

from __future__ import annotations

import json

import pytest
import timm
import torch
import torch.nn.functional as F

from mast_core.ast import AST, adapt_imagenet_state_dict, ast_base, ast_tiny
from mast_core.layers import resize_patch_kernel


@pytest.fixture(scope="module")
def tiny() -> AST:
    torch.manual_seed(0)
    return ast_tiny().eval()


@pytest.mark.parametrize("frames", [98, 512, 1024, 3000])
def test_forward_any_length(tiny: AST, frames: int) -> None:
    with torch.no_grad():
        clip = tiny(torch.randn(2, 128, frames))
    assert clip.shape == (2, tiny.embed_dim)
    assert torch.isfinite(clip).all()


def test_patch_grid_1024_frames(tiny: AST) -> None:
    assert tiny.patch_grid(1024) == (12, 101)
    with torch.no_grad():
        out = tiny.forward_tokens(torch.randn(1, 128, 1024))
    assert out.grid == (12, 101)
    # 1 + 1212 tokens: the cls token (the clip embedding) and the patch tokens
    assert out.clip.shape == (1, tiny.embed_dim) and out.tokens.shape == (1, 1212, tiny.embed_dim)


def test_position_table_truncates_and_interpolates(tiny: AST) -> None:
    table = tiny.grid_pos_embed.detach()
    assert table.shape == (1, tiny.embed_dim, 12, 101)
    assert torch.equal(tiny.positions_for(50), table[..., :50])
    assert torch.equal(tiny.positions_for(101), table)
    # Beyond the stored table: each (channel, frequency row) is stretched linearly along time,
    # exactly a 1-D linear F.interpolate of that row (half-pixel centres, no corner alignment).
    rows = table.reshape(1, tiny.embed_dim * 12, 101)
    for columns in (102, 299):
        expected = F.interpolate(rows, size=columns, mode="linear", align_corners=False).reshape(1, tiny.embed_dim, 12, columns)
        torch.testing.assert_close(tiny.positions_for(columns), expected, atol=1e-6, rtol=0)
    # and the forward pass uses them: a clip of 299 time columns sees the interpolated table
    frames = 10 * 298 + 16
    assert tiny.patch_grid(frames) == (12, 299)
    spec = torch.randn(1, 128, frames)
    with torch.no_grad():
        grid = tiny.patch_embed(spec) + expected
        cls = tiny.cls_token + tiny.cls_pos_embed
        manual = torch.cat([cls, grid.flatten(2).transpose(1, 2)], dim=1)
        for block in tiny.blocks:
            manual = block(manual)
        torch.testing.assert_close(tiny(spec), tiny.norm(manual)[:, 0], atol=1e-5, rtol=1e-5)


def test_ast_base_size_and_short_forward() -> None:
    model = ast_base().eval()
    params = sum(p.numel() for p in model.parameters())
    print(f"ast_base parameters: {params / 1e6:.2f} M")
    assert 85e6 < params < 88e6
    with torch.no_grad():
        assert model(torch.randn(1, 128, 98)).shape == (1, 768)


def test_ast_tiny_size() -> None:
    params = sum(p.numel() for p in ast_tiny().parameters())
    print(f"ast_tiny parameters: {params / 1e6:.2f} M")
    assert 1e6 < params < 3e6


@pytest.mark.parametrize("padded_frames", [400, 1500])  # inside and beyond the stored table
def test_padded_batch_matches_single_clips(tiny: AST, padded_frames: int) -> None:
    torch.manual_seed(1)
    lengths = torch.tensor([padded_frames, padded_frames - 137, 98, 16])
    spec = torch.randn(len(lengths), 128, padded_frames)
    for row, length in enumerate(lengths.tolist()):
        spec[row, :, length:] = 100.0  # garbage in the padding must not leak in
    with torch.no_grad():
        batched = tiny(spec, lengths)
        for row, length in enumerate(lengths.tolist()):
            alone = tiny(spec[row : row + 1, :, :length])[0]
            torch.testing.assert_close(batched[row], alone, atol=1e-5, rtol=1e-5)


def test_bad_input_raises(tiny: AST) -> None:
    with pytest.raises(ValueError, match="mel bins"):
        tiny(torch.randn(1, 64, 200))
    with pytest.raises(ValueError, match="transposed"):
        tiny(torch.randn(1, 200, 128))
    with pytest.raises(ValueError, match="fewer than one patch"):
        tiny(torch.randn(1, 128, 10))
    with pytest.raises(ValueError, match=r"\(batch, mel bins, frames\)"):
        tiny(torch.randn(128, 200))
    spec = torch.randn(2, 128, 200)
    with pytest.raises(ValueError, match="one per clip"):
        tiny(spec, torch.tensor([200, 100, 50]))
    with pytest.raises(ValueError, match="integer"):
        tiny(spec, torch.tensor([200.0, 100.0]))
    with pytest.raises(ValueError, match="must be in"):
        tiny(spec, torch.tensor([201, 100]))
    with pytest.raises(ValueError, match="must be in"):
        tiny(spec, torch.tensor([200, 8]))
    with pytest.raises(ValueError, match="equal-length"):
        tiny(spec, torch.tensor([200, 100]), patch_drop=0.2)


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match="divisible"):
        ast_tiny(num_heads=5)
    with pytest.raises(ValueError, match="patch_size"):
        ast_tiny(max_frames=8)


def test_patch_drop_removes_time_columns(tiny: AST) -> None:
    spec = torch.randn(2, 128, 1024)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        out = tiny.forward_tokens(spec, patch_drop=0.2, generator=generator)
        kept = 101 - round(0.2 * 101)
        assert out.grid == (12, kept)
        assert out.clip.shape == (2, tiny.embed_dim) and out.tokens.shape == (2, 12 * kept, tiny.embed_dim)
        assert tiny(spec, patch_drop=0.2).shape == (2, tiny.embed_dim)
        torch.testing.assert_close(tiny(spec, patch_drop=0.0), tiny(spec), atol=0, rtol=0)


def test_drop_path_only_in_training() -> None:
    torch.manual_seed(0)
    model = ast_tiny(drop_path_rate=0.5)
    spec = torch.randn(2, 128, 98)
    model.eval()
    # In eval every residual branch is kept whole: the same weights without drop path compute the same.
    plain = ast_tiny(drop_path_rate=0.0)
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model(spec), plain.eval()(spec), atol=0, rtol=0)
    model.train()
    with torch.no_grad():
        assert not torch.allclose(model(spec), model(spec))


def test_config_round_trip() -> None:
    model = ast_tiny(patch_stride=12, max_frames=512, drop_path_rate=0.1)
    config = model.config()
    rebuilt = AST(**json.loads(json.dumps(config)))
    assert rebuilt.config() == config
    assert AST.arch == "ast" and model.arch == "ast"
    original = {key: value.shape for key, value in model.state_dict().items()}
    assert {key: value.shape for key, value in rebuilt.state_dict().items()} == original


# ------------------------------------------------------------------ ImageNet initialisation


def _saved_and_loaded(model: torch.nn.Module, tmp_path) -> dict[str, torch.Tensor]:
    path = tmp_path / "imagenet.pth"
    torch.save(model.state_dict(), path)
    return torch.load(path, map_location="cpu", weights_only=True)


def test_adapt_deit_distilled(tmp_path) -> None:
    source = timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False, depth=4)
    state = _saved_and_loaded(source, tmp_path)
    model = ast_tiny()
    adapted, unmapped = adapt_imagenet_state_dict(state, model)

    assert set(adapted) == set(model.state_dict())
    assert unmapped == ["dist_token", "head.weight", "head.bias", "head_dist.weight", "head_dist.bias"]
    rgb_sum = state["patch_embed.proj.weight"].sum(dim=1, keepdim=True)
    torch.testing.assert_close(adapted["patch_embed.proj.weight"], rgb_sum)
    cls_and_dist = state["pos_embed"][:, :2].mean(dim=1, keepdim=True)
    torch.testing.assert_close(adapted["cls_pos_embed"], cls_and_dist)
    assert adapted["grid_pos_embed"].shape == (1, 192, 12, 101)
    for index in range(4):
        torch.testing.assert_close(adapted[f"blocks.{index}.attn.qkv.weight"], state[f"blocks.{index}.attn.qkv.weight"])
    model.load_state_dict(adapted, strict=True)
    with torch.no_grad():
        assert torch.isfinite(model.eval()(torch.randn(1, 128, 300))).all()


def test_adapted_model_computes_what_timm_computes(tmp_path) -> None:
    """On an image-shaped grid the adapted AST must equal the source ViT on a grey image.

    This pins the stem RGB sum, the position layout (rows = frequency), the qkv layout and the
    layer-scale folding all at once.
    """
    torch.manual_seed(0)
    source = timm.create_model("vit_tiny_patch16_224", pretrained=False, depth=2, init_values=0.1).eval()
    with torch.no_grad():  # move parameters off their init (zero biases, ones LayerNorms)
        for param in source.parameters():
            param.add_(0.02 * torch.randn_like(param))
    model = ast_tiny(depth=2, patch_stride=16, num_mel_bins=224, max_frames=224).eval()
    adapted, unmapped = adapt_imagenet_state_dict(_saved_and_loaded(source, tmp_path), model)
    assert unmapped == ["head.weight", "head.bias"]
    model.load_state_dict(adapted, strict=True)
    image = torch.randn(2, 224, 224)
    with torch.no_grad():
        expected = source.forward_features(image[:, None].expand(-1, 3, -1, -1))[:, 0]
        torch.testing.assert_close(model(image), expected, atol=1e-5, rtol=1e-5)


def test_adapt_mismatch_raises() -> None:
    state = timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False, depth=4).state_dict()
    with pytest.raises(ValueError, match=r"width mismatch.*patch_embed\.proj\.weight.*\(192, 3, 16, 16\)"):
        adapt_imagenet_state_dict(state, ast_tiny(embed_dim=96))
    with pytest.raises(ValueError, match=r"depth mismatch.*4 blocks.*model has 2"):
        adapt_imagenet_state_dict(state, ast_tiny(depth=2))
    with pytest.raises(ValueError, match=r"blocks\.0\.mlp\.fc1\.weight.*\(768, 192\).*\(384, 192\)"):
        adapt_imagenet_state_dict(state, ast_tiny(mlp_ratio=2.0))


def test_adapt_resizes_stem_kernel() -> None:
    state = timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False, depth=4).state_dict()
    model = ast_tiny(patch_size=8, patch_stride=8)
    adapted, _ = adapt_imagenet_state_dict(state, model)
    assert adapted["patch_embed.proj.weight"].shape == (192, 1, 8, 8)
    model.load_state_dict(adapted, strict=True)


def test_resize_patch_kernel_preserves_responses() -> None:
    torch.manual_seed(0)
    kernel = torch.randn(4, 1, 16, 16)
    bigger = resize_patch_kernel(kernel, 24)
    patch = torch.randn(3, 1, 16, 16)
    upsampled = torch.nn.functional.interpolate(patch, size=(24, 24), mode="bilinear", align_corners=False)
    original = torch.einsum("bchw,dchw->bd", patch, kernel)
    resized = torch.einsum("bchw,dchw->bd", upsampled, bigger)
    torch.testing.assert_close(resized, original, atol=1e-3, rtol=1e-3)
