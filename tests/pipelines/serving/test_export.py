"""`mast export`: ONNX parity with PyTorch, the MLflow pyfunc model, and serving it."""

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from fixtures.services import free_port
from mast_core import CheckpointError, Embedder, FeatureSettings, load_encoder, save_encoder
from mast_core.ast import ast_tiny
from mast_core.export import EncoderGraph, export_onnx
from mast_core.mast import mast_tiny
from pipelines.cli import main
from pipelines.serving.embed import read_embeddings
from pipelines.serving.export import check_onnx

RATE = 16_000
FEATURES = FeatureSettings(mean=-5.5, std=4.2)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    torch.manual_seed(2)
    return {
        "mast": save_encoder(mast_tiny().eval(), root / "mast", FEATURES),
        "ast": save_encoder(ast_tiny().eval(), root / "ast", FEATURES),
    }


def onnx_outputs(path: Path, spec: torch.Tensor) -> list[np.ndarray]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["embedding", "frames"], {"spec": spec.numpy()})


def relative_error(got: np.ndarray, expected: torch.Tensor) -> float:
    return float(np.abs(got - expected.numpy()).max() / np.abs(expected.numpy()).max())


def test_onnx_export_of_mast_matches_pytorch_for_any_length(exported, tmp_path, capsys):
    import onnx

    out = tmp_path / "mast.onnx"
    main(["export", str(exported["mast"]), "--onnx", str(out)])
    printed = capsys.readouterr().out
    assert "onnxruntime vs PyTorch" in printed and f"wrote {out}" in printed
    model, _ = load_encoder(exported["mast"])
    graph = EncoderGraph(model)
    generator = torch.Generator().manual_seed(0)
    for batch, frames in [(1, 16), (3, 98), (2, 517), (1, 1024), (2, 1998)]:  # one patch to 20 s, batch 1-3
        spec = torch.randn(batch, 128, frames, generator=generator)
        with torch.no_grad():
            expected = graph(spec)
            assert torch.equal(expected[0], model(spec))  # the graph's embedding is the model's
        got = onnx_outputs(out, spec)
        assert got[0].shape == tuple(expected[0].shape) and got[1].shape == tuple(expected[1].shape)
        assert relative_error(got[0], expected[0]) < 1e-4, (batch, frames)
        assert relative_error(got[1], expected[1]) < 1e-4, (batch, frames)
    metadata = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert metadata["mast.arch"] == "mast" and json.loads(metadata["mast.features"])["mean"] == FEATURES.mean


def test_onnx_export_of_ast_within_its_position_table(exported, tmp_path):
    model, features = load_encoder(exported["ast"])
    path = export_onnx(model, tmp_path / "ast.onnx", features)
    rows = check_onnx(path, model, frames=(16, 333, 1024), batch=3)
    assert [row["frames"] for row in rows] == [16, 333, 1024]
    assert all(row["embedding_error"] < 1e-4 and row["frames_error"] < 1e-4 for row in rows)


def test_export_needs_a_target(exported):
    with pytest.raises(SystemExit, match="give --onnx OUT.onnx and/or --mlflow"):
        main(["export", str(exported["mast"])])


@pytest.fixture(scope="module")
def pyfunc_run(exported, tmp_path_factory):
    """A real sqlite-backed MLflow run holding the encoder as artifact path ``encoder`` (as `mast pretrain`
    logs it), to which `mast export <run id> --mlflow` adds the pyfunc ``model``."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("pretrain", artifact_location=(root / "artifacts").as_uri())
    run_id = client.create_run(experiment).info.run_id
    client.log_artifacts(run_id, str(exported["mast"]), artifact_path="encoder")
    client.set_terminated(run_id)
    main(["export", run_id, "--mlflow", "--tracking-uri", uri, "--registered-model", "mast-tiny"])
    return uri, run_id


def test_load_encoder_and_mast_embed_from_an_mlflow_run(exported, pyfunc_run, tmp_path, monkeypatch, capsys):
    uri, run_id = pyfunc_run
    wave = waveforms()[1]
    sf.write(tmp_path / "clip.wav", wave, RATE, subtype="FLOAT")
    reference = Embedder(*load_encoder(exported["mast"])).embed([wave]).clip
    model, features = load_encoder(f"runs:/{run_id}/encoder", tracking_uri=uri)
    assert features == FEATURES
    assert torch.equal(Embedder(model, features).embed([wave]).clip, reference)

    main(["embed", str(tmp_path / "clip.wav"), "--checkpoint", run_id, "--tracking-uri", uri, "--out", str(tmp_path / "id.parquet")])
    table, summary = read_embeddings(tmp_path / "id.parquet")
    assert summary["checkpoint"] == f"runs:/{run_id}/encoder"
    assert torch.equal(torch.tensor(table.column("embedding").to_pylist()), reference)

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    main(["embed", str(tmp_path / "clip.wav"), "--checkpoint", f"runs:/{run_id}/encoder", "--out", str(tmp_path / "uri.parquet")])
    table, _ = read_embeddings(tmp_path / "uri.parquet")
    assert torch.equal(torch.tensor(table.column("embedding").to_pylist()), reference)


def test_mlflow_uris_that_do_not_resolve_are_named(pyfunc_run):
    uri, run_id = pyfunc_run
    with pytest.raises(CheckpointError, match=f"runs:/{run_id}/nothing: cannot be downloaded from MLflow at {uri}"):
        load_encoder(f"runs:/{run_id}/nothing", tracking_uri=uri)
    with pytest.raises(CheckpointError, match="runs:/0123456789abcdef0123456789abcdef/encoder: cannot be downloaded"):
        load_encoder("runs:/0123456789abcdef0123456789abcdef/encoder", tracking_uri=uri)
    with pytest.raises(CheckpointError, match="models:/no-such-model/1: cannot be downloaded"):
        load_encoder("models:/no-such-model/1", tracking_uri=uri)


def test_mast_sweep_checkpoint_accepts_a_run_id_and_keeps_a_stable_copy(exported, pyfunc_run, tmp_path):
    from pipelines.common.checkpoints import resolve_encoder
    from pipelines.common.config import ConfigError

    uri, run_id = pyfunc_run
    folder = resolve_encoder(run_id, tmp_path / "sweeps", uri)
    assert folder == str(tmp_path / "sweeps" / "encoders" / f"mlflow-runs-{run_id}-encoder")
    for name in ("encoder.safetensors", "config.json"):
        assert (Path(folder) / name).read_bytes() == (exported["mast"] / name).read_bytes()
    # a rerun (or --resume) reuses the copy without asking MLflow again, so the sweep sees the same folder
    assert resolve_encoder(f"runs:/{run_id}/encoder", tmp_path / "sweeps", "sqlite:////nonexistent/x.db") == folder
    with pytest.raises(ConfigError, match="--checkpoint 0123456789abcdef0123456789abcdef: .*cannot be downloaded"):
        resolve_encoder("0123456789abcdef0123456789abcdef", tmp_path / "sweeps", uri)


def waveforms() -> list[np.ndarray]:
    generator = np.random.default_rng(5)
    return [(generator.uniform(-0.5, 0.5, int(seconds * RATE))).astype(np.float32) for seconds in (0.1, 1.0, 3.0)]


def test_pyfunc_predicts_what_the_embedding_api_gives(exported, pyfunc_run, monkeypatch):
    import mlflow

    uri, run_id = pyfunc_run
    assert os.environ.get("MLFLOW_TRACKING_URI") != uri  # `mast export` left no tracking URI behind
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    waves = waveforms()
    predicted = np.asarray(model.predict([w.tolist() for w in waves]), dtype=np.float32)
    low_rate = np.asarray(model.predict([w.tolist() for w in waves], params={"sample_rate": 8_000}), np.float32)
    signature = model.metadata.get_input_schema().to_dict()
    embedder = Embedder(*load_encoder(exported["mast"]))
    np.testing.assert_allclose(predicted, embedder.embed(waves).clip.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(low_rate, embedder.embed(waves, sample_rate=8_000).clip.numpy(), rtol=0, atol=1e-6)
    assert signature and "array" in json.dumps(signature).lower()
    # the registered version resolves to the same encoder through load_encoder
    registered, features = load_encoder("models:/mast-tiny/1", tracking_uri=uri)
    assert features == FEATURES
    assert torch.equal(Embedder(registered, features).embed(waves).clip, embedder.embed(waves).clip)


@pytest.mark.slow
def test_mlflow_models_serve_answers_invocations(exported, pyfunc_run, tmp_path):
    uri, run_id = pyfunc_run
    port = free_port()
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    log = open(tmp_path / "serve.log", "w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            f"runs:/{run_id}/model",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            "1",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "server did not answer /ping within 120 s:\n" + (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(0.5)
        waves = waveforms()
        body = json.dumps({"inputs": [w.tolist() for w in waves]}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            predictions = np.asarray(json.loads(response.read())["predictions"], dtype=np.float32)
    finally:
        os.killpg(server.pid, 15)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait(timeout=10)
        log.close()
    expected = Embedder(*load_encoder(exported["mast"])).embed(waves).clip.numpy()
    np.testing.assert_allclose(predictions, expected, rtol=0, atol=1e-6)
