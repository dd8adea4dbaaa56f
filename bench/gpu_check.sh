#!/usr/bin/env bash
# Every GPU figure of the project in one call (under 8 minutes on one H100), written as JSON:
# the simulation engine on CUDA at 1, 128 and 16,807 replicas (or the largest that fits), the
# settle stage per FIRE iteration on the device and through the Context, the training time per batch
# of the 3-level A-GPCN, surrogate energy + forces.
#
#   bash bench/gpu_check.sh                      # on a GPU machine -> bench/results/gpu_check.json
#   bash bench/gpu_check.sh --cpu --out x.json   # tiny sizes on the CPU (what the test runs)
#
# Each section has its own budget; a failing section is recorded as an error and the others run.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
exec timeout 470 python bench/gpu_check.py "$@"
