#!/usr/bin/env bash
# Create .venv-browsergym, a virtual environment of its own for BrowserGym, the baseline that
# benchmarks/web.py measures our MiniWoB++ envs against (benchmarks/_browsergym_worker.py runs in it).
# BrowserGym pins playwright==1.44 and ours needs >= 1.45, so the two never share an environment.
# No browser is downloaded: the worker points Playwright 1.44 at the same Chromium our envs use
# (agentenv.envs.web.browser.find_chromium: $AGENTENV_CHROMIUM, Playwright's download, or the system's),
# and at the task pages of the `miniwob` package installed in .venv, so both sides run identical pages.
# Idempotent: a second run with an unchanged script only checks a stamp file.
#
#   bash scripts/setup-browsergym.sh
set -euo pipefail
cd "$(dirname "$0")/.."

browsergym_version=0.14.3   # browsergym-core and browsergym-miniwob (they pin playwright==1.44)
venv=.venv-browsergym

command -v python3 >/dev/null || { echo "setup-browsergym: python3 (>= 3.11, with venv) is needed" >&2; exit 1; }
if [ ! -x "$venv/bin/python" ]; then
  echo "setup-browsergym: creating $venv"
  python3 -m venv "$venv"
fi
# Keep the environment out of git and out of `ruff check .` (ruff honours .gitignore files).
[ -f "$venv/.gitignore" ] || echo '*' > "$venv/.gitignore"

stamp="$venv/.stamp-$(sha256sum scripts/setup-browsergym.sh | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  py="$venv/bin/python"
  echo "setup-browsergym: upgrading pip in $venv"
  "$py" -m pip install -q --upgrade pip
  echo "setup-browsergym: installing browsergym-core/-miniwob==$browsergym_version (with playwright 1.44)"
  "$py" -m pip install -q "browsergym-core==$browsergym_version" "browsergym-miniwob==$browsergym_version"
  echo "setup-browsergym: checking that browsergym imports"
  "$py" - <<'PY'
import importlib.metadata as m

import browsergym.core  # noqa: F401
import browsergym.miniwob  # noqa: F401

print(f"setup-browsergym: browsergym {m.version('browsergym-core')}, playwright {m.version('playwright')}")
PY
  # The browser: the one our envs find (agentenv.envs.web.browser.find_chromium), driven by Playwright 1.44.
  chromium=${AGENTENV_CHROMIUM:-}
  if [ -z "$chromium" ] && [ -x .venv/bin/python ]; then
    chromium=$(.venv/bin/python -c 'from agentenv.envs.web.browser import find_chromium; print(find_chromium())' \
               2>/dev/null || true)
  fi
  if [ -n "$chromium" ]; then
    echo "setup-browsergym: checking that Playwright 1.44 drives $chromium"
    "$py" - "$chromium" <<'PY' || echo "setup-browsergym: warning: Playwright 1.44 could not drive $chromium" >&2
import sys

from playwright.sync_api import sync_playwright

with sync_playwright() as pw:
    browser = pw.chromium.launch(executable_path=sys.argv[1], headless=True)
    print(f"setup-browsergym: Chromium {browser.version} launches")
    browser.close()
PY
  else
    echo "setup-browsergym: warning: no Chromium found yet (bash scripts/setup.sh, or AGENTENV_CHROMIUM)" >&2
  fi
  rm -f "$venv"/.stamp-*
  touch "$stamp"
fi
echo "setup-browsergym: ready ($venv; benchmarks/web.py runs benchmarks/_browsergym_worker.py with $venv/bin/python)"
