#!/usr/bin/env bash
# Set up podman's Docker-compatible API service for agentenv's `docker` sandbox backend, on a fresh
# Debian/Ubuntu machine, as root or as a user with sudo. Idempotent: a second run only checks things.
#
#   bash scripts/setup-podman.sh            # then: eval "$(bash scripts/setup-podman.sh | tail -1)"
#
# Steps:
#   1. apt-get install podman runc catatonit (only those missing; catatonit backs `init=True`).
#   2. containers.conf settings: runtime "runc" and cgroup manager "cgroupfs" (crun fails on hybrid
#      cgroup hosts and on rlimits), and default ulimits nofile/nproc 1024. Written as the drop-in
#      /etc/containers/containers.conf.d/agentenv.conf when this podman reads drop-ins (podman >= 4 does;
#      older ones are probed), else merged into /etc/containers/containers.conf, adding only absent keys.
#   3. `podman system service --time=0 unix://$SOCK` in the background (setsid nohup, log in
#      $SOCK_DIR/podman-service.log), unless the socket already answers GET /_ping; waits up to 60 s.
#   4. Prints `export AGENTENV_DOCKER_HOST=unix://$SOCK` as its last line of stdout.
#
# SOCK defaults to /run/agentenv/podman.sock; override with AGENTENV_DOCKER_SOCK. When run through
# sudo (or as a non-root user), the socket is handed to that user: note that access to a rootful podman
# socket is equivalent to root on this machine.
set -euo pipefail

SOCK=${AGENTENV_DOCKER_SOCK:-/run/agentenv/podman.sock}
SOCK_DIR=$(dirname "$SOCK")
LOG=$SOCK_DIR/podman-service.log
DROPIN_DIR=/etc/containers/containers.conf.d
DROPIN=$DROPIN_DIR/agentenv.conf
MAIN_CONF=/etc/containers/containers.conf

log() { echo "setup-podman: $*" >&2; }

sudo_cmd=()
if [ "$(id -u)" != 0 ]; then
  if ! command -v sudo >/dev/null; then
    log "not root and no sudo; run this as root"
    exit 1
  fi
  sudo_cmd=(sudo)
fi
as_root() { "${sudo_cmd[@]}" "$@"; }
# The user who will talk to the socket: the one who invoked sudo, or the non-root caller.
owner=${SUDO_USER:-}
if [ -z "$owner" ] && [ "$(id -u)" != 0 ]; then owner=$(id -un); fi

# --- 1. packages ---------------------------------------------------------------------------------
missing=()
for pkg in podman runc catatonit; do
  [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" = "install ok installed" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  as_root apt-get update -qq
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; then
    # catatonit is optional (only `init=True` needs it); retry without it on releases lacking it.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc >/dev/null
    log "warning: catatonit unavailable; containers.run(init=True) will not work"
  fi
fi

# --- 2. containers.conf ----------------------------------------------------------------------------
read -r -d '' OUR_CONF <<'EOF' || true
# Written by agentenv scripts/setup-podman.sh.
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
EOF

dropins_supported() {
  local major minor
  IFS=. read -r major minor _ < <(podman version --format '{{.Client.Version}}' 2>/dev/null || podman --version | awk '{print $3}')
  if [ "${major:-0}" -ge 4 ]; then return 0; fi
  # Older podman: probe with a throwaway drop-in whose effect `podman info` shows.
  local probe=$DROPIN_DIR/zz-agentenv-probe.conf seen
  as_root mkdir -p "$DROPIN_DIR"
  printf '[engine]\nevents_logger = "none"\n' | as_root tee "$probe" >/dev/null
  seen=$(as_root podman info --format '{{.Host.EventLogger}}' 2>/dev/null || true)
  as_root rm -f "$probe"
  [ "$seen" = none ]
}

# Add `key = value` under [section] of a TOML file unless the key is already set in that section.
merge_key() {
  local file=$1 section=$2 key=$3 value=$4 tmp
  if awk -v s="[$section]" -v k="$key" '
      /^[[:space:]]*\[/ { gsub(/[[:space:]]/, ""); insec = ($0 == s); next }
      insec && $0 ~ "^[[:space:]]*" k "[[:space:]]*=" { found = 1 }
      END { exit !found }' "$file"; then
    return 0
  fi
  tmp=$(mktemp)
  if grep -Eq "^[[:space:]]*\[$section\][[:space:]]*(#.*)?$" "$file"; then
    awk -v s="$section" -v line="$key = $value" '
      { print }
      !done && $0 ~ "^[[:space:]]*\\[" s "\\][[:space:]]*(#.*)?$" { print line; done = 1 }' "$file" >"$tmp"
  else
    { cat "$file"; printf '\n[%s]\n%s = %s\n' "$section" "$key" "$value"; } >"$tmp"
  fi
  as_root cp "$tmp" "$file"
  rm -f "$tmp"
  log "added $key to [$section] in $file"
}

if [ -f "$DROPIN" ] && [ "$(cat "$DROPIN")" = "$OUR_CONF" ]; then
  :  # already in place
elif dropins_supported; then
  as_root mkdir -p "$DROPIN_DIR"
  printf '%s\n' "$OUR_CONF" | as_root tee "$DROPIN" >/dev/null
  log "wrote $DROPIN"
else
  as_root mkdir -p "$(dirname "$MAIN_CONF")"
  if [ ! -f "$MAIN_CONF" ]; then
    printf '%s\n' "$OUR_CONF" | as_root tee "$MAIN_CONF" >/dev/null
    log "wrote $MAIN_CONF"
  else
    merge_key "$MAIN_CONF" containers default_ulimits '["nofile=1024:1024", "nproc=1024:1024"]'
    merge_key "$MAIN_CONF" engine runtime '"runc"'
    merge_key "$MAIN_CONF" engine cgroup_manager '"cgroupfs"'
  fi
fi

rt=$(as_root podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}}' 2>/dev/null || true)
if [ "$rt" != "runc cgroupfs" ]; then
  log "warning: podman reports runtime/cgroup manager '$rt', not 'runc cgroupfs' (an existing setting kept?)"
fi

# --- 3. the API service ----------------------------------------------------------------------------
ping_sock() {
  if command -v curl >/dev/null; then
    [ "$(as_root curl -s --max-time 5 --unix-socket "$SOCK" http://d/_ping 2>/dev/null)" = OK ]
  elif command -v python3 >/dev/null; then
    as_root python3 - "$SOCK" <<'PY' 2>/dev/null
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
data = b""
while chunk := s.recv(4096):
    data += chunk
sys.exit(0 if data.split(b"\r\n", 1)[0].split()[1:2] == [b"200"] and data.endswith(b"OK") else 1)
PY
  else
    as_root podman --remote --url "unix://$SOCK" version >/dev/null 2>&1
  fi
}

if ping_sock; then
  log "podman service already answers on $SOCK"
else
  as_root mkdir -p "$SOCK_DIR"
  as_root rm -f "$SOCK"  # a stale socket file from a dead service
  log "starting podman system service on unix://$SOCK (log: $LOG)"
  # Started from its own directory: conmon writes files (an "oom" marker after a memory kill) into the
  # service's working directory, which must not be the caller's checkout.
  # It also keeps none of our other descriptors: a caller waiting for its pipes to close (CI, $(...))
  # must not wait on a service that runs for ever.
  (
    cd "$SOCK_DIR"
    for fd in $(ls /proc/$BASHPID/fd); do
      if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    as_root setsid nohup podman system service --time=0 "unix://$SOCK" </dev/null >>"$LOG" 2>&1 &
  )
  for _ in $(seq 120); do
    ping_sock && break
    sleep 0.5
  done
  if ! ping_sock; then
    log "podman service did not answer on $SOCK within 60 s; last lines of $LOG:"
    as_root tail -n 20 "$LOG" >&2 || true
    exit 1
  fi
fi
if [ -n "$owner" ]; then
  as_root chown "$owner" "$SOCK_DIR" "$SOCK"
fi

echo "export AGENTENV_DOCKER_HOST=unix://$SOCK"
