#!/usr/bin/env bash
# The local contract scripts (container/train_local.sh, serve_local.sh, predict.sh) end to end:
# synthetic blobs -> train_local.sh -> model/model_algo-1; a bad hyperparameter -> output/failure and
# a non-zero exit; the hyperparameters.json written as strings; a CSV directory channel; then
# serve_local.sh + predict.sh answer like `mlforge predict`, and SIGTERM stops the server cleanly.
#   local_scripts_test.sh --mlforge BIN --src REPO_ROOT
set -euo pipefail
mlforge="" src=""
while [ $# -gt 0 ]; do
  case "$1" in
    --mlforge) mlforge=$2; shift 2 ;;
    --src) src=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ ! -x "$mlforge" ] || [ ! -d "$src/container" ]; then
  echo "usage: $0 --mlforge BIN --src REPO_ROOT" >&2
  exit 2
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/local_scripts_test.XXXXXX")
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }
scripts=$src/container

"$mlforge" data synth blobs "$tmp/blobs.pbr" --rows 3000 --cols 5 --k 3 --cluster-std 0.3 --seed 3 --no-truth 2>/dev/null

# 1. A good job: model_algo-1 in model/, no failure file, hyperparameters as strings.
"$scripts/train_local.sh" --mlforge "$mlforge" --opt-ml "$tmp/good" "$tmp/blobs.pbr" k=3 feature_dim=5 \
  init_method=kmeans++ > "$tmp/good.log" 2>&1 || { cat "$tmp/good.log"; fail "train_local.sh exited $?"; }
[ -s "$tmp/good/model/model_algo-1" ] || fail "no model/model_algo-1"
[ ! -e "$tmp/good/output/failure" ] || fail "output/failure written on success"
[ -e "$tmp/good/input/data/train/blobs.pbr" ] || fail "data not placed under input/data/train"
grep -q '"k": "3"' "$tmp/good/input/config/hyperparameters.json" || fail "hyperparameters.json: $(cat "$tmp/good/input/config/hyperparameters.json")"
grep -q '"feature_dim": "5"' "$tmp/good/input/config/hyperparameters.json" || fail "feature_dim not a string"
grep -q '"ContentType": "application/x-recordio-protobuf"' "$tmp/good/input/config/inputdataconfig.json" || fail "inputdataconfig.json"
grep -q '"current_host": "algo-1"' "$tmp/good/input/config/resourceconfig.json" || fail "resourceconfig.json"
pass "train_local.sh trains: model/model_algo-1 written"

# 2. A bad hyperparameter: exit != 0, output/failure names it, model/ stays empty.
status=0
"$scripts/train_local.sh" --mlforge "$mlforge" --opt-ml "$tmp/bad" "$tmp/blobs.pbr" k=1 feature_dim=5 \
  > "$tmp/bad.log" 2>&1 || status=$?
[ "$status" -ne 0 ] || fail "a bad hyperparameter (k=1) exited 0"
[ -s "$tmp/bad/output/failure" ] || fail "no output/failure after a bad hyperparameter"
grep -q "k" "$tmp/bad/output/failure" || fail "failure does not name k: $(cat "$tmp/bad/output/failure")"
[ -z "$(ls -A "$tmp/bad/model")" ] || fail "model/ not empty after a failure"
grep -q "output/failure says" "$tmp/bad.log" || fail "train_local.sh did not show the failure"
pass "bad hyperparameter: exit $status, output/failure: $(head -c 120 "$tmp/bad/output/failure")"

# An unknown hyperparameter name fails the same way.
status=0
"$scripts/train_local.sh" --mlforge "$mlforge" --opt-ml "$tmp/bad2" "$tmp/blobs.pbr" k=3 feature_dim=5 kk=3 \
  > "$tmp/bad2.log" 2>&1 || status=$?
[ "$status" -ne 0 ] || fail "unknown hyperparameter: exit 0"
grep -q "kk" "$tmp/bad2/output/failure" || fail "unknown hyperparameter not named in output/failure"
pass "unknown hyperparameter: exit $status"

# 3. A CSV directory as the channel (features only: label_size=0), into a fresh temporary tree.
mkdir -p "$tmp/csv"
"$mlforge" data convert "$tmp/blobs.pbr" "$tmp/csv/part-0.csv" --label-size 0 2>/dev/null
out=$(TMPDIR=$tmp "$scripts/train_local.sh" --mlforge "$mlforge" --content-type 'text/csv;label_size=0' \
  "$tmp/csv" k=3 feature_dim=5 2>&1) || { echo "$out"; fail "CSV directory channel"; }
tree=$(echo "$out" | sed -n 's/^train_local.sh: \/opt\/ml tree in \([^ ]*\) .*/\1/p')
[ -s "$tree/model/model_algo-1" ] || { echo "$out"; fail "CSV: no model in '$tree'"; }
pass "CSV directory channel in a temporary tree ($tree)"

# Usage errors exit 2.
status=0; "$scripts/train_local.sh" --mlforge "$mlforge" > /dev/null 2>&1 || status=$?
[ "$status" -eq 2 ] || fail "no DATA: exit $status"
status=0; "$scripts/predict.sh" "$tmp/nonexistent.csv" > /dev/null 2>&1 || status=$?
[ "$status" -eq 2 ] || fail "predict.sh on a missing file: exit $status"
pass "usage errors exit 2"

# 4. serve_local.sh + predict.sh.
"$mlforge" data convert "$tmp/blobs.pbr" "$tmp/rows.csv" --label-size 0 2>/dev/null
head -n 20 "$tmp/rows.csv" > "$tmp/req.csv"
port=$(( 20000 + RANDOM % 20000 ))
"$scripts/serve_local.sh" --mlforge "$mlforge" --port "$port" "$tmp/good" > "$tmp/serve.log" 2>&1 &
server_pid=$!
up=0
for _ in $(seq 1 100); do
  if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
  if curl -sf "http://localhost:$port/ping" > /dev/null 2>&1; then up=1; break; fi
  sleep 0.1
done
if [ "$up" -eq 0 ]; then
  status=0; wait "$server_pid" || status=$?; server_pid=""
  cat "$tmp/serve.log" >&2
  fail "the server did not answer /ping on port $port (exit $status)"
fi
PORT=$port "$scripts/predict.sh" "$tmp/req.csv" text/csv text/csv > "$tmp/served.csv" || fail "predict.sh exited $?"
"$mlforge" predict --model "$tmp/good/model" --input "$tmp/req.csv" --accept text/csv > "$tmp/offline.csv" 2>/dev/null
cmp -s "$tmp/served.csv" "$tmp/offline.csv" || fail "served answer differs from mlforge predict"
PORT=$port "$scripts/predict.sh" "$tmp/req.csv" > "$tmp/served.json" || fail "predict.sh (json) exited $?"
grep -q '"predictions"' "$tmp/served.json" || fail "JSON answer: $(head -c 200 "$tmp/served.json")"
status=0; PORT=$port "$scripts/predict.sh" "$tmp/req.csv" text/plain > /dev/null 2>&1 || status=$?
[ "$status" -eq 22 ] || fail "unsupported content type: predict.sh exit $status (want 22)"
pass "serve_local.sh + predict.sh answer like mlforge predict"

# 5. SIGTERM: serve_local.sh passes it on; the server finishes and exits 0 well within 30 s.
kill -TERM "$server_pid"
status=0
for _ in $(seq 1 300); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$server_pid" 2>/dev/null && fail "the server still runs 30 s after SIGTERM"
wait "$server_pid" || status=$?
server_pid=""
[ "$status" -eq 0 ] || { cat "$tmp/serve.log" >&2; fail "exit $status after SIGTERM (want 0)"; }
grep -q "server stopped after" "$tmp/serve.log" || fail "no shutdown summary in the log"
pass "SIGTERM: clean exit 0"
