#!/usr/bin/env bash
# The device checks, as one script: GPU tests, the step benchmark (fp32, bf16) and the loader
# benchmark. On a lent GPU machine (python3 with torch, no network), with wheels for what it
# lacks in .whl/ (pydantic, soundfile).
set -uo pipefail
out=${OUT:-/tmp/out}
mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONPATH=${PYTHONPATH:-$PWD} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$out/gpu.txt"
python3 -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider 2>&1 | tee "$out/gpu_tests.log"
python3 bench/bench_igm.py --device cuda --precision fp32 --rounds 30 2>&1 | tee "$out/bench_fp32.log"
python3 bench/bench_igm.py --device cuda --precision bf16 --rounds 30 \
  --models conv-large,resnet18-av 2>&1 | tee "$out/bench_bf16.log"
python3 bench/bench_loader.py --clips 384 --epochs 1 --workers 0,4,8 2>&1 | tee "$out/bench_loader.log"
