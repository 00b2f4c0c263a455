#!/usr/bin/env bash
# The main job on the embedded default: collect rollouts with the bundled SmolLM2 model and summarise them.
# Re-running resumes the same collection (finished episodes are kept, nothing is duplicated).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh all
out=${AGENTENV_DEMO_OUT:-runs/demo}
# ALFWorld, held-out floor plans: 6 tasks (one per task type) x 2 samples, all 12 episodes at once, 6 steps
# each, SmolLM2 prompted ALFWorld-style (task, admissible commands, history); a few minutes on 2 CPU cores.
.venv/bin/agentenv collect agentenv/ALFWorld-v0 --policy smollm2-135m-instruct -n 6 -g 2 -k 12 \
  -e split=valid_unseen -e max_turns=6 -e lenient=true --max-tokens 24 --temperature 0.7 --top-logprobs 5 \
  --out "$out" "$@"
.venv/bin/agentenv show "$out"
