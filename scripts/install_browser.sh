#!/usr/bin/env bash
# Install what tests/test_browser.py needs: a headless Chromium from Debian (apt) and the
# Python Playwright client (pinned in requirements.txt) in the project's venv.
# Idempotent: does nothing when /usr/bin/chromium exists and playwright imports.
# Never runs `playwright install` (its browser download is not reachable here): the test
# launches the system browser with executable_path="/usr/bin/chromium".
#
#     scripts/install_browser.sh            # uses .venv/bin/python
#     PYTHON=/path/to/python scripts/install_browser.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
PLAYWRIGHT_PIN="$(grep -E '^playwright==' requirements.txt 2>/dev/null || echo 'playwright==1.65.2')"

if [ -x /usr/bin/chromium ] && "$PYTHON" -c "import playwright.sync_api" 2>/dev/null; then
    echo "browser deps present: $(/usr/bin/chromium --version 2>/dev/null || echo chromium), playwright $("$PYTHON" -c 'from importlib.metadata import version; print(version("playwright"))')"
    exit 0
fi

if [ ! -x /usr/bin/chromium ]; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || { echo "need root (or sudo) to apt-get install chromium" >&2; exit 1; }
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core
fi

if ! "$PYTHON" -c "import playwright.sync_api" 2>/dev/null; then
    "$PYTHON" -m pip install --quiet "$PLAYWRIGHT_PIN"
fi

/usr/bin/chromium --version
"$PYTHON" -c "from importlib.metadata import version; print('playwright', version('playwright'))"
