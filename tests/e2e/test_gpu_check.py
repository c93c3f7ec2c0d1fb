"""The prepared device check runs here with tiny CPU sizes, so it cannot rot before a GPU comes."""

import os
import re
import subprocess
import sys

import pytest

from fixtures import REPO_ROOT


@pytest.mark.slow
def test_gpu_check_prints_every_row_with_numbers_on_cpu(ray_address):
    # its `mast ingest` and `mast pretrain` join the session's Ray (as on a GPU machine where Ray runs)
    # rather than start one each
    done = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--tiny"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHON": sys.executable, "RAY_ADDRESS": ray_address},
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and not line.startswith("| stage")]
    assert len(rows) == 5, done.stdout  # two encoders, the attention kernel, pretraining, embedding
    number = r"^\d+(\.\d+)? (samples|clips)/s$"
    mast, ast = (next(r for r in rows if r.startswith(f"| encoder {name}")).split(" | ") for name in ("mast_small", "ast_base"))
    assert re.match(number, mast[1]) and re.match(number, ast[1]) and float(mast[1].split()[0]) > 0
    assert re.search(r"\d+(\.\d+)?x AST-B", mast[4])
    (attention,) = [r.split(" | ") for r in rows if r.startswith("| attention")]
    assert attention[1] in ("fused", "math fallback") and "scaled_dot_product" in attention[4]
    (pretrain,) = [r.split(" | ") for r in rows if r.startswith("| pretrain")]
    assert re.match(number, pretrain[1]) and float(pretrain[1].split()[0]) > 0
    assert re.match(r"^\d+(\.\d+)? %$", pretrain[2]) and 0 <= float(pretrain[2].split()[0]) <= 100
    (embed,) = [r.split(" | ") for r in rows if r.startswith("| mast embed")]
    assert re.match(number, embed[1]) and float(embed[1].split()[0]) > 0
