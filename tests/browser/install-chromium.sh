#!/bin/sh
# Installs Debian's headless Chromium and its matching chromedriver for the browser test
# (tests/test_elicit_browser.py). Idempotent: does nothing when both are already present.
# Needs root (or sudo) and the Debian package mirror; run it before the test suite.
set -eu
if command -v chromium >/dev/null 2>&1 && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-chromium.sh: chromium/chromedriver missing and not root; install the Debian packages" \
         "'chromium' and 'chromium-driver' by hand" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
