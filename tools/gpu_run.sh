#!/usr/bin/env bash
# The single GPU-machine call: build, CUDA tests, sanitizer, GPU benchmark set, one results file.
# The device gets a copy of the working tree without git, so the caller passes the commit in:
#
#   run(command="GIT_COMMIT=<output of git rev-parse HEAD here> bash tools/gpu_run.sh",
#       timeout_s=600)
#
# It writes $OUT/<gpu>-<YYYYMMDD>-<csrc sha256[:12]>.json (benchmarks/results/ without $OUT) and
# prints a summary table last; commit the file into benchmarks/results/, then run
# `python tools/readme_perf.py`. Extra arguments go to gpu_run.py (e.g. --aot).
exec "${PYTHON:-python}" tools/gpu_run.py --out "${OUT:-benchmarks/results}" "$@"
