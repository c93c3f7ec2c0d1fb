#!/usr/bin/env bash
# Wheels for benchmarks/gpu_check.sh on the GPU machine: Python 3.12, manylinux x86_64, without the
# packages its image already has (torch, torchaudio, numpy, pyarrow, pandas, scipy, pyyaml,
# safetensors, ... : /work/.library/device/KINDS.md lists them).
#
#   bash benchmarks/gpu_wheels.sh            # -> .whl/part1 .whl/part2 ... (git-ignored)
#
# What is missing there comes to about 130 MB (ray's wheel alone is 76 MB), while one device call
# carries at most 64 MiB, so the wheels travel in parts of at most 56 MiB (ray's wheel cut in two)
# over consecutive calls to the same warm machine, each naming one part in `carry`:
#
#   call k < N:  bash benchmarks/gpu_check.sh --receive .whl/partK     (stores the part in /tmp)
#   call N:      bash benchmarks/gpu_check.sh --receive .whl/partN     (then installs and runs the check)
#
# A machine goes back 30 s after a call: make the calls one after another.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir -p .whl/all
PLATFORMS="--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64"
# shellcheck disable=SC2086
python3 -m pip download --quiet --only-binary=:all: --python-version 3.12 --implementation cp $PLATFORMS -d .whl/all \
    "ray[default,train,tune,data]==2.60.0" "mlflow>=3.17" soundfile espeakng-loader
python3 - <<'EOF'
import os
import re
import shutil
from pathlib import Path

# the GPU image's own packages (KINDS.md): keep theirs, one version of each
HAVE = set("""aiohappyeyeballs aiohttp aiosignal attrs certifi charset-normalizer click cloudpickle contourpy cycler
filelock fonttools frozenlist fsspec grpcio h11 httpcore httpx idna jinja2 joblib kiwisolver markdown markupsafe
matplotlib msgpack multidict numpy packaging pandas pillow prometheus-client propcache protobuf psutil pyarrow
pygments pyparsing python-dateutil pyyaml requests rich safetensors scikit-learn scipy setuptools six threadpoolctl
tqdm typing-extensions urllib3 uvloop werkzeug wheel wrapt yarl zipp torch torchaudio""".split())
LIMIT = 56 * 2**20
all_dir = Path(".whl/all")
pieces = []
for wheel in sorted(all_dir.iterdir()):
    name = re.split(r"-\d", wheel.name, maxsplit=1)[0].lower().replace("_", "-")
    if name in HAVE:
        continue
    if wheel.stat().st_size > LIMIT:  # cut in two: gpu_check.sh --receive joins *.whl.part0 + *.whl.part1
        data = wheel.read_bytes()
        half = len(data) // 2 + 1
        for index in range(2):
            piece = all_dir / f"{wheel.name}.part{index}"
            piece.write_bytes(data[index * half : (index + 1) * half])
            pieces.append(piece)
    else:
        pieces.append(wheel)
parts, size = [[]], 0
for piece in sorted(pieces, key=lambda p: -p.stat().st_size):
    if size + piece.stat().st_size > LIMIT:
        parts.append([])
        size = 0
    parts[-1].append(piece)
    size += piece.stat().st_size
for index, group in enumerate(parts, 1):
    folder = Path(f".whl/part{index}")
    folder.mkdir()
    for piece in group:
        shutil.copy(piece, folder / piece.name)
    (folder / "PARTS").write_text(str(len(parts)))
    print(f"{folder}: {len(group)} files, {sum(p.stat().st_size for p in group) / 2**20:.1f} MiB")
shutil.rmtree(all_dir)
EOF
