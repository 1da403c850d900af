#!/usr/bin/env bash
# `mlforge container train` as a 5-instance SageMaker job: hosts algo-1..algo-5 are Linux network
# namespaces (own eth0 10.77.0.i/24 on a bridge in a sixth namespace) that resolve algo-N through
# this test's own hosts file, bind-mounted on /etc/hosts in each process's private mount namespace
# (tests/distributed/netns_lib.sh). Each host gets its own /opt/ml tree whose resourceconfig.json
# lists the five hosts; rank = index of current_host, master = algo-1 resolved by getaddrinfo,
# port 29500 (the default: every host has its own network stack).
#
#   1. k-means, FullyReplicated (every host has the whole file; ranks split the records), full-batch
#      Lloyd (k=5, feature_dim=8, mini_batch_size=500, init_method=kmeans++,
#      full_batch_lloyd_iterations=100, full_batch_lloyd_tol=0): all five exit 0, no failure file,
#      only algo-1's model/ holds the model (model_algo-1 + mlforge-model.json, as a single-host
#      run writes them; the other hosts' model/ stay empty), and its centers (up to order) and
#      train msd equal a single-host run's on the same data to 1e-4 relative (as
#      tests/kmeans/kmeans_distributed_test.cc). Each rank also logs the rendezvous at
#      algo-1 = 10.77.0.1:29500 and its own transport address.
#   2. The same with ShardedByS3Key: the file split in five uneven parts, host i holding only part i.
#   2b. ShardedByS3Key in Pipe mode: the same parts, each host reading its part from the FIFO
#      input/data/train_0 (no train/ directory) that a writer on the host side feeds, as SageMaker's
#      Pipe mode streams each host's share.
#   3. A rank killed mid-training: 50 epochs on 100,000 rows with MLFORGE_COLLECTIVE_TIMEOUT_S=5,
#      SIGKILL to algo-3's process once it logged an epoch line: the other four exit non-zero
#      within 30 s, each output/failure names "rank 2 (algo-3", and no host has a model.
#
#   netns_hosts_test.sh --mlforge PATH
# Exit 0 pass, 1 fail, 77 skipped (not root, no ip/unshare, namespaces not permitted), 2 usage.
# Every namespace and process it made is removed on exit (trap). About 15-20 s on 2 cores.
set -uo pipefail

mlforge=""
while [ $# -gt 0 ]; do
  case "$1" in
    --mlforge) mlforge=${2:-}; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (usage: $0 --mlforge PATH)" >&2; exit 2 ;;
  esac
done
[ -n "$mlforge" ] && [ -x "$mlforge" ] || { echo "usage: $0 --mlforge PATH (an executable)" >&2; exit 2; }
mlforge=$(cd "$(dirname "$mlforge")" && pwd)/$(basename "$mlforge")

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/distributed/netns_lib.sh
source "$here/netns_lib.sh"

if ! netns_check; then
  echo "SKIP: $NETNS_SKIP_REASON"
  exit 77
fi
if ! "$mlforge" info 2>/dev/null | grep -q "Gloo on"; then
  echo "SKIP: this mlforge build has no Gloo backend (mlforge info)"
  exit 77
fi

# Nothing from the caller's environment may pick another group or data split.
unset RANK WORLD_SIZE LOCAL_RANK LOCAL_WORLD_SIZE MASTER_ADDR MASTER_PORT MLFORGE_OPT_ML \
  MLFORGE_REPLICATED_READS MLFORGE_COLLECTIVE_TIMEOUT_S MLFORGE_RENDEZVOUS_TIMEOUT_S MLFORGE_ALGORITHM

tmp=$(mktemp -d "${TMPDIR:-/tmp}/netns_hosts_test.XXXXXX")
FEEDERS=()
cleanup() {
  local p
  for p in "${FEEDERS[@]}"; do kill "$p" 2>/dev/null; done
  netns_down
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

N=5
failed=0
fail() { echo "FAIL: $*" >&2; failed=1; }
pass() { echo "ok: $*"; }
die() { echo "FAIL: $*" >&2; exit 1; }
show_logs() {  # show_logs JOBDIR: the end of every host's log and failure file
  local i
  for ((i = 1; i <= N; i++)); do
    echo "--- $1/algo-$i.log (last 8 lines)" >&2
    tail -n 8 "$1/algo-$i.log" >&2 2>/dev/null || true
    if [ -e "$1/h$i/output/failure" ]; then echo "--- algo-$i output/failure: $(cat "$1/h$i/output/failure")" >&2; fi
  done
}

netns_up "$N" "$tmp" || die "could not build the $N-host network"
pass "$N hosts on a bridge: $(grep -c algo- "$tmp/hosts") names in $tmp/hosts"

# make_tree DIR HOST_INDEX HOSTS_IN_JOB DISTRIBUTION HYPERPARAMETER...
make_tree() {
  local d=$1 me=$2 n=$3 dist=$4
  shift 4
  mkdir -p "$d/input/config" "$d/input/data/train" "$d/model" "$d/output"
  netns_hp_json "$@" > "$d/input/config/hyperparameters.json"
  netns_resourceconfig "$me" "$n" > "$d/input/config/resourceconfig.json"
  netns_channel_json "train:$dist" > "$d/input/config/inputdataconfig.json"
}

# The centers (model_algo-1: an MXNet NDArray list with one float32 k x d array) and train msd
# (mlforge-model.json) of two model directories: equal up to the order of the centers, 1e-4
# relative for centers (as tests/kmeans/kmeans_distributed_test.cc), 1e-6 for the msd.
compare_models() {
  python3 - "$1" "$2" <<'EOF'
import json, struct, sys

def load(d):
    meta = json.load(open(d + "/mlforge-model.json"))
    b = open(d + "/model_algo-1", "rb").read()
    magic, _, count = struct.unpack_from("<QQQ", b, 0)
    assert magic == 0x112 and count >= 1, f"{d}: not an NDArray list (magic {magic:#x})"
    off = 24
    amagic, = struct.unpack_from("<I", b, off); off += 4
    if amagic == 0xF993FAC9:  # v2: storage type follows
        stype, = struct.unpack_from("<i", b, off); off += 4
        assert stype == 0, f"{d}: storage type {stype}, expected dense"
    else:
        assert amagic == 0xF993FAC8, f"{d}: array magic {amagic:#x}"
    ndim, = struct.unpack_from("<I", b, off); off += 4
    shape = struct.unpack_from(f"<{ndim}q", b, off); off += 8 * ndim
    off += 8  # context: device type, device id
    dtype, = struct.unpack_from("<i", b, off); off += 4
    assert ndim == 2 and dtype == 0, f"{d}: shape {shape} dtype {dtype}, expected 2-D float32"
    k, dim = shape
    vals = struct.unpack_from(f"<{k * dim}f", b, off)
    assert k == meta["k"] and dim == meta["feature_dim"], f"{d}: {k}x{dim} vs the JSON's k/feature_dim"
    return [list(vals[i * dim:(i + 1) * dim]) for i in range(k)], meta["train_msd"]

a, msd_a = load(sys.argv[1])
b, msd_b = load(sys.argv[2])
if len(a) != len(b) or len(a[0]) != len(b[0]):
    sys.exit(f"shapes differ: {len(a)}x{len(a[0])} vs {len(b)}x{len(b[0])}")
used, worst = set(), 0.0
for ca in a:
    j = min((j for j in range(len(b)) if j not in used), key=lambda j: sum((x - y) ** 2 for x, y in zip(ca, b[j])))
    used.add(j)
    for x, y in zip(ca, b[j]):
        worst = max(worst, abs(x - y) / max(1.0, abs(x)))
if worst > 1e-4:
    sys.exit(f"centers differ: worst relative difference {worst:.3g} > 1e-4")
if abs(msd_a - msd_b) > 1e-6 * abs(msd_a):
    sys.exit(f"train msd differs: {msd_a!r} vs {msd_b!r}")
print(f"{len(a)} centers x {len(a[0])} match (worst relative difference {worst:.2g}), train msd {msd_b!r}")
EOF
}

# run_job_start JOBDIR [VAR=VALUE...]: `container train` in every host's namespace at once,
# host i on JOBDIR/h$i with the variables set, in the background; their pids in JOB_PIDS.
run_job_start() {
  local job=$1 i
  shift
  JOB_PIDS=()
  for ((i = 1; i <= N; i++)); do
    netns_spawn "$i" "$job/algo-$i.log" env "$@" "$mlforge" container train --opt-ml "$job/h$i" --algorithm kmeans
    JOB_PIDS+=("$NETNS_LAST_PID")
  done
}

model_files() { (cd "$1" && ls -A | tr '\n' ' '); }

kmeans_hps=(k=5 feature_dim=8 mini_batch_size=500 init_method=kmeans++ full_batch_lloyd_iterations=100
  full_batch_lloyd_tol=0)

# --- the data and the single-host reference -------------------------------------------------------
"$mlforge" data synth blobs "$tmp/blobs.pbr" --rows 6000 --cols 8 --k 5 --cluster-std 0.7 --seed 21 \
  --no-labels --no-truth 2>/dev/null || die "data synth blobs failed"
make_tree "$tmp/single" 1 1 FullyReplicated "${kmeans_hps[@]}"
ln "$tmp/blobs.pbr" "$tmp/single/input/data/train/"
"$mlforge" container train --opt-ml "$tmp/single" --algorithm kmeans > "$tmp/single.log" 2>&1 ||
  { tail -n 20 "$tmp/single.log" >&2; die "the single-host run failed"; }
single_files=$(model_files "$tmp/single/model")
[ -s "$tmp/single/model/model_algo-1" ] || die "the single-host run wrote no model_algo-1 ($single_files)"
pass "single-host reference: model/ holds $single_files"

# check_success JOBDIR NAME: all exit 0, only algo-1 has the model, centers equal the reference.
check_success() {
  local job=$1 name=$2 i bad=0
  if [ "$NETNS_TIMED_OUT" -ne 0 ]; then fail "$name: not finished within the timeout (killed)"; bad=1; fi
  for ((i = 1; i <= N; i++)); do
    local rc=${NETNS_RC[$((i - 1))]}
    [ "$rc" -eq 0 ] || { fail "$name: algo-$i exited $rc"; bad=1; }
    [ ! -e "$job/h$i/output/failure" ] || { fail "$name: algo-$i wrote output/failure"; bad=1; }
    grep -q "rendezvous at algo-1 = $NETNS_SUBNET.1:29500" "$job/algo-$i.log" ||
      { fail "$name: algo-$i did not log the rendezvous at algo-1 = $NETNS_SUBNET.1:29500"; bad=1; }
    grep -q "transport address $NETNS_SUBNET.$i\b" "$job/algo-$i.log" ||
      { fail "$name: algo-$i did not connect from its own address $NETNS_SUBNET.$i"; bad=1; }
  done
  local got
  got=$(model_files "$job/h1/model")
  [ "$got" = "$single_files" ] || { fail "$name: algo-1's model/ holds '$got', expected '$single_files'"; bad=1; }
  for ((i = 2; i <= N; i++)); do
    got=$(model_files "$job/h$i/model")
    [ -z "$got" ] || { fail "$name: algo-$i's model/ is not empty: $got"; bad=1; }
  done
  if [ "$bad" -eq 0 ]; then
    local cmp
    if cmp=$(compare_models "$tmp/single/model" "$job/h1/model" 2>&1); then
      pass "$name: 5 hosts exit 0, only algo-1 wrote $single_files; $cmp"
    else
      fail "$name: algo-1's model differs from the single-host run's: $cmp"
      bad=1
    fi
  fi
  [ "$bad" -eq 0 ] || show_logs "$job"
}

# --- 1. FullyReplicated ---------------------------------------------------------------------------
job=$tmp/replicated
for ((i = 1; i <= N; i++)); do
  make_tree "$job/h$i" "$i" "$N" FullyReplicated "${kmeans_hps[@]}"
  ln "$tmp/blobs.pbr" "$job/h$i/input/data/train/"
done
t0=$SECONDS
run_job_start "$job"
netns_wait_all 90 "${JOB_PIDS[@]}"
echo "   (FullyReplicated job: $((SECONDS - t0)) s)"
check_success "$job" "FullyReplicated"

# --- 2. ShardedByS3Key: host i holds only part i (uneven parts; their concatenation is blobs.pbr) --
job=$tmp/sharded
"$mlforge" data convert "$tmp/blobs.pbr" "$tmp/blobs.csv" 2>/dev/null || die "data convert to CSV failed"
python3 - "$tmp/blobs.csv" "$tmp" <<'EOF' || die "splitting the CSV failed"
import sys
rows = open(sys.argv[1]).read().splitlines(keepends=True)
assert len(rows) == 6000, len(rows)
sizes, start = [500, 1000, 1200, 1300, 2000], 0
for i, n in enumerate(sizes):
    open(f"{sys.argv[2]}/part{i}.csv", "w").writelines(rows[start:start + n])
    start += n
EOF
for ((i = 1; i <= N; i++)); do
  make_tree "$job/h$i" "$i" "$N" ShardedByS3Key "${kmeans_hps[@]}"
  "$mlforge" data convert --label-size 0 "$tmp/part$((i - 1)).csv" "$job/h$i/input/data/train/part$((i - 1)).pbr" \
    2>/dev/null || die "data convert of part $((i - 1)) failed"
done
t0=$SECONDS
run_job_start "$job"
netns_wait_all 90 "${JOB_PIDS[@]}"
echo "   (ShardedByS3Key job: $((SECONDS - t0)) s)"
check_success "$job" "ShardedByS3Key (parts of 500..2000 rows)"

# --- 2b. ShardedByS3Key in Pipe mode: host i's part streamed through its FIFO train_0 -----------------
job=$tmp/sharded_pipe
FEEDERS=()
for ((i = 1; i <= N; i++)); do
  NETNS_INPUT_MODE=Pipe make_tree "$job/h$i" "$i" "$N" ShardedByS3Key "${kmeans_hps[@]}"
  rmdir "$job/h$i/input/data/train"  # Pipe mode has no channel directory, only train_<epoch>
  mkfifo "$job/h$i/input/data/train_0" || die "mkfifo failed"
  # The writer blocks until the host opens the FIFO; cleanup kills any left waiting.
  cat "$tmp/sharded/h$i/input/data/train/part$((i - 1)).pbr" > "$job/h$i/input/data/train_0" &
  FEEDERS+=("$!")
done
t0=$SECONDS
run_job_start "$job"
netns_wait_all 90 "${JOB_PIDS[@]}"
echo "   (ShardedByS3Key Pipe-mode job: $((SECONDS - t0)) s)"
for ((i = 1; i <= N; i++)); do
  grep -q "Pipe mode" "$job/algo-$i.log" || fail "Pipe: algo-$i's log does not mention Pipe mode"
done
check_success "$job" "ShardedByS3Key in Pipe mode (each host's part through its FIFO)"
for p in "${FEEDERS[@]}"; do
  if kill -0 "$p" 2>/dev/null; then fail "Pipe: a FIFO writer (pid $p) is still waiting: its host never read"; fi
done

# --- 3. algo-3 killed mid-training ----------------------------------------------------------------
job=$tmp/killed
"$mlforge" data synth blobs "$tmp/big.pbr" --rows 100000 --cols 8 --k 5 --seed 5 --no-labels --no-truth \
  2>/dev/null || die "data synth blobs (100,000 rows) failed"
for ((i = 1; i <= N; i++)); do
  make_tree "$job/h$i" "$i" "$N" FullyReplicated k=5 feature_dim=8 mini_batch_size=500 epochs=50
  ln "$tmp/big.pbr" "$job/h$i/input/data/train/"
done
run_job_start "$job" MLFORGE_COLLECTIVE_TIMEOUT_S=5
victim=${JOB_PIDS[2]}
deadline=$((SECONDS + 60))
until grep -qE "epoch [0-9]+:" "$job/algo-3.log" 2>/dev/null; do
  if ! kill -0 "$victim" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
    show_logs "$job"
    die "algo-3 logged no epoch line (exited or 60 s passed)"
  fi
  sleep 0.05
done
[ "$(readlink "/proc/$victim/exe" 2>/dev/null)" = "$(readlink -f "$mlforge")" ] ||
  die "pid $victim is not mlforge ($(readlink "/proc/$victim/exe" 2>/dev/null))"
kill -KILL "$victim"
killed_at=$(date +%s.%N)
others=("${JOB_PIDS[0]}" "${JOB_PIDS[1]}" "${JOB_PIDS[3]}" "${JOB_PIDS[4]}")
netns_wait_all 30 "${others[@]}"
took=$(python3 -c "import sys, time; print(f'{time.time() - float(sys.argv[1]):.1f}')" "$killed_at")
rcs=("${NETNS_RC[@]}")
victim_rc=0
wait "$victim" 2>/dev/null || victim_rc=$?
[ "$victim_rc" -eq 137 ] || fail "killed: algo-3 exited $victim_rc, expected 137 (SIGKILL)"
bad=0
if [ "$NETNS_TIMED_OUT" -ne 0 ]; then fail "killed: some host still ran 30 s after algo-3 was killed"; bad=1; fi
j=0
for i in 1 2 4 5; do
  rc=${rcs[$j]}
  j=$((j + 1))
  if [ "$rc" -eq 0 ]; then fail "killed: algo-$i exited 0"; bad=1; fi
  if [ ! -s "$job/h$i/output/failure" ]; then
    fail "killed: algo-$i (exit $rc) wrote no output/failure"; bad=1
  elif ! grep -qF "rank 2 (algo-3" "$job/h$i/output/failure"; then
    fail "killed: algo-$i's output/failure does not name 'rank 2 (algo-3': $(head -c 400 "$job/h$i/output/failure")"; bad=1
  fi
done
# The survivors removed their staging directories; SIGKILL leaves algo-3's (model/.mlforge-staging-PID,
# hidden, cleared by the next run with that pid): no model file may be anywhere under model/.
leftover=""
for ((i = 1; i <= N; i++)); do
  got=$(model_files "$job/h$i/model")
  if [ "$i" -eq 3 ]; then
    leftover=$got
    got=$(find "$job/h$i/model" -type f -printf '%P ')$(cd "$job/h$i/model" && ls | tr '\n' ' ')
  fi
  [ -z "$got" ] || { fail "killed: algo-$i's model/ is not empty: $got"; bad=1; }
done
if [ "$bad" -eq 0 ]; then
  pass "killed: algo-3 SIGKILLed after '$(grep -m1 -oE "epoch [0-9]+:" "$job/algo-3.log")'; the others exited" \
    "${rcs[*]} within $took s, each output/failure names rank 2 (algo-3), no model anywhere"
  echo "   algo-1's failure: $(head -c 300 "$job/h1/output/failure")"
  [ -z "$leftover" ] || echo "   (algo-3's model/ keeps only the killed run's empty staging directory: $leftover)"
else
  show_logs "$job"
fi

if [ "$failed" -ne 0 ]; then
  echo "netns_hosts_test: FAILED" >&2
  exit 1
fi
echo "netns_hosts_test: all passed"
