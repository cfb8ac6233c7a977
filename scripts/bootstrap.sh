#!/usr/bin/env bash
# Install what a command needs into .venv: `bootstrap.sh demo` fitfleet[cpu] (the demo needs
# no browser and no test tools); `bootstrap.sh test` fitfleet[cpu,dev] and Debian's Chromium
# for the dashboard's browser tests (apt-get, as root).
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-test}"
case "$what" in
  demo) extras="cpu" ;;
  test) extras="cpu,dev" ;;
  *) echo "usage: $0 demo|test" >&2; exit 2 ;;
esac

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $(python3 --version)"
  python3 -m venv .venv
fi

if [ "$what" = test ] && [ ! -x /usr/bin/chromium ]; then
  # Playwright drives the system browser in tests/integration/test_browser.py.
  echo "bootstrap: installing Debian's chromium for the browser tests (apt-get, needs root)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

stamp=".venv/.fitfleet-installed-$extras"
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then
  exit 0
fi
if [ "$what" = demo ] && [ -f .venv/.fitfleet-installed-cpu,dev ] \
    && [ .venv/.fitfleet-installed-cpu,dev -nt pyproject.toml ]; then
  exit 0  # the test install holds everything the demo needs
fi

echo "bootstrap: installing fitfleet[$extras] into .venv (TensorFlow is the big part: a minute" \
     "or two the first time, nothing the next)"
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[$extras]"
touch "$stamp"
echo "bootstrap: done"
