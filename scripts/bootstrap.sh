#!/usr/bin/env bash
# Create .venv if missing and install fitfleet with its CPU and development extras into it.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  python3 -m venv .venv
fi

# Debian's Chromium for the dashboard's browser tests (Playwright drives the system browser).
if [ ! -x /usr/bin/chromium ]; then
  echo "bootstrap: installing chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

stamp=.venv/.fitfleet-installed
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then
  exit 0
fi

echo "bootstrap: installing fitfleet[cpu,dev] into .venv"
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[cpu,dev]'
touch "$stamp"
