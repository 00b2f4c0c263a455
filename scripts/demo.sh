#!/usr/bin/env bash
# The main job on the embedded default: collect rollouts with the bundled SmolLM2 model and summarise them.
# Re-running resumes the same collection (finished episodes are kept, nothing is duplicated).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh all
out=${AGENTENV_DEMO_OUT:-runs/demo}
# 8 small mazes x 2 samples, all 16 episodes at once (one batch per turn); about a minute on 2 CPU cores.
.venv/bin/agentenv collect agentenv/Maze-v0 --policy smollm2-135m-instruct -n 8 -g 2 -k 16 \
  -e size=3 -e max_turns=8 --max-tokens 32 --temperature 0.7 --top-logprobs 5 --out "$out" "$@"
.venv/bin/agentenv show "$out"
