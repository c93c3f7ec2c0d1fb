import subprocess
import sys
from pathlib import Path

import pytest

from mast_core.checkpoint import load_encoder

ROOT = Path(__file__).resolve().parents[1]


def mast(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_demo_runs_end_to_end_and_exports_a_loadable_encoder(tmp_path):
    result = mast("demo", "--clips", "6", "--seconds", "1", "--steps", "2", "--batch", "4", "--out", str(tmp_path / "enc"))
    assert result.returncode == 0, result.stderr
    assert "step   2/2" in result.stdout
    assert "reloaded encoder matches: True" in result.stdout
    encoder, features = load_encoder(tmp_path / "enc")
    assert encoder.arch == "mast" and features.num_mel_bins == 128


@pytest.mark.parametrize(
    "args, message",
    [
        (["demo", "--steps", "0"], "--steps must be >= 1"),
        (["demo", "--patch-drop", "1.5"], "--patch-drop must be in [0, 1)"),
        (["demo", "--batch", "many"], "invalid int value"),
        (["pretend"], "invalid choice"),
    ],
)
def test_bad_arguments_fail_before_any_work(args, message):
    result = mast(*args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "[1/4]" not in result.stdout


def test_library_has_no_ray_or_mlflow_imports():
    code = "import sys, mast_core; print(sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'mlflow')))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
    for source in (ROOT / "mast_core").glob("*.py"):
        text = source.read_text()
        assert "import ray" not in text and "import mlflow" not in text, source
