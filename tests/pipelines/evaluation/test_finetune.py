"""The fine-tune protocol: layer-wise decay and schedule (unit), and a Train-in-Tune sweep with real
Ray Tune, Ray Train, Ray Data and MLflow on fixture shards."""

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from mlflow import MlflowClient

from fixtures.layouts import write_layout
from fixtures.services import mlflow_store
from mast_core.ast import ast_tiny
from mast_core.checkpoint import save_encoder
from mast_core.finetune import EncoderClassifier, FinetuneSettings, encoder_layer_ids, layer_decay_groups, lr_factor
from mast_core.mast import mast_tiny
from pipelines.common.checkpoints import resolve_encoder
from pipelines.common.config import ConfigError
from pipelines.data.ingest import IngestSettings, ingest
from pipelines.evaluation.spaces import load_space
from pipelines.evaluation.sweep import run_sweep
from pipelines.evaluation.tasks import load_task

QUIET = lambda line: None  # noqa: E731
SPACE = """protocol: finetune
num_samples: 2
scheduler: {type: fifo}
resources: {cpu: 1}
space:
  lr: {loguniform: [1.0e-3, 1.0e-2]}
  encoder_lr: {loguniform: [1.0e-5, 1.0e-4]}
  layer_decay: {choice: [0.75, 1.0]}
  batch_size: 8
  mixup_ratio: 0.2
  freq_mask: 8
  time_mask: 8
  max_epochs: 2
  warmup_epochs: 1
  patience: 2
"""


@pytest.mark.parametrize("factory", [mast_tiny, ast_tiny])
def test_layer_decay_groups_scale_by_depth(factory):
    model = EncoderClassifier(factory(), num_classes=5)
    ids, blocks = encoder_layer_ids(model.encoder)
    assert set(ids.values()) == set(range(blocks + 2))  # stem, every block, the final norm
    groups = layer_decay_groups(model, head_lr=1e-2, encoder_lr=1e-3, layer_decay=0.5, weight_decay=0.05)
    owner = {id(p): g for g in groups for p in g["params"]}
    assert len(owner) == sum(1 for _ in model.parameters())  # every parameter in exactly one group
    assert owner[id(model.head.weight)]["lr"] == 1e-2 and owner[id(model.head.bias)]["weight_decay"] == 0.0
    for name, param in model.encoder.named_parameters():
        group = owner[id(param)]
        assert group["lr"] == pytest.approx(1e-3 * 0.5 ** (blocks + 1 - ids[name]))
        assert group["weight_decay"] == (0.0 if param.ndim <= 1 or "pos" in name or "token" in name else 0.05)
    stem = next(n for n in ids if n.startswith("patch_embed.proj.weight"))
    assert owner[id(dict(model.encoder.named_parameters())[stem])]["lr"] == pytest.approx(1e-3 * 0.5 ** (blocks + 1))


def test_schedule_and_settings():
    assert [round(lr_factor(e, 5, 1), 4) for e in range(5)] == [0.5, 1.0, 0.8536, 0.5, 0.1464]
    assert lr_factor(0, 3, 0) == 1.0
    with pytest.raises(ValueError, match="layer_decay"):
        FinetuneSettings(layer_decay=1.5).validate()
    model = EncoderClassifier(mast_tiny(), num_classes=3, dropout=0.1)
    logits = model(torch.randn(2, 128, 98), torch.tensor([98, 60]))
    assert logits.shape == (2, 3)


def test_finetune_space_keys_are_checked(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("protocol: finetune\nspace: {lr: 0.1, patiense: 3}\n")
    with pytest.raises(ConfigError, match="space.patiense: not a hyperparameter of the finetune protocol"):
        load_space("any", path, "finetune")
    path.write_text("space: {lr: 0.1, encoder_lr: 0.01}\n")
    with pytest.raises(ConfigError, match="space.encoder_lr: not a hyperparameter of the linear protocol"):
        load_space("any", path)
    path.write_text(SPACE)
    with pytest.raises(ConfigError, match="protocol is 'finetune' but the sweep asks for 'linear'"):
        load_space("any", path, "linear")
    for task in ("sc_v1", "us8k", "voxceleb1"):
        assert load_space(task, protocol="finetune").protocol == "finetune"


def test_checkpoint_shortcuts(tmp_path):
    folder = resolve_encoder("random:mast_tiny", tmp_path)
    assert folder == str(tmp_path / "encoders" / "random-mast_tiny-seed0")
    assert (Path(folder) / "encoder.safetensors").is_file()
    assert resolve_encoder("random:mast_tiny", tmp_path) == folder  # exported once
    with pytest.raises(ConfigError, match="architecture 'mast_huge'"):
        resolve_encoder("random:mast_huge", tmp_path)
    with pytest.raises(ConfigError, match="local timm checkpoint"):
        resolve_encoder("imagenet:mast_small:/nowhere/mvitv2.pth", tmp_path)


def _poison_test_labels(shards, bad_label: int) -> int:
    """Give every test clip a label no classifier has: a test clip reaching a trial would crash it."""
    poisoned = 0
    for path in sorted((shards / "shards").glob("*.parquet")):
        table = pq.read_table(path)
        splits = table.column("split").to_pylist()
        labels = [[bad_label] if split == "test" else label for split, label in zip(splits, table.column("label_indices").to_pylist())]
        poisoned += splits.count("test")
        column = table.schema.get_field_index("label_indices")
        pq.write_table(table.set_column(column, table.schema.field(column), pa.array(labels, pa.list_(pa.int32()))), path)
    return poisoned


@pytest.mark.slow
def test_finetune_sweep_trains_in_tune_and_never_sees_test(ray_local, tmp_path):
    write_layout("speech_commands", tmp_path / "raw", corrupt=False)
    shards = tmp_path / "shards"
    ingest("speech_commands", tmp_path / "raw", shards, settings=IngestSettings(shard_mb=0.05), progress=QUIET)
    assert _poison_test_labels(shards, bad_label=10_000) > 0
    (tmp_path / "fx_sc.yaml").write_text(
        f"name: fx_sc\ndataset: speech_commands\nshards: {shards}\nframes_per_clip: 98\n"
        "splits: {train: train, validation: validation, test: test}\n"
    )
    (tmp_path / "space.yaml").write_text(SPACE)
    torch.manual_seed(0)
    encoder = save_encoder(mast_tiny(), tmp_path / "encoder")
    tracking = mlflow_store(tmp_path / "mlflow.db")
    summary = run_sweep(
        load_task(tmp_path / "fx_sc.yaml"),
        encoder,
        load_space("any", tmp_path / "space.yaml", "finetune"),
        protocol="finetune",
        storage=tmp_path / "tune",
        tracking_uri=tracking,
        progress=QUIET,
    )
    assert summary["trials"] == 2 and 0.0 < summary["val_accuracy"] <= 1.0
    # every test label is out of range, so the refit on the test clips scores exactly 0 and never crashes
    assert summary["test_scores"] == [0.0]
    client = MlflowClient(tracking)
    parent = client.get_run(summary["parent_run_id"])
    assert parent.data.tags["protocol"] == "finetune" and "best.encoder_lr" in parent.data.params
    experiment = client.get_experiment_by_name("mast-sweeps")
    kids = client.search_runs([experiment.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{summary['parent_run_id']}'")
    assert len(kids) == 2
    # one trial at a time (max_concurrent_finetune_trials: a trial's Train worker and its 2 data CPUs
    # fill 3 of the 4 logical CPUs): the limit reaches Tune, which once ignored it with a warning
    spans = sorted((kid.info.start_time, kid.info.end_time) for kid in kids)
    assert spans[0][1] <= spans[1][0], spans
    manifest = json.loads((shards / "manifest.json").read_text())
    for kid in kids:  # per-epoch validation metrics, two epochs each
        history = client.get_metric_history(kid.info.run_id, "epoch_val_accuracy")
        assert len(history) == 2 and "encoder_lr" in kid.data.params
        # every epoch trained on exactly the train clips and scored exactly the validation clips: a
        # test clip in validation would crash nothing (validation is an argmax), but it would count
        for key, split in (("train_clips", "train"), ("val_clips", "validation")):
            counts = [m.value for m in client.get_metric_history(kid.info.run_id, key)]
            assert counts == [manifest["splits"][split]] * 2, (key, counts)
    shutil.rmtree(tmp_path / "tune", ignore_errors=True)
