"""Streaming ingested shards through Ray Data (real Ray, real Parquet of real FLAC)."""

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from fixtures.damage import damaged_copy, truncate
from fixtures.layouts import write_layout
from mast_core.audio import decode_audio
from mast_core.features import log_mel, normalize, num_frames
from mast_core.views import AugmentSettings, ViewMaker
from pipelines.data.ingest import IngestSettings, ingest
from pipelines.data.stream import (
    DataConfigError,
    Source,
    StreamSettings,
    build_stream,
    decode_clips,
    frames_for_samples,
    mixture_files,
    read_paths,
    samples_for_frames,
    to_torch,
    usable_batches,
)

QUIET = lambda line: None  # noqa: E731
FRAMES = 98  # 1 s clips keep the tests fast


@pytest.fixture(scope="module")
def shards(ray_local, tmp_path_factory):
    """Speech Commands and US8K fixtures ingested without corrupt files (several shards each)."""
    base = tmp_path_factory.mktemp("stream")
    out = {}
    for dataset in ("speech_commands", "us8k"):
        write_layout(dataset, base / dataset, corrupt=False)
        ingest(dataset, base / dataset, base / f"{dataset}-shards", settings=IngestSettings(shard_mb=0.05), progress=QUIET)
        out[dataset] = base / f"{dataset}-shards"
    return out


def collect(dataset, *keys: str) -> list[dict[str, np.ndarray]]:
    """One pass (one epoch) over ``dataset``: for each key, {clip id: value}."""
    rows = [{} for _ in keys]
    for batch in dataset.iter_batches(batch_size=16):
        for position, clip_id in enumerate(batch["id"]):
            for index, key in enumerate(keys):
                rows[index][str(clip_id)] = batch[key][position]
    return rows


def test_frame_arithmetic():
    assert frames_for_samples(16000) == 98
    assert frames_for_samples(samples_for_frames(1024)) == 1024
    assert frames_for_samples(399) == 0


def test_the_stream_ships_int16_waveforms_in_an_arrow_tensor_column(shards):
    """No pickled-object fallback: the decoded blocks hold the waveforms as a fixed-shape Arrow tensor."""
    import pyarrow as pa
    from ray.data.extensions import ArrowTensorType, ArrowTensorTypeV2

    source = Source(str(shards["speech_commands"]), splits=("train",))
    stream = build_stream([source], StreamSettings(frames_per_clip=FRAMES, mode="pretrain", batch_size=8, seed=3))
    block = stream.limit(8).to_arrow_refs()[0]
    import ray

    schema = ray.get(block).schema
    wave = schema.field("wave").type
    assert isinstance(wave, (ArrowTensorType, ArrowTensorTypeV2)), schema
    assert wave.storage_type.value_type == pa.int16() and wave.shape == (samples_for_frames(FRAMES),)
    assert schema.field("length").type == pa.int64() and schema.field("label").type == pa.int64()
    # the CPU feature path ("tasks"): the log-mel as a float32 tensor column, not pickled either
    stream = build_stream([source], StreamSettings(frames_per_clip=FRAMES, mode="pretrain", batch_size=8, seed=3, features="tasks"))
    schema = ray.get(stream.limit(8).to_arrow_refs()[0]).schema
    spec = schema.field("spec").type
    assert isinstance(spec, (ArrowTensorType, ArrowTensorTypeV2)), schema
    assert spec.storage_type.value_type == pa.float32() and spec.shape == (128, FRAMES)
    assert "wave" not in schema.names


def test_device_and_task_feature_paths_give_the_same_views(shards):
    """Parity on CPU: log-mel in the decoding tasks (shipped as ``spec``) or in the consumer from the
    shipped waveforms: the same normalised features for every clip, and the same augmented views."""
    source = Source(str(shards["us8k"]))
    settings = dict(frames_per_clip=FRAMES, mode="eval", batch_size=8)
    (waves,) = collect(build_stream([source], StreamSettings(**settings, features="device")), "wave")
    (specs,) = collect(build_stream([source], StreamSettings(**settings, features="tasks")), "spec")
    assert set(waves) == set(specs) and len(waves) > 8
    ids = sorted(waves)
    device_in = torch.from_numpy(np.stack([waves[c] for c in ids]))
    tasks_in = torch.from_numpy(np.stack([specs[c] for c in ids]))
    assert tasks_in.shape == (len(ids), 128, FRAMES) and tasks_in.dtype == torch.float32
    (plain_device,) = ViewMaker(-5.0, 4.0)(device_in)
    (plain_tasks,) = ViewMaker(-5.0, 4.0)(tasks_in)
    torch.testing.assert_close(plain_device, plain_tasks, rtol=0, atol=1e-5)
    assert plain_device.std() > 0.1  # real features, not zeros
    views = [ViewMaker(-5.0, 4.0, AugmentSettings(), seed=7, views=2) for _ in range(2)]
    for maker, batch in zip(views, (device_in, tasks_in)):
        maker(batch[:8], ids[:8], epoch=0)  # fills the mixup memory the same way
    for a, b in zip(views[0](device_in[8:], ids[8:], epoch=0), views[1](tasks_in[8:], ids[8:], epoch=0)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-4)


def test_pretraining_views_differ_between_views_and_epochs(shards):
    source = Source(str(shards["speech_commands"]), splits=("train",))
    manifest = json.loads((shards["speech_commands"] / "manifest.json").read_text())
    stream = build_stream([source], StreamSettings(frames_per_clip=FRAMES, mode="pretrain", batch_size=8, seed=3))
    (first,) = collect(stream, "wave")
    (second,) = collect(stream, "wave")  # the same dataset iterated again: the next epoch
    assert len(first) == manifest["splits"]["train"] == len(second)
    clip = sorted(first)[0]
    assert first[clip].shape == (samples_for_frames(FRAMES),) and first[clip].dtype == np.int16
    # 1 s clips, a 0.995 s window: a fresh random window every epoch for some clips
    assert any(not np.array_equal(first[c], second[c]) for c in first)
    # what a train worker does with a batch: two augmented views, different from each other and
    # from the next epoch's views of the same batch
    ids = sorted(first)[:8]
    waves = torch.from_numpy(np.stack([first[c] for c in ids]))
    maker = ViewMaker(-5.0, 4.0, AugmentSettings(), seed=3, views=2)
    maker(waves, ids, epoch=0)  # fills the mixup memory
    view_a, view_b = maker(waves, ids, epoch=0)
    next_a, _ = maker(waves, ids, epoch=1)
    assert view_a.shape == (8, 128, FRAMES) and view_a.dtype == torch.float32
    assert not torch.allclose(view_a, view_b)  # two views of one clip
    assert not torch.allclose(view_a, next_a)  # fresh augmentation next epoch
    assert torch.isfinite(view_a).all() and torch.isfinite(view_b).all()


def test_downstream_eval_stream_is_deterministic_with_labels_and_lengths(shards):
    source = Source(str(shards["us8k"]))
    manifest = json.loads((shards["us8k"] / "manifest.json").read_text())
    stream = build_stream([source], StreamSettings(frames_per_clip=300, mode="eval", batch_size=8))
    first, lengths, labels = collect(stream, "wave", "length", "label")
    (second,) = collect(stream, "wave")
    assert set(first) == set(second) and len(first) == manifest["written"]
    for clip in first:
        np.testing.assert_array_equal(first[clip], second[clip])
    # Each clip's label and frame count, exactly, from its Parquet row: the first label index, and
    # the kaldi frame count of its samples (at most 300, at least 16: a padded clip keeps one patch).
    rows = {
        row["id"]: row
        for shard in manifest["shards"]
        for row in pq.read_table(shards["us8k"] / shard["file"], columns=["id", "audio", "num_samples", "label_indices"]).to_pylist()
    }
    assert set(rows) == set(first)
    assert {clip: int(label) for clip, label in labels.items()} == {clip: row["label_indices"][0] for clip, row in rows.items()}
    expected_lengths = {clip: max(16, min(300, num_frames(row["num_samples"]))) for clip, row in rows.items()}
    assert {clip: int(n) for clip, n in lengths.items()} == expected_lengths
    assert min(expected_lengths.values()) < 300  # fixture clips are shorter than 3 s: padding is exercised
    assert len({row["label_indices"][0] for row in rows.values()}) > 1  # a label mix-up between clips shows
    # features: the consumer's log-mel of each shipped waveform equals the reference computed
    # directly from the clip's FLAC (decoded, centred or zero-padded, log-mel, normalised)
    samples, views = samples_for_frames(300), ViewMaker(-5.0, 4.0)
    for clip in sorted(first)[:6]:
        wave = decode_audio(rows[clip]["audio"])
        offset = max(0, (len(wave) - samples) // 2)
        reference = torch.zeros(samples)
        reference[: min(samples, len(wave))] = wave[offset : offset + samples]
        (spec,) = views(torch.from_numpy(first[clip][None]))
        torch.testing.assert_close(spec[0], normalize(log_mel(reference), -5.0, 4.0), rtol=0, atol=1e-5)


def test_split_filter_and_torch_batches(shards):
    source = Source(str(shards["speech_commands"]), splits=("validation",))
    manifest = json.loads((shards["speech_commands"] / "manifest.json").read_text())
    stream = build_stream([source], StreamSettings(frames_per_clip=FRAMES, mode="train", batch_size=4))
    total = 0
    for batch in stream.iter_torch_batches(batch_size=4, local_shuffle_buffer_size=8, collate_fn=to_torch):
        assert batch["wave"].dtype == torch.int16 and batch["wave"].shape[1:] == (samples_for_frames(FRAMES),)
        total += len(batch["label"])
    assert total == manifest["splits"]["validation"]


def test_mixture_weights(shards):
    sc, us = str(shards["speech_commands"]), str(shards["us8k"])
    n_sc = len(mixture_files([Source(sc)]))
    n_us = len(mixture_files([Source(us)]))
    assert n_sc > 1 and n_us > 1
    mixed = mixture_files([Source(sc, weight=2.0), Source(us, weight=0.5)])
    assert len(mixed) == 2 * n_sc + max(1, round(0.5 * n_us))
    assert mixed == mixture_files([Source(sc, weight=2.0), Source(us, weight=0.5)])  # deterministic
    with pytest.raises(DataConfigError, match="weight must be positive"):
        mixture_files([Source(sc, weight=0)])
    with pytest.raises(DataConfigError, match="none of the splits"):
        mixture_files([Source(sc, splits=("nope",))])


def test_bad_sources_and_settings_fail_before_work(tmp_path):
    with pytest.raises(DataConfigError, match="manifest.json not found"):
        mixture_files([Source(str(tmp_path))])
    with pytest.raises(DataConfigError, match="mode must be one of"):
        StreamSettings(mode="finetune").validate()
    with pytest.raises(DataConfigError, match="features must be one of"):
        StreamSettings(features="gpu").validate()


def test_decoding_runs_without_ray(shards):
    manifest = json.loads((shards["us8k"] / "manifest.json").read_text())
    table = pq.read_table(shards["us8k"] / manifest["shards"][0]["file"])
    batch = {name: table.column(name).to_numpy(zero_copy_only=False) for name in ("id", "audio", "label_indices", "split")}
    out = decode_clips(batch, StreamSettings(frames_per_clip=FRAMES, mode="pretrain", seed=1))
    assert out["wave"].shape == (table.num_rows, samples_for_frames(FRAMES)) and out["wave"].dtype == np.int16
    # the same batch decoded again outside Ray: the same windows (seeded by its clip ids)
    np.testing.assert_array_equal(out["wave"], decode_clips(batch, StreamSettings(frames_per_clip=FRAMES, mode="pretrain", seed=1))["wave"])


def test_a_clip_that_no_longer_decodes_comes_through_flagged_not_raised(shards, tmp_path):
    """A shard damaged after ingest (one row's FLAC frames zeroed, header kept): decoding the batch
    does not raise; the damaged row carries the decoder's error and silence, the others decode as before."""
    damaged = damaged_copy(shards["us8k"], tmp_path / "damaged", split=None, shards_hit=1)
    manifest = json.loads((shards["us8k"] / "manifest.json").read_text())
    columns = ("id", "audio", "label_indices", "split")

    def batch_of(root: Path) -> dict:
        table = pq.read_table(root / manifest["shards"][0]["file"])
        return {name: table.column(name).to_numpy(zero_copy_only=False) for name in columns}

    settings = StreamSettings(frames_per_clip=FRAMES, mode="pretrain", seed=1)
    clean, broken = decode_clips(batch_of(shards["us8k"]), settings), decode_clips(batch_of(tmp_path / "damaged"), settings)
    bad = [i for i, clip in enumerate(broken["id"]) if clip in damaged]
    assert len(damaged) == 1 and len(bad) == 1
    assert "psf_fseek" in broken["error"][bad[0]] and not broken["wave"][bad[0]].any()
    assert [bool(error) for error in broken["error"]] == [i in bad for i in range(len(broken["id"]))]
    assert not any(clean["error"])
    good = [i for i in range(len(broken["id"])) if i not in bad]
    np.testing.assert_array_equal(broken["wave"][good], clean["wave"][good])


def test_usable_batches_drop_flagged_clips_and_refill_to_the_batch_size():
    def batch(ids: list[str], bad: set[str]) -> dict:
        return {
            "wave": torch.tensor([[int(i)] for i in ids]),
            "id": list(ids),
            "error": ["boom" if clip in bad else "" for clip in ids],
        }

    stream = [batch(["1", "2", "3", "4"], {"2"}), batch(["5", "6", "7", "8"], set()), batch(["9", "10", "11", "12"], {"9", "12"})]
    heard = []
    out = list(usable_batches(iter(stream), 4, lambda ids, errors: heard.append((ids, errors))))
    # every batch full, the order kept, no bad clip left, each bad clip reported once; the 1 left over is dropped
    assert [b["id"] for b in out] == [["1", "3", "4", "5"], ["6", "7", "8", "10"]]
    assert [b["wave"].flatten().tolist() for b in out] == [[1, 3, 4, 5], [6, 7, 8, 10]]
    assert heard == [(["2"], ["boom"]), (["9", "12"], ["boom", "boom"])]
    # without a batch size (validation): a batch just loses its bad rows, an empty one is left out
    stream = [batch(["1", "2"], {"1", "2"}), batch(["3", "4"], {"4"})]
    assert [b["id"] for b in usable_batches(iter(stream), None, lambda ids, errors: None)] == [["3"]]
    # nothing bad: the very same batches come through
    clean = [batch(["1", "2"], set()), batch(["3", "4"], set())]
    assert [b["id"] for b in usable_batches(iter(clean), 2, lambda ids, errors: None)] == [["1", "2"], ["3", "4"]]


def test_a_missing_or_truncated_shard_fails_before_any_work_naming_the_file(shards, tmp_path):
    manifest = json.loads((shards["us8k"] / "manifest.json").read_text())
    root = tmp_path / "shards"
    damaged_copy(shards["us8k"], root, split=None, shards_hit=0)  # an undamaged copy
    files = [str(root / shard["file"]) for shard in manifest["shards"]]
    assert len(read_paths(files)[1]) == len(files)
    truncate(root / manifest["shards"][2]["file"])
    with pytest.raises(DataConfigError, match=rf"{manifest['shards'][2]['file']}: not a readable Parquet shard .*truncated\?"):
        read_paths(files)
    (root / manifest["shards"][1]["file"]).unlink()
    with pytest.raises(DataConfigError, match=rf"{manifest['shards'][1]['file']}: shard listed in its manifest.json but missing"):
        build_stream([Source(str(root))], StreamSettings(frames_per_clip=FRAMES, mode="eval"))


@pytest.mark.slow
def test_data_pipeline_feeds_a_two_worker_torch_trainer(shards, tmp_path):
    """Ray Data and a 2-worker TorchTrainer together on a 2-core machine, without the resource hang."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    def count_rows(config):  # defined here so Ray pickles it by value (tests/ is not importable on workers)
        import ray.train

        torch.set_num_threads(1)
        rows = 0
        for batch in ray.train.get_dataset_shard("train").iter_torch_batches(batch_size=4, collate_fn=to_torch):
            rows += len(batch["wave"])
        rank = ray.train.get_context().get_world_rank()
        (Path(config["out"]) / f"rows-{rank}").write_text(str(rows))

    manifest = json.loads((shards["speech_commands"] / "manifest.json").read_text())
    stream = build_stream(
        [Source(str(shards["speech_commands"]), splits=("train",))],
        StreamSettings(frames_per_clip=FRAMES, mode="pretrain", batch_size=8),
    )
    trainer = TorchTrainer(
        count_rows,
        train_loop_config={"out": str(tmp_path)},
        scaling_config=ScalingConfig(num_workers=2, use_gpu=False),
        datasets={"train": stream},
        run_config=RunConfig(name="data-train", storage_path=str(tmp_path)),
    )
    result = trainer.fit()
    assert result.error is None
    # Train splits the stream into equal halves (streaming_split(equal=True)): each worker gets
    # the same number of clips, and at most world_size - 1 clips of the epoch are left over.
    rows = [int((tmp_path / f"rows-{rank}").read_text()) for rank in (0, 1)]
    total = manifest["splits"]["train"]
    assert rows[0] == rows[1] > 0
    assert total - 1 <= sum(rows) <= total
