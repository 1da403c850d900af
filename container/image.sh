#!/usr/bin/env bash
# Builds the mlforge container image (container/Dockerfile) with podman and tests it, on a
# machine without a Docker engine or registry access.
#
#   bash container/image.sh test             build the CPU image, then train and serve from it
#   bash container/image.sh build [cpu|gpu]  build localhost/mlforge:cpu (default) or :gpu
#   bash container/image.sh clean [all]      remove the images, the export and the work folder
#                                            (`all`: also the Debian base image)
# Options (before or after the command):
#   --git REV    build the sources of commit REV (`git archive`) instead of the working tree;
#                the Dockerfile and its ignore file still come from the working tree
#   --base IMG   the CPU variant's base image (default: localhost/mlforge-base:bookworm, made
#                here with debootstrap; e.g. docker.io/library/debian:12-slim where a registry
#                is reachable)
# Environment: MLFORGE_IMAGE_WORK (work folder, default /var/tmp/mlforge-image),
# MLFORGE_IMAGE_JOBS (compile jobs, default 2; the build runs under `nice`),
# MLFORGE_DEBIAN_MIRROR (default: the mirror apt uses here), CUDA_VERSION (13.0.1) and
# UBUNTU_VERSION (24.04) for the GPU variant's nvidia/cuda base images.
#
# Needs root (podman, mount, chroot; re-runs itself with sudo otherwise). Installs podman,
# debootstrap and curl when missing.
# `test`: the CPU image is built with `podman build --isolation chroot` on a Debian 12 minbase
# made by debootstrap and imported once (reused afterwards), exported with `podman create` +
# `podman export` into a folder (`podman run` cannot set rlimits on this kind of machine), and run
# there with chroot, /proc, /dev and the /opt/ml tree bind-mounted, through the image's own
# ENTRYPOINT and ENV:
#   - data: `IMAGE data synth blobs|linear ...` (the image's mlforge) writes synthetic data;
#   - train: for k-means (recordIO) and linear learner (CSV, train + validation) an /opt/ml tree
#     as SageMaker writes it (hyperparameters as strings, inputdataconfig.json,
#     resourceconfig.json), `IMAGE train`, then exit 0, model/model_algo-1, no output/failure;
#     model/ is then packed into model.tar.gz as SageMaker does;
#   - serve: model.tar.gz extracted into a fresh /opt/ml/model as SageMaker does, `IMAGE serve`
#     with SAGEMAKER_BIND_TO_PORT on a free port: GET /ping 200, POST CSV rows to /invocations
#     (the JSON answer must have one prediction per row and equal `IMAGE predict` on the same
#     rows), GET /execution-parameters, then SIGTERM and exit status 0.
# It prints the image size and each phase's time, and exits non-zero naming the failed check.
# Everything it mounts is unmounted on exit (also on failure or Ctrl-C), and the server is stopped.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
work=${MLFORGE_IMAGE_WORK:-/var/tmp/mlforge-image}
jobs=${MLFORGE_IMAGE_JOBS:-2}
cuda_version=${CUDA_VERSION:-13.0.1}
ubuntu_version=${UBUNTU_VERSION:-24.04}
debian_base=localhost/mlforge-base:bookworm
export_name=mlforge-image-export
case "$(realpath -m "$work")" in
  /|/var|/var/tmp|/tmp|"$HOME") echo "image.sh: MLFORGE_IMAGE_WORK=$work: give a folder of its own (it is removed by clean)" >&2; exit 2 ;;
esac

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
log() { printf '[image.sh %s] %s\n' "$(date +%T)" "$*"; }
die() { printf 'image.sh: FAIL: %s\n' "$*" >&2; exit 1; }

orig_args=("$@")
command="" variant="" git_rev="" base_override=""
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --git) git_rev=${2:?--git needs a revision}; shift 2 ;;
    --base) base_override=${2:?--base needs an image}; shift 2 ;;
    build|test|clean) [ -z "$command" ] || die "two commands given ($command, $1)"; command=$1; shift ;;
    cpu|gpu|all) variant=$1; shift ;;
    *) usage >&2; echo "image.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[ -n "$command" ] || { usage >&2; exit 2; }
case "$command/$variant" in
  build/|build/cpu|build/gpu|test/|test/cpu|clean/|clean/all) ;;
  *) echo "image.sh: '$variant' does not go with '$command'" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then   # podman (rootful), mount and chroot need root
  command -v sudo > /dev/null 2>&1 || die "needs root (podman, mount, chroot) and sudo is not installed"
  exec sudo --preserve-env=MLFORGE_IMAGE_WORK,MLFORGE_IMAGE_JOBS,MLFORGE_DEBIAN_MIRROR,CUDA_VERSION,UBUNTU_VERSION \
    bash "$0" "${orig_args[@]}"
fi

# ---------------------------------------------------------------- timing
t_start=$EPOCHREALTIME
phase="" t_phase=""
phase_names=() phase_secs=()
seconds_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
phase_begin() { phase=$1; t_phase=$EPOCHREALTIME; log "== $phase"; }
phase_end() {
  local dt; dt=$(seconds_since "$t_phase")
  phase_names+=("$phase"); phase_secs+=("$dt")
  log "== $phase: done in $dt s"
}
print_times() {
  local i
  echo "phase times:"
  for i in "${!phase_names[@]}"; do printf '  %-28s %8s s\n' "${phase_names[$i]}" "${phase_secs[$i]}"; done
  printf '  %-28s %8s s\n' "total (wall)" "$(seconds_since "$t_start")"
}

# ---------------------------------------------------------------- mounts, processes, cleanup
rootfs=$work/rootfs
child_pid="" server_pid=""

unmount_under() {  # unmounts everything mounted at or below $1, deepest first
  local root=$1 target
  [ -e "$root" ] || return 0
  root=$(realpath "$root")
  while read -r target; do
    [ -n "$target" ] || continue
    umount "$target" 2>/dev/null || umount -l "$target" || { echo "image.sh: cannot unmount $target" >&2; return 1; }
  done < <(findmnt -rn -o TARGET | awk -v r="$root/" 'index($0 "/", r) == 1' | sort -r)
  if findmnt -rn -o TARGET | awk -v r="$root/" 'index($0 "/", r) == 1' | grep -q .; then
    echo "image.sh: still mounted below $root" >&2
    return 1
  fi
}

stop_process() {  # stop_process PID: SIGTERM, then SIGKILL after 30 s
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  [ -z "$server_pid" ] || stop_process "$server_pid"
  [ -z "$child_pid" ] || stop_process "$child_pid"
  podman rm -f "$export_name" >/dev/null 2>&1 || true
  unmount_under "$work" || status=1
  if [ "$status" -ne 0 ]; then
    echo "image.sh: FAILED (exit $status)${phase:+ in phase \"$phase\"}; logs in $work/logs" >&2
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- tools
ensure_packages() {  # installs the Debian packages $@ that are missing (idempotent)
  bash "$repo/scripts/setup.sh" --recommends "$@" | sed 's/^/[image.sh tools] /'
}

# The Debian mirror apt uses on this machine (deb822 .sources first, then one-line .list files).
apt_uri_for_suite() {  # apt_uri_for_suite SUITE -> the first URI serving SUITE, or nothing
  local suite=$1 f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    awk -v s="$suite" '
      function flush() { if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " s " ") && uri != "") { print uri; found = 1; exit } }
      /^[ \t]*$/ { flush(); types = ""; suites = ""; uri = ""; next }
      /^Types:/ { sub(/^Types:[ \t]*/, ""); types = $0 }
      /^Suites:/ { sub(/^Suites:[ \t]*/, ""); suites = $0 }
      /^URIs:/ { sub(/^URIs:[ \t]*/, ""); split($0, u, /[ \t]+/); uri = u[1] }
      END { if (!found) flush() }' "$f"
  done | head -n 1
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -e "$f" ] || continue
    awk -v s="$suite" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ } if ($(i + 1) == s) { print $i; exit } }' "$f"
  done | head -n 1
}
debian_mirror() {
  local m=${MLFORGE_DEBIAN_MIRROR:-}
  [ -n "$m" ] || m=$(apt_uri_for_suite bookworm | head -n 1)
  echo "${m:-http://deb.debian.org/debian}"
}

# ---------------------------------------------------------------- the Debian 12 base
ensure_base() {
  if podman image exists "$debian_base"; then
    log "base: reusing $debian_base ($(image_mb "$debian_base") MB)"
    return 0
  fi
  local mirror security dir=$work/base-rootfs include=()
  mirror=$(debian_mirror)
  security=$(apt_uri_for_suite bookworm-security | head -n 1)
  case "$mirror" in https:*) include=(--include=ca-certificates) ;; esac
  log "base: debootstrap --variant=minbase bookworm from $mirror"
  unmount_under "$dir"
  rm -rf "$dir"
  mkdir -p "$work/logs"
  debootstrap --variant=minbase "${include[@]+"${include[@]}"}" bookworm "$dir" "$mirror" \
    > "$work/logs/debootstrap.log" 2>&1 || { tail -n 20 "$work/logs/debootstrap.log" >&2; die "debootstrap failed"; }
  unmount_under "$dir"
  # What debian:12-slim has and a minbase lacks: the updates and security suites, no
  # documentation, manual pages or translations (also for packages installed later), no apt
  # caches or package lists in the image.
  rm -f "$dir/etc/apt/sources.list"
  {
    printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\n' "$mirror"
    printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    if [ -n "$security" ]; then
      printf '\nTypes: deb\nURIs: %s\nSuites: bookworm-security\nComponents: main\n' "$security"
      printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    fi
  } > "$dir/etc/apt/sources.list.d/debian.sources"
  cat > "$dir/etc/dpkg/dpkg.cfg.d/mlforge-slim" <<'EOF'
# Keep images small: no documentation (copyright files excepted), manual pages or translations.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
  cat > "$dir/etc/apt/apt.conf.d/mlforge-slim" <<'EOF'
// Keep images small: no .deb or binary caches after installing, no translated descriptions.
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
EOF
  find "$dir/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  find "$dir/usr/share/locale" -mindepth 1 ! -type d ! -name locale.alias -delete
  rm -rf "$dir/usr/share/man"/* "$dir/usr/share/info"/* "$dir/usr/share/lintian"
  find "$dir/usr/share/doc" "$dir/usr/share/locale" -mindepth 1 -depth -type d -empty -delete
  rm -rf "$dir/var/cache/apt/archives"/*.deb "$dir/var/cache/apt"/*.bin "$dir/var/lib/apt/lists"/* \
         "$dir/var/log"/*.log "$dir/var/log/apt"/* "$dir/debootstrap"
  : > "$dir/etc/resolv.conf"
  rm -f "$dir/etc/hostname"
  tar --numeric-owner -C "$dir" -c . | podman import \
    --change 'ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD=["bash"]' - "$debian_base" > /dev/null
  rm -rf "$dir"
  log "base: imported $debian_base ($(image_mb "$debian_base") MB)"
}

stamp_steps() {  # copies stdin, with the time before each build step
  local line
  while IFS= read -r line; do
    case "$line" in
      *" STEP "*|*"COMMIT "*) printf '%(%T)T %s\n' -1 "$line" ;;
      *) printf '%s\n' "$line" ;;
    esac
  done
}

image_mb() { podman image inspect --format '{{.Size}}' "$1" | awk '{ printf "%.1f", $1 / 1e6 }'; }

# ---------------------------------------------------------------- build
build_image() {  # build_image cpu|gpu
  local v=$1 tag=localhost/mlforge:$1 context=$repo args=()
  if [ "$v" = cpu ]; then
    local base=${base_override:-$debian_base}
    args=(--build-arg "BUILD_BASE=$base" --build-arg "RUNTIME_BASE=$base" --build-arg CUDA=OFF)
  else
    args=(--build-arg "BUILD_BASE=docker.io/nvidia/cuda:$cuda_version-devel-ubuntu$ubuntu_version"
          --build-arg "RUNTIME_BASE=docker.io/nvidia/cuda:$cuda_version-runtime-ubuntu$ubuntu_version"
          --build-arg CUDA=ON)
  fi
  if [ -n "$git_rev" ]; then
    local commit
    commit=$(git -C "$repo" rev-parse --verify "$git_rev^{commit}") || die "--git $git_rev: not a commit"
    context=$work/context
    rm -rf "$context"
    mkdir -p "$context"
    git -C "$repo" archive "$commit" | tar -C "$context" -x
    log "build: sources of commit $commit"
  else
    log "build: sources of the working tree $repo ($(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$repo" diff --quiet HEAD 2>/dev/null || echo ', with uncommitted changes'))"
  fi
  log "build: podman build $tag (${args[*]}, JOBS=$jobs, nice)"
  nice -n 10 podman build --isolation chroot --layers \
    -f "$repo/container/Dockerfile" --ignorefile "$repo/container/Dockerfile.dockerignore" \
    "${args[@]}" --build-arg "JOBS=$jobs" -t "$tag" "$context" 2>&1 | stamp_steps \
    || die "podman build of $tag failed (its output is above)"
  log "build: $tag is $(image_mb "$tag") MB"
  podman history --format '{{.Size}}  {{.CreatedBy}}' "$tag" | cut -c 1-150 | sed 's/^/  layer: /'
}

# ---------------------------------------------------------------- run the image with chroot
image_env=() entrypoint=()
load_image_config() {  # the image's ENV and ENTRYPOINT, as `docker run` would use them
  mapfile -t image_env < <(podman image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$1" | sed '/^$/d')
  mapfile -t entrypoint < <(podman image inspect --format '{{range .Config.Entrypoint}}{{println .}}{{end}}' "$1" | sed '/^$/d')
  [ ${#entrypoint[@]} -gt 0 ] || die "$1 has no ENTRYPOINT"
  log "image: ENTRYPOINT ${entrypoint[*]}; ENV ${image_env[*]}"
}

chroot_bin=$(command -v chroot || echo /usr/sbin/chroot)
# image_cmd [VAR=VALUE ...] -- ARG...: the command line of `docker run -e VAR=VALUE IMAGE ARG...`
image_cmd=()
set_image_cmd() {
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  image_cmd=(env -i "${image_env[@]}" HOSTNAME=algo-1 "${envs[@]+"${envs[@]}"}" "$chroot_bin" "$rootfs" "${entrypoint[@]}" "$@")
}
run_image() {  # run_image LOG [VAR=VALUE ...] -- ARG...: foreground; output to LOG and, indented, here
  local logf=$1 status=0
  shift
  set_image_cmd "$@"
  "${image_cmd[@]}" > "$logf" 2>&1 &
  child_pid=$!
  wait "$child_pid" || status=$?
  child_pid=""
  show_log "$logf"
  return "$status"
}
show_log() {  # the log, indented; linear learner's per-model #metrics lines only counted
  local n
  grep -v '#metrics {' "$1" | sed 's/^/  | /'
  n=$(grep -c '#metrics {' "$1" || true)
  [ "$n" -eq 0 ] || echo "  | ($n '#metrics {...}' lines not shown: $1)"
}

mount_rootfs() {
  mkdir -p "$rootfs/proc" "$rootfs/dev" "$rootfs/opt/ml" "$rootfs/mnt/io" "$work/io"
  mount -t proc proc "$rootfs/proc"
  mount --bind /dev "$rootfs/dev"
  mount --bind "$work/io" "$rootfs/mnt/io"   # synthetic data, requests, answers, model.tar.gz
}
bind_opt_ml() { mount --bind "$1" "$rootfs/opt/ml"; }
unbind_opt_ml() { umount "$rootfs/opt/ml"; }

export_image() {  # export_image TAG: the image's file system into $rootfs
  unmount_under "$rootfs" || die "cannot unmount the previous export in $rootfs"
  rm -rf "$rootfs"
  mkdir -p "$rootfs"
  podman rm -f "$export_name" > /dev/null 2>&1 || true
  podman create --name "$export_name" "$1" > /dev/null
  podman export "$export_name" | tar -C "$rootfs" -x
  podman rm "$export_name" > /dev/null
  log "export: $(du -sm "$rootfs" | cut -f1) MB in $rootfs"
}

# ---------------------------------------------------------------- /opt/ml trees
json_strings() {  # json_strings K=V ...: a JSON object of strings (values here need no escaping)
  local kv out="{"
  for kv in "$@"; do
    [ "$out" = "{" ] || out+=", "
    out+="\"${kv%%=*}\": \"${kv#*=}\""
  done
  echo "$out}"
}
make_tree() {  # make_tree DIR CONTENT_TYPE CHANNEL=FILE... -- HP=VALUE...: a training job's /opt/ml
  local dir=$1 ctype=$2 c cfg="{"
  shift 2
  rm -rf "$dir"
  mkdir -p "$dir/input/config" "$dir/input/data" "$dir/model" "$dir/output/data"
  while [ "$1" != -- ]; do
    c=${1%%=*}
    mkdir -p "$dir/input/data/$c"
    ln "${1#*=}" "$dir/input/data/$c/" 2>/dev/null || cp "${1#*=}" "$dir/input/data/$c/"
    [ "$cfg" = "{" ] || cfg+=", "
    cfg+="\"$c\": {\"ContentType\": \"$ctype\", \"TrainingInputMode\": \"File\", \"S3DistributionType\": \"FullyReplicated\", \"RecordWrapperType\": \"None\"}"
    shift
  done
  shift
  echo "$cfg}" > "$dir/input/config/inputdataconfig.json"
  json_strings "$@" > "$dir/input/config/hyperparameters.json"
  echo '{"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}' \
    > "$dir/input/config/resourceconfig.json"
  log "tree $dir: hyperparameters $(cat "$dir/input/config/hyperparameters.json")"
}

train_job() {  # train_job NAME ALGORITHM_ENV...: IMAGE train on $work/jobs/NAME, then model.tar.gz
  local name=$1 dir=$work/jobs/$1 status=0
  shift
  bind_opt_ml "$dir"
  run_image "$work/logs/train_$name.log" TRAINING_JOB_NAME="mlforge-image-test-$name" "$@" -- train || status=$?
  unbind_opt_ml
  if [ "$status" -ne 0 ]; then
    [ ! -s "$dir/output/failure" ] || echo "output/failure: $(cat "$dir/output/failure")" >&2
    die "$name: IMAGE train exited $status"
  fi
  [ ! -e "$dir/output/failure" ] || die "$name: exit 0 but output/failure exists: $(cat "$dir/output/failure")"
  [ -s "$dir/model/model_algo-1" ] || die "$name: no model/model_algo-1 after training (model/: $(ls "$dir/model"))"
  grep -q '#quality_metric: host=algo-1' "$work/logs/train_$name.log" || die "$name: no #quality_metric line in the training log"
  # What SageMaker does with /opt/ml/model after the job: <output path>/<job>/output/model.tar.gz.
  mkdir -p "$work/io/$name"
  tar -C "$dir/model" -czf "$work/io/$name/model.tar.gz" .
  [ -s "$work/io/$name/model.tar.gz" ] || die "$name: model.tar.gz not written"
  tar -tzf "$work/io/$name/model.tar.gz" | grep -q 'model_algo-1$' || die "$name: model.tar.gz lacks model_algo-1"
  log "$name: model.tar.gz ($(stat -c %s "$work/io/$name/model.tar.gz") bytes: $(tar -tzf "$work/io/$name/model.tar.gz" | grep -v '/$' | tr '\n' ' '))"
}

train_job_fails() {  # train_job_fails NAME KEY: IMAGE train must fail, naming KEY in output/failure
  local name=$1 key=$2 dir=$work/jobs/$1 status=0
  bind_opt_ml "$dir"
  run_image "$work/logs/train_$name.log" -- train || status=$?
  unbind_opt_ml
  [ "$status" -ne 0 ] || die "$name: a bad job exited 0"
  [ -s "$dir/output/failure" ] || die "$name: exit $status but no output/failure"
  grep -q "$key" "$dir/output/failure" || die "$name: output/failure does not name $key: $(cat "$dir/output/failure")"
  [ -z "$(ls -A "$dir/model")" ] || die "$name: model/ is not empty after a failed job"
  log "$name: exit $status as it should, model/ empty, output/failure: $(head -c 200 "$dir/output/failure")"
}

free_port() {
  local p i
  for i in $(seq 1 100); do
    p=$((20000 + RANDOM % 30000))
    if ! (exec 3<> "/dev/tcp/127.0.0.1/$p") 2> /dev/null; then echo "$p"; return 0; fi
  done
  die "no free loopback port found"
}

serve_check() {  # serve_check NAME ROWS_FIELD [LIST_KEY [CONTENT_TYPE]]: IMAGE serve on NAME's model.tar.gz, requests, SIGTERM
  local name=$1 field=$2 list_key=${3:-predictions} ctype=${4:-text/csv}
  local dir=$work/jobs/serve-$name port code i status=0 rows answers ext=csv
  [ "$ctype" = text/csv ] || ext=jsonl   # factorization machines take no CSV: JSON lines
  local logf=$work/logs/serve_$name.log req=$work/io/${name}_request.$ext
  rm -rf "$dir"
  mkdir -p "$dir/model"
  tar -C "$dir/model" -xzf "$work/io/$name/model.tar.gz"   # SageMaker extracts ModelDataUrl here
  # The answer `IMAGE predict` gives offline for the same rows, to compare the endpoint with.
  bind_opt_ml "$dir"
  run_image "$work/logs/predict_$name.log" -- predict --model "/mnt/io/$name/model.tar.gz" \
    --input "/mnt/io/${name}_request.$ext" --content-type "$ctype" --accept application/json \
    --output "/mnt/io/${name}_expected.json" || die "$name: IMAGE predict exited $?"
  port=$(free_port)
  set_image_cmd SAGEMAKER_BIND_TO_PORT="$port" -- serve
  "${image_cmd[@]}" > "$logf" 2>&1 &
  server_pid=$!
  log "$name: IMAGE serve (pid $server_pid) on 127.0.0.1:$port"
  code=000
  for i in $(seq 1 300); do
    kill -0 "$server_pid" 2>/dev/null || break
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/ping" || true)
    [ "$code" != 200 ] || break
    sleep 0.1
  done
  if [ "$code" != 200 ]; then
    if ! kill -0 "$server_pid" 2>/dev/null; then
      wait "$server_pid" || status=$?
      server_pid=""
      show_log "$logf"
      die "$name: IMAGE serve exited $status before GET /ping answered 200"
    fi
    show_log "$logf"
    die "$name: GET /ping did not answer 200 within 30 s (last: $code)"
  fi
  log "$name: GET /ping 200 after $(awk -v i="$i" 'BEGIN { printf "%.1f", (i - 1) / 10 }') s"
  code=$(curl -sS -o "$work/io/${name}_answer.json" -w '%{http_code}' --max-time 30 \
    -H "Content-Type: $ctype" -H 'Accept: application/json' --data-binary "@$req" \
    "http://127.0.0.1:$port/invocations") || code="curl failed"
  [ "$code" = 200 ] || die "$name: POST /invocations answered $code: $(head -c 300 "$work/io/${name}_answer.json" 2>/dev/null)"
  log "$name: POST /invocations 200: $(head -c 300 "$work/io/${name}_answer.json")"
  rows=$(grep -c . "$req")
  answers=$(grep -o "\"$field\"" "$work/io/${name}_answer.json" | wc -l)
  grep -q "^{\"$list_key\": *\\[" "$work/io/${name}_answer.json" || die "$name: the answer is not {\"$list_key\": [...]}"
  [ "$answers" -eq "$rows" ] || die "$name: $rows rows sent, $answers \"$field\" values answered"
  cmp -s "$work/io/${name}_answer.json" "$work/io/${name}_expected.json" \
    || die "$name: the endpoint's answer differs from IMAGE predict's: $(head -c 300 "$work/io/${name}_expected.json")"
  log "$name: $rows rows -> $answers predictions, identical to IMAGE predict"
  code=$(curl -s -o "$work/io/${name}_params.json" -w '%{http_code}' --max-time 5 "http://127.0.0.1:$port/execution-parameters" || true)
  if [ "$code" != 200 ] || ! grep -q MaxConcurrentTransforms "$work/io/${name}_params.json"; then
    die "$name: GET /execution-parameters answered $code"
  fi
  log "$name: GET /execution-parameters 200: $(cat "$work/io/${name}_params.json")"
  kill -TERM "$server_pid"
  for i in $(seq 1 300); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$server_pid" 2>/dev/null && die "$name: the server still runs 30 s after SIGTERM"
  wait "$server_pid" || status=$?
  server_pid=""
  show_log "$logf"
  [ "$status" -eq 0 ] || die "$name: the server exited $status after SIGTERM (want 0)"
  log "$name: SIGTERM: the server exited 0 after $(awk -v i="$i" 'BEGIN { printf "%.1f", (i - 1) / 10 }') s"
  unbind_opt_ml
}

# ---------------------------------------------------------------- commands
do_clean() {
  unmount_under "$work" || die "cannot unmount below $work"
  podman rm -f "$export_name" > /dev/null 2>&1 || true
  podman rmi -f localhost/mlforge:cpu localhost/mlforge:gpu > /dev/null 2>&1 || true
  [ "$variant" != all ] || podman rmi -f "$debian_base" > /dev/null 2>&1 || true
  podman image prune -f > /dev/null 2>&1 || true
  rm -rf "$work"
  log "clean: removed $work, localhost/mlforge:cpu|gpu$([ "$variant" != all ] || echo " and $debian_base") and dangling build layers"
}

do_build() {
  local v=${variant:-cpu}
  phase_begin "tools"
  if [ "$v" = cpu ] && [ -z "$base_override" ]; then ensure_packages podman debootstrap; else ensure_packages podman; fi
  phase_end
  if [ "$v" = cpu ] && [ -z "$base_override" ]; then
    phase_begin "base image"; ensure_base; phase_end
  fi
  phase_begin "build $v image"; build_image "$v"; phase_end
}

do_test() {
  local tag=localhost/mlforge:cpu
  log "test: $(uname -srm), $(nproc) cores, $(podman --version), work folder $work"
  variant=cpu
  phase_begin "tools"; ensure_packages podman debootstrap curl; phase_end
  if [ -z "$base_override" ]; then phase_begin "base image"; ensure_base; phase_end; fi
  phase_begin "build cpu image"; build_image cpu; phase_end
  phase_begin "export"
  export_image "$tag"       # first: it unmounts what an interrupted run may have left
  rm -rf "$work/io" "$work/jobs" "$work/logs"
  mkdir -p "$work/io" "$work/jobs" "$work/logs"
  load_image_config "$tag"
  mount_rootfs
  run_image "$work/logs/info.log" -- info || die "IMAGE info exited $?"
  phase_end

  phase_begin "synthetic data"
  run_image "$work/logs/synth_blobs.log" -- data synth blobs /mnt/io/blobs.pbr \
    --rows 20000 --cols 16 --k 8 --cluster-std 0.5 --seed 11 --no-truth || die "IMAGE data synth blobs exited $?"
  run_image "$work/logs/synth_linear.log" -- data synth linear /mnt/io/linear.csv \
    --rows 22000 --cols 10 --task binary --seed 12 --no-truth || die "IMAGE data synth linear exited $?"
  run_image "$work/logs/convert_blobs.log" -- data convert /mnt/io/blobs.pbr /mnt/io/blobs.csv \
    --label-size 0 || die "IMAGE data convert exited $?"
  head -n 20000 "$work/io/linear.csv" > "$work/io/linear_train.csv"
  tail -n 2000 "$work/io/linear.csv" > "$work/io/linear_validation.csv"
  run_image "$work/logs/synth_lowrank.log" -- data synth lowrank /mnt/io/lowrank.pbr \
    --rows 6000 --cols 12 --rank 3 --seed 13 --no-labels --no-truth || die "IMAGE data synth lowrank exited $?"
  run_image "$work/logs/convert_lowrank.log" -- data convert /mnt/io/lowrank.pbr /mnt/io/lowrank.csv \
    --label-size 0 || die "IMAGE data convert lowrank exited $?"
  run_image "$work/logs/synth_fm.log" -- data synth fm /mnt/io/fm.pbr \
    --rows 5000 --users 50 --items 80 --seed 14 --no-truth || die "IMAGE data synth fm exited $?"
  for u in 3 17 42; do  # users' one-hot rows as sparse JSON lines
    echo "{\"data\": {\"features\": {\"keys\": [$u, $((50 + u))], \"shape\": [130], \"values\": [1.0, 1.0]}}}"
  done > "$work/io/factorization-machines_request.jsonl"
  head -n 5 "$work/io/blobs.csv" > "$work/io/kmeans_request.csv"                      # features only
  head -n 5 "$work/io/lowrank.csv" > "$work/io/pca_request.csv"
  tail -n 5 "$work/io/linear_validation.csv" | cut -d, -f2- > "$work/io/linear-learner_request.csv"
  phase_end

  phase_begin "train kmeans"
  make_tree "$work/jobs/kmeans" application/x-recordio-protobuf train="$work/io/blobs.pbr" -- \
    k=8 feature_dim=16 mini_batch_size=1000 epochs=2 init_method=kmeans++ force_dense=True
  train_job kmeans          # the image's default algorithm (MLFORGE_ALGORITHM=kmeans)
  make_tree "$work/jobs/kmeans-bad" application/x-recordio-protobuf train="$work/io/blobs.pbr" -- \
    k=1 feature_dim=16
  train_job_fails kmeans-bad k
  phase_end

  phase_begin "train linear-learner"
  make_tree "$work/jobs/linear-learner" text/csv train="$work/io/linear_train.csv" \
    validation="$work/io/linear_validation.csv" -- \
    predictor_type=binary_classifier feature_dim=10 mini_batch_size=200 epochs=5
  train_job linear-learner MLFORGE_ALGORITHM=linear-learner
  phase_end

  phase_begin "train pca"   # OpenBLAS's LAPACK and SYRK inside the image
  make_tree "$work/jobs/pca" application/x-recordio-protobuf train="$work/io/lowrank.pbr" \
    test="$work/io/lowrank.pbr" -- \
    feature_dim=12 num_components=3 mini_batch_size=500 subtract_mean=True
  train_job pca MLFORGE_ALGORITHM=pca
  phase_end

  phase_begin "train factorization-machines"   # sparse recordIO, as SageMaker's FM trains
  make_tree "$work/jobs/factorization-machines" application/x-recordio-protobuf train="$work/io/fm.pbr" \
    test="$work/io/fm.pbr" -- feature_dim=130 num_factors=4 predictor_type=regressor epochs=2
  train_job factorization-machines MLFORGE_ALGORITHM=factorization-machines
  phase_end

  phase_begin "serve kmeans"; serve_check kmeans closest_cluster; phase_end
  phase_begin "serve linear-learner"; serve_check linear-learner predicted_label; phase_end
  phase_begin "serve pca"; serve_check pca projection projections; phase_end
  phase_begin "serve factorization-machines"
  serve_check factorization-machines score predictions application/jsonlines
  phase_end

  unmount_under "$rootfs" || die "cannot unmount below $rootfs"
  phase=""
  echo
  echo "image.sh test: PASS (nothing left mounted below $work; no server left running)"
  echo "image: $tag $(image_mb "$tag") MB (base $(image_mb "${base_override:-$debian_base}") MB; export $(du -sm "$rootfs" | cut -f1) MB)"
  print_times
}

case "$command" in
  clean) do_clean ;;
  build) do_build; phase=""; print_times ;;
  test) do_test ;;
esac
