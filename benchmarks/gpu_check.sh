#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py): results in $OUT, or benchmarks/results/gpu_check; flags pass through.
exec "${PYTHON:-python3}" "$(dirname "$0")/gpu_check.py" "$@"
