#!/usr/bin/env bash
# The main job on the embedded default: train the bundled SmolLM2-135M on ALFWorld by DAgger from the
# expert, on the CPU in a few minutes, with a progress bar, a held-out evaluation before and after, and
# plots (runs/demo/plots.png). Re-running continues the same run (resume=true): nothing is redone.
# Extra arguments are run options (key=value, see agentenv/trainers/config.py), e.g. steps=5.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh all
out=${AGENTENV_DEMO_OUT:-runs/demo}
.venv/bin/agentenv train dagger --config examples/alfworld_dagger.yaml --out "$out" resume=true "$@"
