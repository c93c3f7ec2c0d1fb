#!/usr/bin/env bash
# The prepared device check (issue 13): one call on a GPU machine prints one table
# (benchmarks/gpu_check.py says what each row measures). Budget: at most 8 minutes.
#
#   bash benchmarks/gpu_check.sh            # GPU sizes: 1024 frames, batch 64, bf16
#   bash benchmarks/gpu_check.sh --tiny     # CPU, tiny sizes: what CI runs (tests/e2e/test_gpu_check.py)
#
# The GPU machine has torch, torchaudio, numpy, pyarrow ... and no registry access: ray, mlflow and
# soundfile travel as wheels made here by benchmarks/gpu_wheels.sh, in parts of at most 56 MiB
# (one device call carries 64 MiB). Each call names one part in `carry` and starts with
#   bash benchmarks/gpu_check.sh --receive .whl/partK [gpu_check.py options]
# Calls before the last store their part in /tmp/mast-wheels and stop; the last one installs the
# wheels into /tmp/mast-site (--no-deps: the machine's torch stays) and runs the check. Where the
# packages are importable already (a dev machine, CI) no wheels are needed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$(command -v python3)}
STORE=/tmp/mast-wheels SITE=/tmp/mast-site
if [ "${1:-}" = "--receive" ]; then
    part=$2
    shift 2
    mkdir -p "$STORE"
    cp "$part"/* "$STORE"/
    total=$(cat "$STORE/PARTS")
    got=$(find "$STORE" -maxdepth 1 -name 'received-*' | wc -l)
    touch "$STORE/received-$(basename "$part")"
    got=$((got + 1))
    if [ "$got" -lt "$total" ]; then
        echo "gpu_check: part $(basename "$part") stored ($got of $total); send the next part now (the machine goes back 30 s after a call)"
        exit 0
    fi
    for first in "$STORE"/*.whl.part0; do
        [ -e "$first" ] || continue
        cat "$first" "${first%.part0}.part1" > "${first%.part0}"
        rm "$first" "${first%.part0}.part1"
    done
    echo "installing $(find "$STORE" -name '*.whl' | wc -l) wheels into $SITE (no index, no deps) ..." >&2
    "$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$STORE"/*.whl
fi
if [ -d "$SITE" ]; then
    # the Ray workers inherit this environment: they import the project from the checkout too
    export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}" PATH="$SITE/bin:$PATH"
fi
if ! "$PYTHON" -c "import ray, mlflow, soundfile, pipelines, mast_core" 2>/dev/null; then
    echo "gpu_check: ray, mlflow, soundfile or the project are not importable with $PYTHON (see the top of this script)" >&2
    exit 2
fi
exec "$PYTHON" benchmarks/gpu_check.py "$@"
