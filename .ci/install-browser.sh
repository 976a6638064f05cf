#!/usr/bin/env bash
# Installs Debian's headless browser and its driver for tests/test_serve_browser.py (idempotent).
# A browser download at test time cannot work offline; the distribution packages can.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver
