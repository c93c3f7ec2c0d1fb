"""The HEAR 2021 validator (the `hearvalidator` package) on exported MAST and AST encoders.

`hearvalidator` imports TensorFlow at module top but uses it only for TensorFlow models
(platform notes): the run puts a two-name `tensorflow` module on its path instead of installing
TensorFlow, so the validator's whole PyTorch path runs for real."""

import os
import subprocess
import sys

import pytest
import torch

from fixtures import REPO_ROOT
from mast_core import FeatureSettings, save_encoder
from mast_core.ast import ast_tiny
from mast_core.mast import mast_tiny

pytest.importorskip("hearvalidator")

TENSORFLOW_SHIM = '''"""Only what hearvalidator touches for a PyTorch model: tf.Module (an isinstance check)."""
import contextlib


class Module:
    pass


def device(name):
    return contextlib.nullcontext()
'''


@pytest.mark.parametrize("arch", ["mast", "ast"])
def test_hear_validator_passes_with_timestamps_every_50_ms(arch, tmp_path):
    torch.manual_seed(0)
    build = mast_tiny if arch == "mast" else ast_tiny
    export = save_encoder(build().eval(), tmp_path / arch, FeatureSettings(mean=-5.0, std=4.0))
    (tmp_path / "shim" / "tensorflow").mkdir(parents=True)
    (tmp_path / "shim" / "tensorflow" / "__init__.py").write_text(TENSORFLOW_SHIM)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "shim"), str(REPO_ROOT)])}
    result = subprocess.run(
        [sys.executable, "-m", "hearvalidator.validate", "mast_core.hear", "-m", str(export), "-d", "cpu"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "Looks good!" in result.stdout, output[-3000:]
    assert "Interval between timestamps is 50.0ms" in result.stdout, output[-3000:]
    assert "We suggest a interval" not in output  # the validator's warning for a hop over 50 ms
