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
# The container image: built with podman from container/Dockerfile and exercised through its own
# train / serve entry points (container/image.sh; 8-9 min cold, seconds when its layers are
# cached). Skipped, saying so, with MLFORGE_SKIP_IMAGE_TEST=1 or when ctest was given a selection.
if [ "${MLFORGE_SKIP_IMAGE_TEST:-0}" = 1 ] || [ $# -gt 0 ]; then
  echo "image test: skipped (MLFORGE_SKIP_IMAGE_TEST=1 or a ctest selection was given)"
else
  bash "$root/container/image.sh" test
fi
