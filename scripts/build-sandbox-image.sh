#!/usr/bin/env bash
# Build, with no registry and no network, the tiny image `agentenv-sandbox:latest` for agentenv's
# `docker` sandbox backend. Idempotent: an image built from the same spec is kept as it is.
#
#   bash scripts/build-sandbox-image.sh [PYTHON]    # PYTHON: the interpreter the sandbox runs,
#                                                   # default .venv/bin/python of this checkout, or python3
#
# Approach: the image holds (almost) nothing; containers run the HOST's userland and Python through
# read-only bind mounts at the same paths. The image is a `podman import` (or `docker import`) of a
# rootfs tarball of a few KB containing:
#   - empty mount points /usr /etc/alternatives /proc /sys /dev /run /mnt, /tmp and /var/tmp (1777),
#     /workspace (1777, owned 1000:1000), /home/agent (owned 1000:1000), /root (0755, so that uid 1000 can reach a Python
#     prefix bound under /root, such as a pyenv build, although the host's /root is 0700);
#   - /bin /sbin /lib /lib32 /lib64 /libx32 as the same symlinks the host has (Debian/Ubuntu merged-usr:
#     bin -> usr/bin, lib -> usr/lib, lib64 -> usr/lib64, ...); where the host has a real directory
#     instead, an empty mount point, and that directory joins the bind list;
#   - its own /etc: passwd and group with root, `agent` (1000:1000) and nobody, nsswitch.conf (files
#     only), an empty ld.so.conf. The host's /etc is NOT bound (podman injects /etc/hosts, resolv.conf
#     and hostname itself, and the host's secrets stay out).
#   Why /workspace is 1777: podman 4.3 mounts a tmpfs over a directory the image has with that
#   directory's mode but owned by root, ignoring the tmpfs `mode=` option (a tmpfs over a path absent
#   from the image gets `mode=`); with 1777 the sandbox user can write to a `tmpfs={"/workspace": ...}`
#   on podman and Docker alike. (Podman also accepts the tmpfs option `U`, chown to the container user;
#   Docker rejects it. The kernel options uid=/gid= are refused by podman.)
# Image config: WORKDIR /workspace, USER 1000:1000, PATH, CMD sleep infinity, and the label
# `agentenv.host_binds` with the space-separated host paths every container needs bound read-only at
# the same path: /usr, /etc/ld.so.cache (a file: the dynamic loader's cache) and /etc/alternatives,
# plus any non-symlinked /bin /lib* directories. To these the backend adds the Python to run:
# sys.base_prefix (the interpreter's installation, e.g. a pyenv version directory; nothing extra
# when it is under /usr) and sys.prefix (the venv), plus the source trees of editable installs when
# the sandbox must import them. The script prints the full bind list for PYTHON as its last line.
#
# As root or with sudo (the image goes into the rootful storage the podman service uses). With
# AGENTENV_IMAGE_CLI=docker it uses `docker import` instead of `podman import`.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${AGENTENV_SANDBOX_IMAGE:-agentenv-sandbox:latest}
CLI=${AGENTENV_IMAGE_CLI:-podman}
PYTHON=${1:-}
if [ -z "$PYTHON" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=$PWD/.venv/bin/python; else PYTHON=$(command -v python3); fi
fi

sudo_cmd=()
if [ "$(id -u)" != 0 ]; then sudo_cmd=(sudo); fi
cli() { "${sudo_cmd[@]}" "$CLI" "$@"; }

# Host-dependent part of the spec: which top-level dirs are symlinks.
host_binds=(/usr /etc/ld.so.cache /etc/alternatives)
links=()
dirs=()
for d in bin sbin lib lib32 lib64 libx32; do
  if [ -L "/$d" ]; then
    links+=("$d:$(readlink "/$d")")
  elif [ -d "/$d" ]; then
    dirs+=("$d")
    host_binds+=("/$d")
  fi
done

SPEC_VERSION=2
spec="v$SPEC_VERSION links=${links[*]:-} dirs=${dirs[*]:-} binds=${host_binds[*]}"
spec_hash=$(printf '%s' "$spec" | sha256sum | cut -c1-16)

current=$(cli image inspect --format '{{index .Config.Labels "agentenv.spec"}}' "$IMAGE" 2>/dev/null || true)
old_id=$(cli image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
if [ "$current" = "$spec_hash" ]; then
  echo "build-sandbox-image: $IMAGE is up to date (spec $spec_hash)" >&2
else
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root"/{usr,etc/alternatives,proc,sys,dev,run,mnt,tmp,var/tmp,workspace,home/agent,root}
  chmod 1777 "$root/tmp" "$root/var/tmp" "$root/workspace"
  chmod 0755 "$root/root"
  chown 1000:1000 "$root/workspace" "$root/home/agent"
  for l in "${links[@]}"; do ln -s "${l#*:}" "$root/${l%%:*}"; done
  for d in "${dirs[@]}"; do mkdir -p "$root/$d"; done
  touch "$root/etc/ld.so.cache"  # mount point for the host's cache
  : >"$root/etc/ld.so.conf"
  cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
agent:x:1000:1000:agent:/home/agent:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
  cat >"$root/etc/group" <<'EOF'
root:x:0:
agent:x:1000:
nogroup:x:65534:
EOF
  printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files\n' >"$root/etc/nsswitch.conf"
  tar -C "$root" --numeric-owner -cf "$root.tar" .
  cli import --quiet \
    --change 'WORKDIR /workspace' \
    --change 'USER 1000:1000' \
    --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin' \
    --change 'ENV HOME=/home/agent' \
    --change 'CMD ["/usr/bin/sleep", "infinity"]' \
    --change "LABEL agentenv.spec=$spec_hash" \
    --change "LABEL agentenv.host_binds=\"${host_binds[*]}\"" \
    "$root.tar" "$IMAGE" >/dev/null
  rm -f "$root.tar"
  # Drop the superseded build unless a container still uses it.
  if [ -n "$old_id" ]; then cli rmi "$old_id" >/dev/null 2>&1 || true; fi
  echo "build-sandbox-image: built $IMAGE (spec $spec_hash)" >&2
fi

# Full read-only bind list for PYTHON (paths resolved on the host, bound at the same path).
"$PYTHON" - "${host_binds[@]}" <<'PY'
import os, sys
binds = list(sys.argv[1:])
for p in (sys.base_prefix, sys.prefix):
    p = os.path.realpath(p)
    if not any(p == b or p.startswith(b.rstrip("/") + "/") for b in binds):
        binds.append(p)
print("binds:", " ".join(binds))
PY
