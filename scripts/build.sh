#!/usr/bin/env bash
# Configures and builds mlforge into build/ (or $MLFORGE_BUILD_DIR). Used by demo.sh and test.sh.
#   MLFORGE_CUDA_ARCHS  CUDA archs when a toolkit is found (default 90 here; user builds: 80;90)
#   MLFORGE_CMAKE_ARGS  extra cmake arguments, e.g. -DMLFORGE_USE_CUDA=OFF
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MLFORGE_BUILD_DIR:-$root/build}
archs=${MLFORGE_CUDA_ARCHS:-90}
jobs=${MLFORGE_JOBS:-$(nproc)}
mkdir -p "$build"
# shellcheck disable=SC2086
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$archs" \
  ${MLFORGE_CMAKE_ARGS:-} >"$build/configure.log" 2>&1 || { cat "$build/configure.log"; exit 1; }
grep -E "^-- mlforge:" "$build/configure.log" || true
cmake --build "$build" -j "$jobs" "$@"
