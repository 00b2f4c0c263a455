#!/usr/bin/env bash
# Set up everything and run the checks: ruff, mypy on the package, and the test suite.
# The docker sandbox backend is tested against podman's Docker-compatible service, which this starts
# (scripts/setup-podman.sh) with the locally built sandbox image; the tests then require it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh all,dev
bash scripts/setup-vllm.sh
eval "$(bash scripts/setup-podman.sh | grep '^export AGENTENV_DOCKER_HOST=')"
bash scripts/build-sandbox-image.sh .venv/bin/python >/dev/null
export AGENTENV_DOCKER_HOST AGENTENV_REQUIRE_DOCKER=1
export AGENTENV_REQUIRE_GUI=1
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/python -m pytest -q "$@"
