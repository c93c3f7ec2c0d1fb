"""ImageNet initialisation from local timm files built from randomly initialised timm models."""

import pytest
import timm
import torch

from mast_core.ast import ast_tiny
from mast_core.checkpoint import CheckpointError
from mast_core.imagenet import init_from_imagenet, resample_relative_table, resize_stem
from mast_core.mast import mast_small, mast_tiny


@pytest.fixture(scope="module")
def mvit_file(tmp_path_factory):
    torch.manual_seed(0)
    source = timm.create_model("mvitv2_small", pretrained=False)
    path = tmp_path_factory.mktemp("imagenet") / "mvitv2_small.pth"
    torch.save(source.state_dict(), path)
    return path, source.state_dict()


def test_mvitv2_small_maps_every_stem_attention_and_mlp_key(mvit_file):
    path, source = mvit_file
    model = mast_small()
    unmapped = init_from_imagenet(model, path)
    assert unmapped == ["head.fc.bias", "head.fc.weight"]
    state = model.state_dict()
    # every block weight is the timm one, bit for bit
    for name, tensor in source.items():
        if name.startswith("stages.") and "rel_pos" not in name:
            assert torch.equal(state[name], tensor), name
    assert torch.equal(state["norm.weight"], source["norm.weight"])
    # stem: RGB summed, 7x7 resized to 16x16
    assert state["patch_embed.proj.weight"].shape == (96, 1, 16, 16)
    torch.testing.assert_close(state["patch_embed.proj.weight"], resize_stem(source["patch_embed.proj.weight"], 16))
    assert torch.equal(state["patch_embed.proj.bias"], source["patch_embed.proj.bias"])


def test_relative_positions_keep_their_distance(mvit_file):
    _, source = mvit_file
    model = mast_small()
    init_from_imagenet(model, mvit_file[0])
    # Stage 1, block 0: timm's 56 x 56 grid with K/V stride 4 puts distance 0 at row 56 - 4.
    timm_table = source["stages.0.blocks.0.attn.rel_pos_w"]
    ours = model.stages[0].blocks[0].attn.rel_pos_time.detach()
    centre = (ours.shape[0] - 1) // 2
    for distance in (-40, -3, 0, 5, 50):
        assert torch.equal(ours[centre + distance], timm_table[52 + distance])
    # beyond what the image model saw (|d| > 55 patches) the edge value is kept
    assert torch.equal(ours[-1], timm_table[-1]) and torch.equal(ours[0], timm_table[0])
    # frequency axis: 12 patches, so only distances -11..11 are needed
    freq = model.stages[0].blocks[0].attn.rel_pos_freq.detach()
    assert torch.equal(freq, source["stages.0.blocks.0.attn.rel_pos_h"][52 - 11 : 52 + 12])


def test_resample_relative_table_for_q_coarser_than_k():
    # stage-3 transition in timm: q 14, k 28 on a 28 grid -> 55 rows, distance 0 at row 27
    table = torch.arange(55, dtype=torch.float)[:, None]
    ours = resample_relative_table(table, 9, key_ratio=1)
    assert ours[:, 0].tolist() == [23.0, 24.0, 25.0, 26.0, 27.0, 28.0, 29.0, 30.0, 31.0]


def test_imagenet_model_still_runs_on_audio(mvit_file):
    model = mast_small()
    init_from_imagenet(model, mvit_file[0])
    with torch.no_grad():
        assert torch.isfinite(model.eval()(torch.randn(1, 128, 1024))).all()


def test_width_mismatch_names_the_keys(mvit_file):
    with pytest.raises(CheckpointError, match="patch_embed.proj.weight"):
        init_from_imagenet(mast_tiny(), mvit_file[0])


def test_ast_from_deit_file(tmp_path):
    torch.manual_seed(0)
    source = timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False)
    path = tmp_path / "deit.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    model = ast_tiny(depth=len(source.blocks))
    unmapped = init_from_imagenet(model, path)
    assert "dist_token" in unmapped and any(k.startswith("head") for k in unmapped)
    # the weights in the model are the DeiT ones (not just a valid mapping of names)
    deit, state = source.state_dict(), model.state_dict()
    for index in range(len(source.blocks)):
        for name in ("attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "mlp.fc1.weight", "mlp.fc2.bias", "norm1.weight"):
            key = f"blocks.{index}.{name}"
            assert torch.equal(state[key], deit[key]), key
    assert torch.equal(state["norm.weight"], deit["norm.weight"]) and torch.equal(state["cls_token"], deit["cls_token"])
    torch.testing.assert_close(state["patch_embed.proj.weight"], deit["patch_embed.proj.weight"].sum(dim=1, keepdim=True))
    torch.testing.assert_close(state["cls_pos_embed"], deit["pos_embed"][:, :2].mean(dim=1, keepdim=True))
    assert torch.isfinite(model.eval()(torch.randn(1, 128, 300))).all()


def test_missing_or_unsafe_files_fail_clearly(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        init_from_imagenet(mast_tiny(), tmp_path / "nope.pth")
    bad = tmp_path / "pickled.pth"
    torch.save({"model": {"w": object()}}, bad)  # arbitrary object: weights_only refuses it
    with pytest.raises(CheckpointError, match="weights-only"):
        init_from_imagenet(mast_tiny(), bad)
