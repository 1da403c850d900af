# Shared by bench/serve_load.sh and bench/serve_soak.sh (sourced; expects $mlforge and $tmp).

# wrk (Debian's package) is needed only by these scripts: installed here when missing and apt-get
# is usable; otherwise exit 77 (skip) naming the caller.
serve_need_wrk() {
  command -v wrk >/dev/null 2>&1 && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get install -y -qq wrk >/dev/null 2>&1 || { echo "$1: needs wrk (apt-get install wrk)" >&2; exit 77; }
}

# serve_make_model SEED: a k-means model with k=100, d=100 trained on synthetic blobs in $tmp/model,
# and the blobs' features as CSV rows in $tmp/rows.csv.
serve_make_model() {
  "$mlforge" data synth blobs "$tmp/blobs.pbr" --rows 20000 --cols 100 --k 100 --seed "$1" --no-truth 2>/dev/null
  "$mlforge" train kmeans --train "$tmp/blobs.pbr" --model-dir "$tmp/model" --hp k=100 --hp feature_dim=100 \
    --log-level warn
  "$mlforge" data convert "$tmp/blobs.pbr" "$tmp/rows.csv" --label-size 0 2>/dev/null
}

# serve_start [serve options...]: `mlforge serve` on a free loopback port with its log in
# $tmp/serve.log; sets $pid and $port once /ping answers 200, else prints the log and exits 1.
serve_start() {
  "$mlforge" serve --model "$tmp/model" --port 0 --host 127.0.0.1 "$@" 2> "$tmp/serve.log" &
  pid=$!
  port=""
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || break
    [ -n "$port" ] || port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/serve.log" | head -n 1)
    [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/ping" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  cat "$tmp/serve.log" >&2
  echo "the server did not come up" >&2
  exit 1
}
