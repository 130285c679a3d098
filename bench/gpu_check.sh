#!/usr/bin/env bash
# One command on a GPU machine: installs missing test dependencies from ./.whl (no network),
# runs the CuPy test cases and the GPU benchmarks, writes bench/results/gpu_check.json.
set -euo pipefail
cd "$(dirname "$0")/.."
exec timeout 480 "${PYTHON:-python}" bench/gpu_check.py "$@"
