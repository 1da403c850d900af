#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (build-fuzz/, or $MLFORGE_FUZZ_BUILD_DIR) and runs each
# for a bounded time, seeding the corpus from the golden recordIO files (and CSV sidecars for
# fuzz_csv). Prints the execution count per target; exits non-zero when a target finds a crash.
#   scripts/fuzz.sh [seconds per target, default 60] [target ...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MLFORGE_FUZZ_BUILD_DIR:-$root/build-fuzz}
seconds=${1:-60}
shift || true
shared=${MLFORGE_SHARED_DATA:-$root/../shared/data}
jobs=${MLFORGE_JOBS:-$(nproc)}

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(fuzz_recordio)
  [ -f "$root/fuzz/fuzz_csv.cc" ] && targets+=(fuzz_csv)
  targets+=(fuzz_request_csv fuzz_request_json fuzz_request_jsonl fuzz_request_recordio fuzz_vcf fuzz_libsvm fuzz_model)
fi

mkdir -p "$build"
CC=${CC:-clang} CXX=${CXX:-clang++} cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DMLFORGE_BUILD_FUZZ=ON -DMLFORGE_BUILD_TESTS=OFF -DMLFORGE_BUILD_BENCH=OFF \
  -DMLFORGE_USE_CUDA=OFF -DMLFORGE_USE_NCCL=OFF -DMLFORGE_USE_GLOO=OFF >"$build/configure.log" 2>&1 ||
  { cat "$build/configure.log"; exit 1; }
cmake --build "$build" -j "$jobs" --target "${targets[@]}"

status=0
for t in "${targets[@]}"; do
  corpus="$build/corpus/$t"
  mkdir -p "$corpus" "$build/artifacts/$t"
  case "$t" in
    fuzz_recordio) seeds=("$shared"/recordio/*.pbr) ;;
    fuzz_csv) seeds=("$shared"/recordio/*.csv "$shared"/csv/*.csv) ;;
    # Request bodies: byte 0 is the target's option byte (fuzz/fuzz_request.cc), then the body.
    fuzz_request_* | fuzz_vcf | fuzz_libsvm | fuzz_model) seeds=("$root"/fuzz/corpus/"$t"/*) ;;
    *) seeds=() ;;
  esac
  for s in "${seeds[@]}"; do
    # Seeds over 1 MiB slow every iteration down; the small golden files cover the same paths.
    [ -f "$s" ] && [ "$(stat -c %s "$s")" -le 1048576 ] && cp -n "$s" "$corpus/" || true
  done
  log="$build/$t.log"
  echo "== $t: ${seconds}s, corpus $corpus ($(ls "$corpus" | wc -l) files)"
  set +e
  "$build/fuzz/$t" -max_total_time="$seconds" -max_len=8192 -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$t/" "$corpus" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
  echo "$t: ${execs:-?} executions in ${seconds}s (exit $rc, log $log)"
  if [ $rc -ne 0 ]; then
    status=1
    grep -E 'ERROR|disagree|fast:|ref:|Test unit written' "$log" | head -20 || true
  fi
done
exit $status
