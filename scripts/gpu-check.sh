#!/usr/bin/env bash
# GPU checks, for a machine with an NVIDIA GPU, its driver and libnvcomp (ATLAS_NVCOMP_LIB,
# the system loader, or `pip install nvidia-libnvcomp-cu12` / `-cu13`): the nvcomp-sys and
# Atlas GPU tests with a missing GPU counted as a failure (ATLAS_REQUIRE_GPU=1), then the GPU
# benchmark, which prints one table for BENCHMARKS.md. Extra bench options (e.g.
# `--scale 0.5 --reps 3`) go in GPU_BENCH_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
else
  echo "nvidia-smi not found: is there an NVIDIA driver?" >&2
fi
export ATLAS_REQUIRE_GPU=1
echo "== nvcomp-sys (loader, version, GPU round trips)"
cargo test -q -p nvcomp-sys
echo "== atlas GPU tests"
cargo test -q --features gpu --lib gpu::
cargo test -q --features gpu --test it gpu::
# Alone: it may fault the GPU, which poisons the CUDA context of its whole process.
cargo test -q --features gpu --test it -- --ignored --exact gpu::a_zstd_block_with_sound_headers_and_a_garbage_body_is_never_read_wrong
if [ -x .venv/bin/python ]; then
  echo "== python GPU tests"
  .venv/bin/python -m pytest python/tests/test_device.py -q -p no:cacheprovider
fi
echo "== GPU bench"
# shellcheck disable=SC2086 # GPU_BENCH_ARGS is a list of options
cargo bench -q --features gpu --bench gpu -- ${GPU_BENCH_ARGS:-}
