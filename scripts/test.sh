#!/usr/bin/env bash
# The one command that sets up, builds and runs every test (README "Run all tests"; .ci/run).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup.sh"
bash "$root/scripts/build.sh"
build=${MLFORGE_BUILD_DIR:-$root/build}
cd "$build"
# GPU tests (label gpu) are part of the run: without a GPU each one skips and prints why.
ctest --output-on-failure -j "${MLFORGE_TEST_JOBS:-2}" --timeout 600 "$@"
