import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from mast_core.ast import ast_tiny
from mast_core.checkpoint import CheckpointError, FeatureSettings, load_encoder, save_encoder
from mast_core.mast import mast_tiny


@pytest.mark.parametrize("factory", [mast_tiny, ast_tiny])
def test_round_trip_gives_identical_embeddings(tmp_path, factory):
    torch.manual_seed(0)
    model = factory(max_frames=512).eval()
    features = FeatureSettings(mean=-3.5, std=4.0)
    save_encoder(model, tmp_path / "export", features=features)
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["config.json", "encoder.safetensors"]
    loaded, loaded_features = load_encoder(tmp_path / "export")
    assert loaded_features == features
    assert type(loaded) is type(model) and not loaded.training
    spec = torch.randn(2, 128, 400)
    with torch.no_grad():
        assert torch.equal(model(spec), loaded(spec))


def test_shape_mismatch_names_the_key(tmp_path):
    directory = save_encoder(mast_tiny(), tmp_path / "export")
    weights = directory / "encoder.safetensors"
    state = load_file(str(weights))
    state["norm.weight"] = torch.ones(7)
    del state["norm.bias"]
    state["extra.weight"] = torch.ones(1)
    save_file(state, str(weights))
    with pytest.raises(CheckpointError) as error:
        load_encoder(directory)
    message = str(error.value)
    assert "norm.weight: checkpoint (7,) vs model (256,)" in message
    assert "missing keys ['norm.bias']" in message
    assert "unexpected keys ['extra.weight']" in message
    assert str(weights) in message


def test_bad_config_is_reported_with_the_file(tmp_path):
    directory = save_encoder(mast_tiny(), tmp_path / "export")
    config_path = directory / "config.json"
    config = json.loads(config_path.read_text())
    config["arch"] = "resnet"
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="unknown encoder architecture 'resnet'"):
        load_encoder(directory)
    config["arch"], config["model"]["depths_typo"] = "mast", [1]
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="depths_typo"):
        load_encoder(directory)
    config_path.write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json: not valid JSON"):
        load_encoder(directory)
    with pytest.raises(CheckpointError, match="not found"):
        load_encoder(tmp_path / "missing")
