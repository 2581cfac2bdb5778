#!/bin/sh
# Installs what the browser and proxy tests need from Debian: headless Chromium and its matching chromedriver
# (tests/test_elicit_browser.py) and nginx (tests/elicit/proxy.py: the app behind a reverse proxy under a
# sub-path). Idempotent: does nothing when all three are already present. Needs root (or sudo) and the Debian
# package mirror; run it before the test suite (the README test command does).
set -eu
have_nginx() { command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; }
if command -v chromium >/dev/null 2>&1 && [ -x /usr/bin/chromedriver ] && have_nginx; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-chromium.sh: chromium/chromedriver/nginx missing and not root; install the Debian packages" \
         "'chromium', 'chromium-driver' and 'nginx' by hand" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# policy-rc.d: the package must not start a system nginx on port 80 (the tests run their own on loopback)
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq chromium chromium-driver nginx >/dev/null
