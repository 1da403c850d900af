#!/usr/bin/env bash
# The seed experiment on 5 hosts: does it matter how a year-partitioned data set reaches the hosts
# of a multi-instance linear-learner job? Hosts algo-1..algo-5 are network namespaces on this one
# machine (tests/distributed/netns_lib.sh; needs root, ip, unshare), each with its own /opt/ml tree,
# running `mlforge container train` at the same time.
#
# Data: 10 "years" (t = 0..9, files year_2015.pbr .. year_2024.pbr), 20,000 + t * 3,333 rows
# (20,000 .. 50,000; 350,000 in all), 25 features, drifting from year to year: the features of
# `mlforge data synth linear --seed 1000+t` (standard normal) are scaled by 1 + 0.1 t and shifted by
# 0.25 t (covariate shift), and the label is (1 + 0.05 t) w.x + b + 0.3 t + N(0, 0.1) with one w, b
# (from synth linear --seed 2015's truth) for every year (concept drift). The validation channel is
# 2,000 fresh rows of each year made the same way (20,000 rows).
# Job: linear-learner, feature_dim=25, predictor_type=regressor, loss=absolute_loss, num_models=32,
# epochs=2, mini_batch_size=500; validation FullyReplicated. Rows:
#   1-host   : one host with every year (no group)
#   (a)      : train ShardedByS3Key: host r (algo-(r+1)) holds only the years t with t % 5 == r
#   (b)      : train FullyReplicated, every host has every year, mlforge's default: ranks split the records
#   (c)      : as (b) with MLFORGE_REPLICATED_READS=all: every rank trains on every record (SageMaker's way)
# Reported: the job's wall time (first host start to last host exit), each host's, the CPU seconds of
# all hosts, rank 0's "Training finished in" time and the validation absolute_loss rank 0 logs
# ('#quality_metric: host=algo-1, validation absolute_loss <loss>=...').
# The 5 hosts share this machine's cores: the times say what the coordination costs here, not what
# 5 separate machines would take.
#
#   bench/distributed_seed.sh [--mlforge PATH] [--out FILE] [--quick]
# --mlforge  default build/cli/mlforge;  --out  default bench/results/distributed_seed_$(date +%F).txt
# --quick    1/10 of the rows (a smoke test of the script)
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
mlforge="$root/build/cli/mlforge"
out="$here/results/distributed_seed_$(date +%F).txt"
scale_div=1
while [ $# -gt 0 ]; do
  case "$1" in
    --mlforge) mlforge=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    --quick) scale_div=10; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -x "$mlforge" ] || { echo "no executable mlforge at $mlforge (--mlforge PATH)" >&2; exit 2; }
mlforge=$(cd "$(dirname "$mlforge")" && pwd)/$(basename "$mlforge")

# shellcheck source=tests/distributed/netns_lib.sh
source "$root/tests/distributed/netns_lib.sh"
netns_check || { echo "distributed_seed.sh: cannot run: $NETNS_SKIP_REASON" >&2; exit 77; }
unset RANK WORLD_SIZE LOCAL_RANK LOCAL_WORLD_SIZE MASTER_ADDR MASTER_PORT MLFORGE_OPT_ML \
  MLFORGE_REPLICATED_READS MLFORGE_COLLECTIVE_TIMEOUT_S MLFORGE_RENDEZVOUS_TIMEOUT_S MLFORGE_ALGORITHM

tmp=$(mktemp -d "${TMPDIR:-/tmp}/distributed_seed.XXXXXX")
cleanup() { netns_down; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
die() { echo "distributed_seed.sh: $*" >&2; exit 1; }

N=5
YEARS=10
FIRST_YEAR=2015
hps=(feature_dim=25 predictor_type=regressor loss=absolute_loss num_models=32 epochs=2 mini_batch_size=500)

# --- data -----------------------------------------------------------------------------------------
echo "generating $YEARS years of data in $tmp ..." >&2
"$mlforge" data synth linear "$tmp/base.csv" --rows 10 --cols 25 --seed 2015 --task regression 2>/dev/null ||
  die "synth linear (base truth) failed"
mkdir -p "$tmp/years" "$tmp/val"
for ((t = 0; t < YEARS; t++)); do
  rows=$(( (20000 + t * 30000 / 9) / scale_div ))
  "$mlforge" data synth linear "$tmp/raw_$t.csv" --rows "$rows" --cols 25 --seed $((1000 + t)) --task regression \
    --no-truth 2>/dev/null || die "synth linear (year $t) failed"
  "$mlforge" data synth linear "$tmp/rawval_$t.csv" --rows $((2000 / scale_div)) --cols 25 --seed $((2000 + t)) \
    --task regression --no-truth 2>/dev/null || die "synth linear (validation, year $t) failed"
done
python3 - "$tmp" "$YEARS" <<'EOF' || die "transforming the years failed"
import json, random, sys
tmp, years = sys.argv[1], int(sys.argv[2])
truth = json.load(open(f"{tmp}/base.csv.truth.json"))
w, b = truth["weights"], truth["bias"]
def drift(src, dst, t, rng):
    scale, shift, slope, offset = 1 + 0.1 * t, 0.25 * t, 1 + 0.05 * t, 0.3 * t
    with open(src) as f, open(dst, "w") as g:
        for line in f:
            x = [float(v) * scale + shift for v in line.split(",")[1:]]  # column 0 is synth's label
            y = slope * sum(wi * xi for wi, xi in zip(w, x)) + b + offset + rng.gauss(0.0, 0.1)
            g.write("%.7g," % y + ",".join("%.7g" % v for v in x) + "\n")
for t in range(years):
    drift(f"{tmp}/raw_{t}.csv", f"{tmp}/year_{t}.csv", t, random.Random(t))
    drift(f"{tmp}/rawval_{t}.csv", f"{tmp}/val_{t}.csv", t, random.Random(1000 + t))
EOF
year_rows=()
for ((t = 0; t < YEARS; t++)); do
  "$mlforge" data convert --label-size 1 "$tmp/year_$t.csv" "$tmp/years/year_$((FIRST_YEAR + t)).pbr" 2>/dev/null ||
    die "convert year $t failed"
  year_rows+=("$(wc -l < "$tmp/year_$t.csv")")
done
cat "$tmp"/val_*.csv > "$tmp/validation.csv"
"$mlforge" data convert --label-size 1 "$tmp/validation.csv" "$tmp/val/validation.pbr" 2>/dev/null ||
  die "convert validation failed"
total_rows=$(cat "$tmp"/year_*.csv | wc -l)
val_rows=$(wc -l < "$tmp/validation.csv")

netns_up "$N" "$tmp" || die "could not build the $N-host network"

# --- one job --------------------------------------------------------------------------------------
# make_host DIR ME HOSTS DIST YEARS_SPEC: YEARS_SPEC "all" or "mod:R" (years t with t % 5 == R)
make_host() {
  local d=$1 me=$2 n=$3 dist=$4 spec=$5 t
  mkdir -p "$d/input/config" "$d/input/data/train" "$d/input/data/validation" "$d/model" "$d/output"
  netns_hp_json "${hps[@]}" > "$d/input/config/hyperparameters.json"
  netns_resourceconfig "$me" "$n" > "$d/input/config/resourceconfig.json"
  netns_channel_json "train:$dist" "validation:FullyReplicated" > "$d/input/config/inputdataconfig.json"
  for ((t = 0; t < YEARS; t++)); do
    if [ "$spec" = all ] || [ $((t % N)) -eq "${spec#mod:}" ]; then
      ln "$tmp/years/year_$((FIRST_YEAR + t)).pbr" "$d/input/data/train/"
    fi
  done
  ln "$tmp/val/validation.pbr" "$d/input/data/validation/"
}

# Runs in a host's namespace: times the command (wall clock and the CPU of its children) into $1.
# (`times` runs in this shell, not a subshell, whose children's times would be zero.)
timed='tf=$1; shift; s=$EPOCHREALTIME; "$@"; rc=$?; e=$EPOCHREALTIME; times > "$tf.cpu"; echo "$s $e $rc" > "$tf"; exit $rc'

results=()
raw=()
# run_row NAME HOSTS DIST SPEC_FOR_HOST(all|mod) [VAR=VALUE...]
run_row() {
  local name=$1 n=$2 dist=$3 spec=$4
  shift 4
  local job="$tmp/job_${name//[^A-Za-z0-9]/_}" i pids=()
  for ((i = 1; i <= n; i++)); do
    local s=all
    [ "$spec" = mod ] && s="mod:$((i - 1))"
    make_host "$job/h$i" "$i" "$n" "$dist" "$s"
  done
  echo "running $name ..." >&2
  for ((i = 1; i <= n; i++)); do
    netns_spawn "$i" "$job/algo-$i.log" bash -c "$timed" timed "$job/time-$i" \
      env "$@" "$mlforge" container train --opt-ml "$job/h$i" --algorithm linear-learner
    pids+=("$NETNS_LAST_PID")
  done
  netns_wait_all 900 "${pids[@]}"
  local summary
  summary=$(python3 - "$job" "$n" "$name" "${NETNS_TIMED_OUT}" <<'EOF'
import re, sys
job, n, name, timed_out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
def secs(s):  # bash `times`: 1m2.345s
    m = re.fullmatch(r"(\d+)m([\d.]+)s", s)
    return int(m.group(1)) * 60 + float(m.group(2))
starts, ends, rcs, cpu, per = [], [], [], 0.0, []
for i in range(1, n + 1):
    try:
        f = open(f"{job}/time-{i}").read().split()
        c = open(f"{job}/time-{i}.cpu").read().splitlines()[1].split()  # line 2: the children's user, sys
    except (OSError, IndexError):
        rcs.append("killed"); continue
    s, e, rc, u, sy = float(f[0]), float(f[1]), int(f[2]), secs(c[0]), secs(c[1])
    starts.append(s); ends.append(e); rcs.append(str(rc)); cpu += u + sy
    per.append(f"algo-{i} {e - s:.2f} s")
log = open(f"{job}/algo-1.log").read()
def metric(pattern):
    m = re.search(pattern, log)
    return m.group(1) if m else "n/a"
val = metric(r"#quality_metric: host=algo-1, validation absolute_loss <loss>=(\S+)")
train = metric(r"#quality_metric: host=algo-1, train absolute_loss <loss>=(\S+)")
fin = metric(r"Training finished in (\S+ s)")
wall = f"{max(ends) - min(starts):.2f}" if ends else "n/a"
status = "ok" if all(r == "0" for r in rcs) and not timed_out else "FAILED (exit " + ",".join(rcs) + ")"
print(f"{name:<34} {wall:>9} {cpu:>9.2f} {fin:>11} {val:>22} {train:>22}  {status}")
print("RAW " + name + ": per host wall " + ", ".join(per) + "; exit " + ",".join(rcs))
EOF
)
  results+=("$(echo "$summary" | grep -v '^RAW ')")
  raw+=("$(echo "$summary" | grep '^RAW ' | sed 's/^RAW //')")
  raw+=("  rank 0 log ($name):")
  raw+=("$(grep -E '#quality_metric|Best model found|Joining a group|Channel |Training finished|ERROR' "$job/algo-1.log" |
    sed 's/^/    /')")
  echo "  ${results[-1]}" >&2
  rm -rf "$job"
}

run_row "1-host (all years)" 1 FullyReplicated all
run_row "(a) 5 hosts ShardedByS3Key" "$N" ShardedByS3Key mod
run_row "(b) 5 hosts FullyReplicated split" "$N" FullyReplicated all
run_row "(c) 5 hosts FullyReplicated all" "$N" FullyReplicated all MLFORGE_REPLICATED_READS=all

# --- the report -----------------------------------------------------------------------------------
mkdir -p "$(dirname "$out")"
{
  echo "# bench/distributed_seed.sh, $(date -u '+%F %T UTC')"
  echo "machine: nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), kernel $(uname -r)"
  echo "mlforge: $mlforge ($("$mlforge" info 2>/dev/null | sed -n 's/^build: *//p'))"
  echo "hosts: $N network namespaces on this machine (bridge, 10.77.0.1-$N), sharing its $(nproc) cores; each rank uses mlforge's default thread count"
  echo "job: linear-learner ${hps[*]}; validation channel FullyReplicated"
  echo "data: $YEARS years ($FIRST_YEAR..$((FIRST_YEAR + YEARS - 1))), rows per year ${year_rows[*]} ($total_rows in all), 25 features;"
  echo "      year t: synth linear --seed 1000+t features * (1 + 0.1 t) + 0.25 t; label (1 + 0.05 t) w.x + b + 0.3 t + N(0, 0.1), w, b from synth linear --seed 2015"
  echo "      validation: $val_rows rows, $((val_rows / YEARS)) of each year made the same way (fresh seeds 2000+t)"
  echo "(a) host algo-(r+1) holds years t with t % $N == r; (b) every host holds every year, ranks split the records;"
  echo "(c) every host holds every year, MLFORGE_REPLICATED_READS=all (every rank trains on every record)"
  [ "$scale_div" -eq 1 ] || echo "QUICK RUN: 1/$scale_div of the rows"
  echo
  printf '%-34s %9s %9s %11s %22s %22s  %s\n' "row" "wall_s" "cpu_s" "rank0_train" "validation_abs_loss" "train_abs_loss" "status"
  printf '%s\n' "${results[@]}"
  echo
  echo "wall_s: first host start to last host exit; cpu_s: user+sys of all hosts; rank0_train: rank 0's 'Training finished in'"
  echo
  echo "## raw"
  printf '%s\n' "${raw[@]}"
} > "$out"
echo "wrote $out" >&2
cat "$out"
