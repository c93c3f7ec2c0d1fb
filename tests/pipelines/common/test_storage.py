"""Locations as URIs (pipelines.common.storage), against a local folder and a real S3 API on 127.0.0.1."""

import json

import pytest

from pipelines.common import storage


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path) -> str:
    if request.param == "local":
        return str(tmp_path / "root")
    return request.getfixturevalue("s3_bucket") + "/some/prefix"


def test_read_write_list_copy_and_remove_anywhere(root, tmp_path):
    target = storage.join(root, "a", "b.json")
    assert not storage.exists(target)
    storage.write_text(target, json.dumps({"x": 1}))
    assert storage.is_file(target) and not storage.is_dir(target) and json.loads(storage.read_text(target)) == {"x": 1}
    storage.write_atomic(storage.join(root, "a", "c.bin"), b"\x00\x01")
    assert storage.read_bytes(storage.join(root, "a", "c.bin")) == b"\x00\x01"
    assert storage.listdir(storage.join(root, "a")) == ["b.json", "c.bin"]
    assert storage.listdir(storage.join(root, "nothing-here")) == []
    assert storage.modified(target) > 0
    # a folder both ways: local -> location -> local
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "f.txt").write_text("hello")
    storage.copy_tree(str(tmp_path / "tree"), storage.join(root, "tree"))
    storage.copy_tree(storage.join(root, "tree"), str(tmp_path / "back"))
    assert (tmp_path / "back" / "sub" / "f.txt").read_text() == "hello"
    storage.remove_tree(storage.join(root, "a"))
    assert not storage.exists(target)
    with pytest.raises(FileNotFoundError, match="b.json not found"):
        storage.read_bytes(target)


def test_locations_are_never_resolved_into_local_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert storage.absolute("s3://bucket/runs/") == "s3://bucket/runs"
    assert storage.absolute("runs") == str(tmp_path / "runs")
    assert storage.join("s3://bucket/runs", "exp", "encoder") == "s3://bucket/runs/exp/encoder"
    assert storage.name("s3://bucket/runs/exp/") == "exp"
    assert storage.is_uri("gs://b/x") and not storage.is_uri("/data/x") and storage.is_local("file:///data/x")
    assert str(storage.local_path("file:///data/x")) == "/data/x"
    with pytest.raises(storage.StorageError, match="a local path is needed"):
        storage.local_path("s3://bucket/x")


def test_bad_locations_fail_before_work_naming_the_uri(s3_bucket):
    assert storage.check_location(s3_bucket + "/new/prefix", "--out") == s3_bucket + "/new/prefix"
    with pytest.raises(storage.StorageError, match=r"--out s3://no-such-bucket-here/x: the bucket 'no-such-bucket-here' does not exist"):
        storage.check_location("s3://no-such-bucket-here/x", "--out")
    with pytest.raises(storage.StorageError, match=r"--checkpoint s3://.*/missing: not found"):
        storage.check_location(s3_bucket + "/missing", "--checkpoint", must_exist=True)
    with pytest.raises(storage.StorageError, match="unknown URI scheme nosuchscheme://"):
        storage.check_location("nosuchscheme://bucket/x", "--out")


def test_an_unreachable_endpoint_fails_in_seconds_with_what_to_check(s3_server, monkeypatch):
    import socket
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    storage.clear_cache()
    try:
        started = time.monotonic()
        with pytest.raises(storage.StorageError, match=r"run.storage s3://bucket/runs: cannot be reached .*AWS_ENDPOINT_URL"):
            storage.check_location("s3://bucket/runs", "run.storage")
        assert time.monotonic() - started < 60
    finally:
        monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
        storage.clear_cache()


def test_mast_ingest_into_a_missing_bucket_stops_with_one_line_before_ray_starts(s3_server, tmp_path, capsys):
    import ray

    from pipelines.cli import main

    (tmp_path / "raw").mkdir()
    was_running = ray.is_initialized()
    with pytest.raises(SystemExit) as stopped:
        main(["ingest", "folder", "--root", str(tmp_path / "raw"), "--out", "s3://no-such-bucket-for-shards/x"])
    assert str(stopped.value) == (
        "mast ingest: --out s3://no-such-bucket-for-shards/x: the bucket 'no-such-bucket-for-shards' does not exist; create it first"
    )
    assert ray.is_initialized() == was_running  # no Ray was started for it


@pytest.fixture
def bad_location(request, s3_bucket, monkeypatch):
    """(location, what the error must say) for each way a location fails, the store set up so."""
    case = request.param
    if case == "missing bucket":
        return "s3://no-such-bucket-for-jobs/runs", "the bucket 'no-such-bucket-for-jobs' does not exist; create it first"
    if case == "unreachable endpoint":
        from fixtures.services import free_port

        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens
        storage.clear_cache()
        request.addfinalizer(storage.clear_cache)  # after monkeypatch restores the endpoint
        return f"{s3_bucket}/runs", "cannot be reached .*check AWS_ENDPOINT_URL"
    if case == "refused credentials":
        import moto.settings

        monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # the server checks keys from now on
        return f"{s3_bucket}/runs", "cannot be reached .*AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
    return "oss://bucket/runs", r"no file system for oss:// is installed .*install the fsspec package"


CASES = ["missing bucket", "unreachable endpoint", "refused credentials", "no file system"]


@pytest.mark.parametrize("bad_location", CASES, indirect=True)
def test_pretrain_and_sweep_stop_on_a_bad_storage_before_train_tune_or_mlflow_start(bad_location, tmp_path, monkeypatch):
    from fixtures import REPO_ROOT
    from pipelines.cli import main

    location, message = bad_location
    monkeypatch.chdir(tmp_path)
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    pretrain = ["pretrain", "--config", str(REPO_ROOT / "configs/pretrain/tiny_cpu.yaml"), "--set", f"run.storage={location}"]
    with pytest.raises(SystemExit, match=f"mast pretrain: run.storage {location}: {message}"):
        main([*pretrain, "--tracking-uri", tracking])
    task = tmp_path / "fx_kws.yaml"
    task.write_text(
        "name: fx_kws\ndataset: speech_commands\nshards: shards\nframes_per_clip: 98\nsplits: {train: a, validation: b, test: c}\n"
    )
    (tmp_path / "space.yaml").write_text("num_samples: 2\nspace: {lr: 0.01}\n")
    sweep = ["sweep", str(task), "--checkpoint", "random:mast_tiny", "--space", str(tmp_path / "space.yaml"), "--storage", location]
    with pytest.raises(SystemExit, match=f"mast sweep: --storage {location}: {message}"):
        main([*sweep, "--tracking-uri", tracking])
    assert not (tmp_path / "mlflow.db").exists() and not list(tmp_path.glob("**/ray_results"))
