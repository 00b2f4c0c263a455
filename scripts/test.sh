#!/usr/bin/env bash
# Set up everything and run the checks: ruff, mypy on the package, and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh all,dev
bash scripts/setup-vllm.sh
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/python -m pytest -q "$@"
