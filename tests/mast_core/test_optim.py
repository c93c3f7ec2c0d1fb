"""Tests for mast_core.optim: weight decay on weight matrices only."""

import pytest
import torch

from mast_core import SSAST, SSMAST
from mast_core.ast import ast_tiny
from mast_core.mast import mast_tiny
from mast_core.optim import decays, weight_decay_groups


@pytest.mark.parametrize(
    "build", [lambda: SSMAST(mast_tiny(), proj_dim=8, queue_size=8), lambda: SSAST(ast_tiny(patch_stride=16), num_masked=4)]
)
def test_norms_biases_tokens_and_position_tables_get_no_decay(build):
    objective = build()
    decayed, kept = weight_decay_groups(objective, 0.05)
    assert (decayed["weight_decay"], kept["weight_decay"]) == (0.05, 0.0)
    trainable = {name for name, param in objective.named_parameters() if param.requires_grad}
    assert set(decayed["names"]) | set(kept["names"]) == trainable and not set(decayed["names"]) & set(kept["names"])
    assert not any(name.startswith(("teacher.", "teacher_head.")) for name in trainable)  # the EMA teacher is not trained
    modules = dict(objective.named_modules())
    for name in decayed["names"]:  # only weight matrices of linear layers and convolutions
        owner = modules[name.rsplit(".", 1)[0]]
        assert name.endswith(".weight") and isinstance(owner, torch.nn.Linear | torch.nn.Conv2d), name
    for name in kept["names"]:
        leaf = name.rsplit(".", 1)[-1]
        owner = modules.get(name.rsplit(".", 1)[0])
        assert (
            leaf == "bias" or isinstance(owner, torch.nn.LayerNorm) or leaf.startswith("rel_pos_") or leaf.endswith(("token", "pos_embed"))
        ), name
    kinds = {name.rsplit(".", 1)[-1] for name in kept["names"]}
    assert "bias" in kinds and ({"rel_pos_time", "rel_pos_freq"} <= kinds or {"cls_token", "grid_pos_embed"} <= kinds)


def test_decays_reads_the_leaf_name():
    matrix, vector = torch.nn.Parameter(torch.zeros(2, 2)), torch.nn.Parameter(torch.zeros(2))
    assert decays("stages.0.blocks.0.attn.qkv.weight", matrix)
    assert not decays("stages.0.blocks.0.attn.rel_pos_time", matrix)
    assert not decays("stages.0.blocks.0.attn.qkv.bias", vector)
    assert not decays("grid_pos_embed", matrix) and not decays("cls_token", matrix)
