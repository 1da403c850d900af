# Sourced by tests/distributed/netns_hosts_test.sh and bench/distributed_seed.sh: N "hosts"
# algo-1..algo-N as Linux network namespaces on one machine, as SageMaker's instances of a
# multi-host training job see each other.
#
#   netns_check                 -> 0, or 1 with the reason in $NETNS_SKIP_REASON (not root, no
#                                  ip/unshare/mount, namespaces not permitted)
#   netns_up N WORKDIR          creates namespaces mlf-<pid>-1..N (eth0 10.77.0.i/24) joined by a
#                               bridge in namespace mlf-<pid>-br, and WORKDIR/hosts (algo-i -> address)
#   netns_spawn I LOG CMD...    starts CMD in host I's namespace, in a private mount namespace
#                               where WORKDIR/hosts is bind-mounted on /etc/hosts, in the background
#                               with stdout+stderr to LOG; its pid (CMD itself: every step execs)
#                               goes to $NETNS_LAST_PID and NETNS_PIDS
#   netns_wait_all TIMEOUT PID...  waits for the pids, SIGKILLs what is left at TIMEOUT seconds;
#                               exit codes in NETNS_RC (by position; 137 for a killed one) and
#                               NETNS_TIMED_OUT=1 when any was killed
#   netns_down                  kills every process this file started (by pid) and any left in
#                               our namespaces, deletes the namespaces (idempotent; call it from
#                               an EXIT trap)
# Nothing outside the namespaces changes: the real /etc/hosts is never written, /etc/netns is not
# used, and the /etc/hosts bind mounts live only in the spawned processes' mount namespaces.

NETNS_PREFIX="mlf-$$"
NETNS_SUBNET="10.77.0"
NETNS_HOSTS=0
NETNS_HOSTS_FILE=""
NETNS_CREATED=()
NETNS_PIDS=()
NETNS_LAST_PID=""
NETNS_SKIP_REASON=""

netns_check() {
  if [ "$(id -u)" -ne 0 ]; then NETNS_SKIP_REASON="not root (network namespaces need CAP_SYS_ADMIN)"; return 1; fi
  local c
  for c in ip unshare mount python3; do
    command -v "$c" >/dev/null 2>&1 || { NETNS_SKIP_REASON="'$c' is not installed"; return 1; }
  done
  local probe="${NETNS_PREFIX}-probe"
  if ! ip netns add "$probe" 2>/dev/null; then
    NETNS_SKIP_REASON="cannot create a network namespace (ip netns add failed)"
    return 1
  fi
  local ok=1
  ip -n "$probe" link add mlfprobe0 type bridge 2>/dev/null || ok=0
  ip netns exec "$probe" unshare -m --propagation private true 2>/dev/null || ok=0
  ip netns del "$probe" 2>/dev/null || true
  if [ "$ok" -ne 1 ]; then
    NETNS_SKIP_REASON="network namespaces exist but a bridge or 'unshare -m' inside one is not permitted"
    return 1
  fi
  return 0
}

_netns_add() {
  ip netns add "$1" || return 1
  NETNS_CREATED+=("$1")
}

netns_up() {
  local n=$1 workdir=$2 i br="${NETNS_PREFIX}-br"
  NETNS_HOSTS=$n
  _netns_add "$br" || return 1
  ip -n "$br" link set lo up
  ip -n "$br" link add br0 type bridge || return 1
  ip -n "$br" link set br0 up || return 1
  NETNS_HOSTS_FILE="$workdir/hosts"
  {
    echo "127.0.0.1 localhost"
    echo "::1 localhost ip6-localhost ip6-loopback"
  } > "$NETNS_HOSTS_FILE"
  for ((i = 1; i <= n; i++)); do
    local ns="${NETNS_PREFIX}-$i"
    _netns_add "$ns" || return 1
    ip -n "$br" link add "v$i" type veth peer name eth0 netns "$ns" || return 1
    ip -n "$br" link set "v$i" master br0 || return 1
    ip -n "$br" link set "v$i" up || return 1
    ip -n "$ns" addr add "$NETNS_SUBNET.$i/24" dev eth0 || return 1
    ip -n "$ns" link set eth0 up || return 1
    ip -n "$ns" link set lo up || return 1
    echo "$NETNS_SUBNET.$i algo-$i" >> "$NETNS_HOSTS_FILE"
  done
  # Every host reaches every other one (a TCP connect to a closed port is refused, not lost).
  local deadline=$((SECONDS + 10))
  for ((i = 2; i <= n; i++)); do
    until ip netns exec "${NETNS_PREFIX}-1" python3 -c '
import socket, sys
s = socket.socket()
s.settimeout(1)
try:
    s.connect((sys.argv[1], 9))
except ConnectionRefusedError:
    sys.exit(0)
except OSError:
    sys.exit(1)
' "$NETNS_SUBNET.$i" 2>/dev/null; do
      if [ "$SECONDS" -ge "$deadline" ]; then echo "netns_up: algo-1 cannot reach algo-$i" >&2; return 1; fi
      sleep 0.2
    done
  done
}

# ip netns exec and unshare exec their commands (no fork), and so does the shell step, so the
# background pid is the command's own.
netns_spawn() {
  local i=$1 log=$2
  shift 2
  ip netns exec "${NETNS_PREFIX}-$i" unshare -m --propagation private \
    bash -c 'mount --bind "$1" /etc/hosts || exit 125; shift; exec "$@"' netns-host "$NETNS_HOSTS_FILE" "$@" \
    > "$log" 2>&1 &
  NETNS_LAST_PID=$!
  NETNS_PIDS+=("$NETNS_LAST_PID")
}

netns_wait_all() {
  local timeout=$1
  shift
  local pids=("$@") deadline=$((SECONDS + timeout)) p j alive
  NETNS_RC=()
  NETNS_TIMED_OUT=0
  while :; do
    alive=0
    for p in "${pids[@]}"; do
      if kill -0 "$p" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ]; then alive=1; fi
    done
    [ "$alive" -eq 0 ] && break
    if [ "$SECONDS" -ge "$deadline" ]; then
      NETNS_TIMED_OUT=1
      for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
      break
    fi
    sleep 0.1
  done
  for j in "${!pids[@]}"; do
    local rc=0
    wait "${pids[$j]}" 2>/dev/null || rc=$?
    NETNS_RC[$j]=$rc
  done
}

netns_down() {
  local p ns i
  for p in "${NETNS_PIDS[@]+"${NETNS_PIDS[@]}"}"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${NETNS_PIDS[@]+"${NETNS_PIDS[@]}"}"; do wait "$p" 2>/dev/null || true; done
  NETNS_PIDS=()
  for ((i = ${#NETNS_CREATED[@]} - 1; i >= 0; i--)); do
    ns=${NETNS_CREATED[$i]}
    # Anything still inside one of our namespaces was started by this script.
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  NETNS_CREATED=()
}

# JSON helpers for the /opt/ml tree (values are plain strings without quotes or backslashes).
# netns_resourceconfig HOST_INDEX N -> {"current_host": "algo-I", "hosts": [...], ...}
netns_resourceconfig() {
  local me=$1 n=$2 i hosts=""
  for ((i = 1; i <= n; i++)); do hosts+="${hosts:+, }\"algo-$i\""; done
  printf '{"current_host": "algo-%s", "hosts": [%s], "network_interface_name": "eth0"}\n' "$me" "$hosts"
}
# netns_hp_json k=v ... -> {"k": "v", ...} (SageMaker passes every value as a string)
netns_hp_json() {
  local kv out=""
  for kv in "$@"; do out+="${out:+, }\"${kv%%=*}\": \"${kv#*=}\""; done
  printf '{%s}\n' "$out"
}
# netns_channel_json NAME:DISTRIBUTION ... -> inputdataconfig.json (recordIO-protobuf; File mode, or
# $NETNS_INPUT_MODE when set, e.g. Pipe)
netns_channel_json() {
  local c out=""
  for c in "$@"; do
    out+="${out:+, }\"${c%%:*}\": {\"ContentType\": \"application/x-recordio-protobuf\", \"TrainingInputMode\": \"${NETNS_INPUT_MODE:-File}\", "
    out+="\"S3DistributionType\": \"${c#*:}\", \"RecordWrapperType\": \"None\"}"
  done
  printf '{%s}\n' "$out"
}
